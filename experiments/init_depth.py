"""Initialization of a deep tanh / ReLU net: N(0, 0.01²) collapses, N(0, 1) saturates, Xavier is
healthy; with ReLU, Kaiming beats Xavier.

The lectures' experiment (lecture 7): 10 layers with ``N(0, 0.01²)`` weights shrink the activations
(×0.01·√n per layer) until gradients vanish; ``N(0, 1)`` blows them up (×√n) into tanh's flat
tails; Xavier ``Var = 1/n`` keeps tanh in range, and ReLU, which halves the variance, needs
Kaiming's ``2/n``. Here measured by what it does to *training*: ``deep_mlp`` (stem + 9 hidden
layers = 10 layers of width 100, ``dlcore.models.DeepMLP``), SGD + momentum 0.9 at 1e-2, 2000
steps on MNIST-1D; axes activation (tanh, relu) × kernel initialization (``normal:0.01``,
``normal:1``, ``xavier_normal``, ``kaiming_normal``), all structural (8 programs), every point
tested. The per-layer activation statistics during training (the lectures' histograms) are not
recorded by a study run; ``dlcore.diagnostics`` measures them in Python. The lectures' width:
``--config.model.width=500``. Run:

    dlcore run init_depth
    dlcore report runs/init_depth/<timestamp>

Faster look: dlcore run init_depth --config.num_steps=500 --config.sweep.seeds=4
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(optimizer=dict(name="momentum"), num_steps=2000)
    c.model = ml_collections.ConfigDict(dict(name="deep_mlp", width=100, depth=9, residual=False, activation="tanh",
                                             kernel_init="xavier_normal"))
    c.sweep = study(
        dict(
            activation=dict(path="model.activation", values=("tanh", "relu")),
            init=dict(path="model.kernel_init", values=("normal:0.01", "normal:1", "xavier_normal", "kaiming_normal")),
        ),
        select=dict(group_by=("activation", "init")),  # every point is tested; nothing is chosen
    )
    acc = "test/accuracy: activation={} init={} > activation={} init={}"
    c.claim = dict(
        text="In a 10-layer net N(0, 0.01²) and N(0, 1) train worse than Xavier with tanh; with ReLU Kaiming "
             "beats Xavier",
        checks=(
            acc.format("tanh", "xavier_normal", "tanh", "normal:0.01"),
            acc.format("tanh", "xavier_normal", "tanh", "normal:1"),
            acc.format("relu", "kaiming_normal", "relu", "xavier_normal"),
        ),
    )
    return c
