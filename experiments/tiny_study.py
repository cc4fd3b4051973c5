"""A seconds-long 2-axis study for tests: learning rate (vectorized) × norm (structural).

Run:

    dlcore run tiny_study
    dlcore report runs/tiny_study/<timestamp>
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(model=dict(widths=(16,)), batch_size=50, num_steps=30, eval_every=15)
    c.sweep = study(
        dict(
            learning_rate=dict(scale="log", low=1e-3, high=1e-1, num=3),
            norm=dict(path="model.norm", values=("none", "batch")),
        ),
        seeds=3,
        bootstrap_resamples=1000,
    )
    return c
