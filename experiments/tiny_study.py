"""A seconds-long 2-axis study for tests: learning rate (vectorized) × norm (structural).

Run:

    dlcore run tiny_study
    dlcore report runs/tiny_study/<timestamp>
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.dataset = ml_collections.ConfigDict(
        dict(name="mnist1d", val_fraction=0.1, split_seed=0, standardize=True, data_dir="")
    )
    c.model = ml_collections.ConfigDict(dict(name="mlp", widths=(16,), activation="relu", norm="none"))
    c.optimizer = ml_collections.ConfigDict(dict(name="adam", schedule="constant"))
    c.hparams = ml_collections.ConfigDict(dict(learning_rate=1e-2))
    c.batch_size = 50
    c.num_steps = 30
    c.eval_every = 15
    c.sweep = ml_collections.ConfigDict(
        dict(
            axes=dict(
                learning_rate=dict(scale="log", low=1e-3, high=1e-1, num=3),
                norm=dict(path="model.norm", values=("none", "batch")),
            ),
            strategy="grid",
            seeds=3,
            study_seed=0,
            num_points=0,  # random search: points
            refine=dict(start="grid", rounds=1, top_k=1, num=3),
            budget=dict(max_points=0, max_steps=0),
            select=dict(metric="val/accuracy", mode="auto", statistic="mean", group_by=()),
            max_parallel=0,
            confidence=0.95,
            bootstrap_resamples=1000,
        )
    )
    return c
