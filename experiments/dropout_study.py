"""Does dropout reduce overfitting? dropout rate × seeds on an over-sized MLP.

The lectures: dropout "reduces the effective capacity of a model, but needs more training time";
at test time every neuron is on (dlcore's inverted dropout scales at train time). A wide MLP
(40-256-256-10, Adam 1e-3) overfits MNIST-1D's 3,600 training examples; the dropout rate is a
vectorized axis, so all rates × seeds run as one compiled program (the rate lives in the train
state as an array). The rate is chosen on the validation split, the test split is evaluated once
for it, and the report says which rates are resolved worse than the best at 95% confidence.
Compare `train/loss` and `val/loss` in the curves: the gap shrinks as the rate grows. Run:

    dlcore run dropout_study
    dlcore report runs/dropout_study/<timestamp>

Faster look: dlcore run dropout_study --config.num_steps=1500 --config.sweep.seeds=4
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.dataset = ml_collections.ConfigDict(
        dict(name="mnist1d", val_fraction=0.1, split_seed=0, standardize=True, data_dir="")
    )
    c.model = ml_collections.ConfigDict(dict(name="mlp", widths=(256, 256), activation="relu", norm="none"))
    c.optimizer = ml_collections.ConfigDict(dict(name="adam", schedule="constant"))
    c.hparams = ml_collections.ConfigDict(dict(learning_rate=1e-3, dropout_rate=0.0))
    c.batch_size = 100
    c.num_steps = 6000
    c.eval_every = 500
    c.sweep = ml_collections.ConfigDict(
        dict(
            axes=dict(dropout_rate=dict(values=(0.0, 0.1, 0.2, 0.3, 0.5))),
            strategy="grid",
            seeds=8,
            study_seed=0,
            budget=dict(max_points=0, max_steps=0),
            select=dict(metric="val/accuracy", mode="auto", statistic="mean", group_by=()),
            max_parallel=0,
            confidence=0.95,
            bootstrap_resamples=2000,
        )
    )
    return c
