"""Shared by the multi-device scripts: a tiny dataset and recipe (identical in every process)."""

from __future__ import annotations

import functools

import numpy as np

# Training configuration of the data-parallel runs compared across device and process counts.
HPARAMS = {"learning_rate": 0.05}
RUN = dict(num_steps=40, batch_size=32, eval_every=20, progress=False)


def arrays() -> dict:
    """A learnable 3-class problem as 1-D signals [N, 8, 1] (so augmentations apply)."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8)) * 2

    def draw(n):
        y = rng.integers(0, 3, size=n)
        return (centers[y] + rng.normal(size=(n, 8)))[:, :, None].astype(np.float32), y.astype(np.int32)

    (xt, yt), (xv, yv), (xs, ys) = draw(256), draw(64), draw(64)
    return dict(x_train=xt, y_train=yt, x_val=xv, y_val=yv, x_test=xs, y_test=ys)


def dataset(**overrides):
    from dlcore.data import Dataset

    return Dataset(**{**arrays(), **overrides}, num_classes=3, name="tiny-signals")


def recipe():
    """MLP with batch norm and dropout, SGD, random flips: every kind of per-batch randomness/statistic."""
    from dlcore.data import random_flip
    from dlcore.nn import MLP
    from dlcore.optim import optimizer_fn
    from dlcore.train import Recipe

    return Recipe(MLP(widths=(16,), num_outputs=3, norm="batch", dropout_rate=0.1), optimizer_fn("sgd"),
                  augment=functools.partial(random_flip, prob=0.5))


def flat(tree) -> np.ndarray:
    import jax

    return np.concatenate([np.asarray(a, np.float64).ravel() for a in jax.tree.leaves(tree)])
