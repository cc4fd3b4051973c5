"""Learning rate × seeds on the MNIST-1D MLP (40-100-100-10, Adam, batch 100, 6000 steps).

The lectures' recipe: a log-spaced grid (1e-4, 3e-4, …, 1e-1), every rate for 8 seeds, all 56 runs
as ONE compiled program (the learning rate is a per-run array in the train state), split over the
host devices; the best rate is chosen on the validation split and the test split is evaluated
once, for it. Run:

    dlcore run mnist1d_lr_sweep
    dlcore report runs/mnist1d_lr_sweep/<timestamp>        # re-print the tables, re-draw the plots

Coarse to fine instead (3 rounds around the best, at most 16 points):

    dlcore run mnist1d_lr_sweep --config.sweep.strategy=refine --config.sweep.budget.max_points=16
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config()  # the learning-rate axis sets hparams.learning_rate per run
    c.sweep = study(
        dict(learning_rate=dict(scale="log", low=1e-4, high=1e-1, steps="1-3")),
        refine=dict(rounds=3),
    )
    return c
