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


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.dataset = ml_collections.ConfigDict(
        dict(name="mnist1d", val_fraction=0.1, split_seed=0, standardize=True, data_dir="")
    )
    c.model = ml_collections.ConfigDict(dict(name="mlp", widths=(100, 100), activation="relu", norm="none"))
    c.optimizer = ml_collections.ConfigDict(dict(name="adam", schedule="constant"))
    c.hparams = ml_collections.ConfigDict(dict(learning_rate=1e-2))  # the axis sets it per run
    c.batch_size = 100
    c.num_steps = 6000
    c.eval_every = 500
    c.sweep = ml_collections.ConfigDict(
        dict(
            axes=dict(learning_rate=dict(scale="log", low=1e-4, high=1e-1, steps="1-3")),
            strategy="grid",  # grid | random | refine
            seeds=8,
            study_seed=0,
            num_points=0,  # random search: how many points
            refine=dict(start="grid", rounds=3, top_k=1, num=3),
            budget=dict(max_points=0, max_steps=0),  # 0 = unlimited
            select=dict(metric="val/accuracy", mode="auto", statistic="mean", group_by=()),
            max_parallel=0,  # most runs in one program (0 = all at once)
            confidence=0.95,
            bootstrap_resamples=2000,
        )
    )
    return c
