"""MNIST-1D, MLP 40-100-100-10, Adam 1e-2, batch 100, 6000 steps — dlcore's main job.

Run (8 seeds, the `make demo` job):

    dlcore run mnist1d_mlp --seeds 8

Override any value, e.g. a wider net with dropout for 16 seeds:

    dlcore run mnist1d_mlp --seeds 0:16 --config.model.widths="(256, 256)" --config.hparams.dropout_rate=0.1
"""

import ml_collections

from _base import base_config


def get_config() -> ml_collections.ConfigDict:
    return base_config()  # the base config is the main job
