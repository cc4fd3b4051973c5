"""A seconds-long MNIST-1D run for smoke tests: `dlcore run tiny --seeds 2`."""

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
    c.num_steps = 40
    c.eval_every = 20
    c.seeds = 2
    return c
