"""Does L2 regularization reduce overfitting? L2 strength × seeds on an over-sized MLP.

The lectures' L2 penalty: loss = cross-entropy + λ·Σ w² over the kernels (biases exempt;
``dlcore.train.weight_penalty``), which prefers spread-out weights (W2 = [¼,¼,¼,¼] over
W1 = [1,0,0,0]). The same 40-256-256-10 MLP as `dropout_study` (Adam 1e-3, 6000 steps) overfits
MNIST-1D; λ is a vectorized axis (one compiled program for every λ and seed). λ is chosen on the
validation split, the test split is evaluated once for it, and the report says which strengths
are resolved worse than the best at 95% confidence. Run:

    dlcore run l2_study
    dlcore report runs/l2_study/<timestamp>

Faster look: dlcore run l2_study --config.num_steps=1500 --config.sweep.seeds=4
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(model=dict(widths=(256, 256)), hparams=dict(learning_rate=1e-3, l2=0.0))
    c.sweep = study(dict(l2=dict(values=(0.0, 1e-5, 1e-4, 1e-3, 1e-2))))
    c.claim = dict(  # checked by `dlcore report --catalog` (dlcore/cli/_catalog.py)
        text="L2 regularization reduces overfitting: λ = 1e-4 validates better than no penalty",
        checks=("val/loss: l2=0.0001 < l2=0", "val/accuracy: l2=0.0001 > l2=0"),
    )
    return c
