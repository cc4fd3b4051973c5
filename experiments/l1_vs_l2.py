"""L1 vs L2 regularization: L1 gives sparse weights, L2 small distributed ones.

The lectures' example: for an input x = [1, 1, 1, 1], W1 = [1, 0, 0, 0] and W2 = [¼, ¼, ¼, ¼]
give the same output; L2 (Σw²: ¼ vs 1) prefers the spread-out W2, L1 (Σ|w|: 1 vs 1) does not
mind, and along the way its constant pull drives unneeded weights to exactly (near) zero. Here the
40-256-256-10 MLP of `l2_study` trains on MNIST-1D with an L1 or an L2 penalty of the same strength
λ (``dlcore.train.weight_penalty``, biases exempt); ``results.csv`` records for every run the
fraction of kernel weights with |w| < 1e-3 (``weights/sparsity``) and their L2 norm. Both penalties
are vectorized axes (one compiled program). Run:

    dlcore run l1_vs_l2
    dlcore report runs/l1_vs_l2/<timestamp>

Faster look: dlcore run l1_vs_l2 --config.num_steps=2000 --config.sweep.seeds=4
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(model=dict(widths=(256, 256)), hparams=dict(learning_rate=1e-3, l1=0.0, l2=0.0))
    c.sweep = study(
        dict(l1=dict(values=(0.0, 1e-4, 1e-3)), l2=dict(values=(0.0, 1e-4, 1e-3))),
        select=dict(group_by=("l1", "l2")),  # every point is tested: the claim is about the weights
    )
    c.claim = dict(
        text="L1 drives many weights to (near) zero, L2 of the same strength does not: more weights with "
             "|w| < 1e-3 under L1",
        checks=(
            "weights/sparsity: l1=0.001 l2=0 > l1=0 l2=0.001",
            "weights/sparsity: l1=0.0001 l2=0 > l1=0 l2=0.0001",
            "weights/sparsity: l1=0.001 l2=0 > l1=0 l2=0",
        ),
    )
    return c
