"""Depth with and without skip connections: plain nets degrade with depth, residual ones do not.

The lectures (ResNet): stacking more plain layers eventually makes even the *training* error worse
(the degradation problem), while identity shortcuts ``h = h + f(h)`` keep deep nets as trainable
as shallow ones. Model ``deep_mlp`` (``dlcore.models.DeepMLP``): width 64, ``depth`` hidden
layers of ReLU after a stem, plain or residual; LeCun-normal initialization, no normalization,
Adam 1e-3, 3000 steps on MNIST-1D. Axes: depth (2, 8, 16, 32) and residual (both structural,
8 programs); every point is tested on the test split. Checks: the plain net at depth 32 is worse
than at depth 2, the residual one is not. Run:

    dlcore run depth_skip
    dlcore report runs/depth_skip/<timestamp>

Faster look: dlcore run depth_skip --config.num_steps=1000 --config.sweep.seeds=4
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(hparams=dict(learning_rate=1e-3), num_steps=3000)
    c.model = ml_collections.ConfigDict(dict(name="deep_mlp", width=64, depth=2, residual=False))
    c.sweep = study(
        dict(
            depth=dict(path="model.depth", values=(2, 8, 16, 32), integer=True),
            residual=dict(path="model.residual", values=(False, True)),
        ),
        select=dict(group_by=("depth", "residual")),  # every point is tested; nothing is chosen
    )
    c.claim = dict(
        text="A plain MLP gets worse as it gets deeper (2 → 32 layers); with skip connections it does not",
        checks=(
            "test/accuracy: depth=2 residual=False > depth=32 residual=False",
            "test/accuracy: depth=32 residual=True >= depth=2 residual=True",
        ),
    )
    return c
