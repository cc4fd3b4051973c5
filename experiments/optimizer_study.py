"""Which optimizer, each at its own best learning rate? optimizer × learning rate × seeds.

The lectures' optimizers (SGD, momentum, Nesterov, RMSProp, Adam) compared fairly: each gets a
log-spaced learning-rate grid (1e-4 … 3, the lectures' 1-3 steps) and is judged at its best rate,
chosen on the validation split (`select.group_by=("optimizer",)`); the test split is evaluated
once per optimizer. The optimizer is structural (one compiled program each); the learning rate is
vectorized inside it. MLP 40-100-100-10 on MNIST-1D, a short budget (1500 steps) so that speed of
convergence shows. Run:

    dlcore run optimizer_study
    dlcore report runs/optimizer_study/<timestamp>

Faster look: dlcore run optimizer_study --config.sweep.seeds=3 --config.num_steps=500
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.dataset = ml_collections.ConfigDict(
        dict(name="mnist1d", val_fraction=0.1, split_seed=0, standardize=True, data_dir="")
    )
    c.model = ml_collections.ConfigDict(dict(name="mlp", widths=(100, 100), activation="relu", norm="none"))
    c.optimizer = ml_collections.ConfigDict(dict(name="adam", schedule="constant"))
    c.hparams = ml_collections.ConfigDict(dict(learning_rate=1e-2))
    c.batch_size = 100
    c.num_steps = 1500
    c.eval_every = 250
    c.sweep = ml_collections.ConfigDict(
        dict(
            axes=dict(
                learning_rate=dict(scale="log", low=1e-4, high=3.0, steps="1-3"),
                optimizer=dict(path="optimizer.name", values=("sgd", "momentum", "nesterov", "rmsprop", "adam")),
            ),
            strategy="grid",
            seeds=8,
            study_seed=0,
            budget=dict(max_points=0, max_steps=0),
            select=dict(metric="val/accuracy", mode="auto", statistic="mean", group_by=("optimizer",)),
            max_parallel=0,
            confidence=0.95,
            bootstrap_resamples=2000,
        )
    )
    return c
