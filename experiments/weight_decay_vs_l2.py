"""Weight decay vs L2 under Adam and SGD: AdamW differs from Adam + L2; under SGD they are equal.

The lectures: an L2 term ``l2·Σw²`` adds ``2·l2·w`` to the gradient *before* the optimizer, while
decoupled weight decay subtracts ``lr·λ·w`` *after* it. For plain SGD, ``λ = 2·l2`` is the same
update; Adam rescales the L2 gradient by ``1/√v̂`` (strong on weights with small gradients) but not
the decay (Loshchilov & Hutter's AdamW). Axes: optimizer (structural: sgd, adam — ``adam`` with a
``weight_decay`` hyperparameter is AdamW), ``weight_decay`` ∈ {0, 2e-3} and ``l2`` ∈ {0, 1e-3}
(vectorized, kernels only). Claim: for SGD the points (weight_decay=2e-3, l2=0) and (0, 1e-3) end
with the same validation loss (paired by seed: same initialization and data order, so their
difference is floating-point noise), for Adam they differ. Learning rate 1e-2 for both
optimizers, 3000 steps, MLP 40-100-100-10 on MNIST-1D. Run:

    dlcore run weight_decay_vs_l2
    dlcore report runs/weight_decay_vs_l2/<timestamp>

Faster look: dlcore run weight_decay_vs_l2 --config.num_steps=1000 --config.sweep.seeds=4
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(hparams=dict(weight_decay=0.0, l2=0.0), num_steps=3000)
    c.sweep = study(
        dict(
            optimizer=dict(path="optimizer.name", values=("sgd", "adam")),
            weight_decay=dict(values=(0.0, 2e-3)),
            l2=dict(values=(0.0, 1e-3)),
        ),
        select=dict(metric="val/loss", group_by=("optimizer",)),
    )
    c.claim = dict(
        text="Decoupled weight decay λ = 2·l2 equals L2 under SGD and differs from it under Adam (AdamW ≠ Adam + L2)",
        checks=(
            "val/loss: optimizer=sgd weight_decay=0.002 l2=0 ~ optimizer=sgd weight_decay=0 l2=0.001",
            "val/loss: optimizer=adam weight_decay=0.002 l2=0 != optimizer=adam weight_decay=0 l2=0.001",
        ),
    )
    return c
