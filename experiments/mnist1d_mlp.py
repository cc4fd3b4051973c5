"""MNIST-1D, MLP 40-100-100-10, Adam 1e-2, batch 100, 6000 steps — dlcore's main job.

Run (8 seeds, the `make demo` job):

    dlcore run mnist1d_mlp --seeds 8

Override any value, e.g. a wider net with dropout for 16 seeds:

    dlcore run mnist1d_mlp --seeds 0:16 --config.model.widths="(256, 256)" --config.hparams.dropout_rate=0.1
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.dataset = ml_collections.ConfigDict(
        dict(name="mnist1d", val_fraction=0.1, split_seed=0, standardize=True, data_dir="")
    )
    c.model = ml_collections.ConfigDict(dict(name="mlp", widths=(100, 100), activation="relu", norm="none"))
    c.optimizer = ml_collections.ConfigDict(dict(name="adam", schedule="constant"))
    # Numeric hyperparameters: carried in the train state, vmappable in sweeps.
    c.hparams = ml_collections.ConfigDict(dict(learning_rate=1e-2))
    c.batch_size = 100
    c.num_steps = 6000
    c.eval_every = 500
    c.seeds = 8
    return c
