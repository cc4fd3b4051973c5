"""Shared fixtures: a `key`, strict rank promotion, MNIST-1D prepared once per machine."""

from __future__ import annotations

import os
import pathlib

# Generated datasets go under runs/ in the checkout (ignored by git), never into $HOME.
ROOT = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("TFDS_DATA_DIR", str(ROOT / "runs" / "tensorflow_datasets"))

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    """A fresh PRNG key (tests must not share global randomness)."""
    return jax.random.PRNGKey(42)


@pytest.fixture(scope="session")
def mnist1d():
    """MNIST-1D on device (generated offline on first use, 3600/400/1000)."""
    from dlcore.data import load_dataset

    return load_dataset("mnist1d")


@pytest.fixture(scope="session")
def tiny_data():
    """A small, learnable synthetic 3-class problem (fast to compile and train on)."""
    import numpy as np

    from dlcore.data import from_arrays

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8)) * 3
    y = rng.integers(0, 3, size=400)
    x = centers[y] + rng.normal(size=(400, 8))
    yt = rng.integers(0, 3, size=100)
    xt = centers[yt] + rng.normal(size=(100, 8))
    return from_arrays(x, y, xt, yt, val_fraction=0.2, num_classes=3, name="tiny")
