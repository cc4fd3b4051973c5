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


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.dataset = ml_collections.ConfigDict(
        dict(name="mnist1d", val_fraction=0.1, split_seed=0, standardize=True, data_dir="")
    )
    c.model = ml_collections.ConfigDict(dict(name="mlp", widths=(256, 256), activation="relu", norm="none"))
    c.optimizer = ml_collections.ConfigDict(dict(name="adam", schedule="constant"))
    c.hparams = ml_collections.ConfigDict(dict(learning_rate=1e-3, l2=0.0))
    c.batch_size = 100
    c.num_steps = 6000
    c.eval_every = 500
    c.sweep = ml_collections.ConfigDict(
        dict(
            axes=dict(l2=dict(values=(0.0, 1e-5, 1e-4, 1e-3, 1e-2))),
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
