"""A seconds-long MNIST-1D run for smoke tests: `dlcore run tiny --seeds 2`."""

import ml_collections

from _base import base_config


def get_config() -> ml_collections.ConfigDict:
    return base_config(model=dict(widths=(16,)), batch_size=50, num_steps=40, eval_every=20, seeds=2)
