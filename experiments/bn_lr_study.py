"""Does batch norm allow a 10× larger learning rate? norm ∈ {none, batch} × learning rate × seeds.

A deeper MLP (40-100-100-100-10) trained with SGD + momentum 0.9 on MNIST-1D, 3000 steps. The
learning-rate axis is vectorized (one program per norm setting, all rates and seeds inside it);
`norm` is structural (two programs). The best rate is chosen per norm on the validation split
(`select.group_by=("norm",)`), the test split is evaluated once for each of the two chosen points,
and the report prints the best rate of each (with their ratio), the rates not resolved worse than
each best, and the paired test comparison of the two. Run:

    dlcore run bn_lr_study
    dlcore report runs/bn_lr_study/<timestamp>

Faster look (fewer steps and seeds): dlcore run bn_lr_study --config.num_steps=1000 --config.sweep.seeds=4
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(
        model=dict(widths=(100, 100, 100), bn_momentum=0.9),
        optimizer=dict(name="momentum"),
        num_steps=3000,
    )
    c.sweep = study(
        dict(
            learning_rate=dict(scale="log", low=1e-3, high=3.0, steps="1-3"),  # 1e-3 … 3 (8 rates)
            norm=dict(path="model.norm", values=("none", "batch")),
        ),
        select=dict(group_by=("norm",)),
    )
    c.claim = dict(  # checked by `dlcore report --catalog` (dlcore/cli/_catalog.py)
        text="Batch norm allows larger learning rates: at rates 0.3 and 1 the batch-normed MLP beats the plain one",
        checks=("val/accuracy: norm=batch learning_rate=0.3 > norm=none learning_rate=0.3",
                "val/accuracy: norm=batch learning_rate=1 > norm=none learning_rate=1"),
    )
    return c
