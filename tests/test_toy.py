"""Toy distributions for generative models (keyed, right shapes and geometry) and the MMD measure."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore import random as dr
from dlcore.errors import ConfigError, ShapeError
from dlcore.generative import TOY_DISTRIBUTIONS, digits_unit, mmd_rbf, sample_toy, toy_sampler


@pytest.mark.parametrize("name", sorted(TOY_DISTRIBUTIONS))
def test_toys_are_keyed(name, key):
    a, b = sample_toy(name, key, 64), sample_toy(name, key, 64)
    c = sample_toy(name, jax.random.fold_in(key, 1), 64)
    assert a.shape == (64, 2) and a.dtype == jnp.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    sampler = toy_sampler(name, 32)
    np.testing.assert_array_equal(sampler(key, 5), sample_toy(name, dr.step_key(key, 5), 32))


def test_toy_geometry(key):
    x = np.asarray(sample_toy("eight_gaussians", key, 8000, radius=2.0, std=0.05))
    angle = np.round(np.arctan2(x[:, 1], x[:, 0]) / (2 * np.pi / 8)).astype(int) % 8
    centers = 2.0 * np.stack([np.cos(angle * np.pi / 4), np.sin(angle * np.pi / 4)], 1)
    assert np.abs(x - centers).max() < 0.4
    np.testing.assert_allclose(np.bincount(angle, minlength=8) / 8000, 1 / 8, atol=0.015)
    r = np.linalg.norm(np.asarray(sample_toy("ring", key, 4000, radius=1.5, std=0.05)), axis=1)
    assert abs(r.mean() - 1.5) < 0.01 and abs(r.std() - 0.05) < 0.01
    from sklearn.datasets import make_moons

    moons = np.asarray(sample_toy("two_moons", key, 4000, noise=0.0))
    ref, _ = make_moons(4000, noise=0.0, random_state=0)
    np.testing.assert_allclose(moons.mean(0), ref.mean(0), atol=0.03)
    np.testing.assert_allclose(np.sort(moons[:, 0])[::400], np.sort(ref[:, 0])[::400], atol=0.06)


def test_mmd_separates_distributions(key):
    k1, k2 = jax.random.split(key)
    x = sample_toy("ring", k1, 300)
    y = sample_toy("ring", k2, 300)
    shifted = [float(mmd_rbf(x, y + d)) for d in (0.0, 0.5, 2.0)]
    assert shifted[0] < 0.01 < shifted[1] < shifted[2]
    assert float(mmd_rbf(x, x)) == pytest.approx(0.0, abs=1e-6)


def test_digits_unit():
    x, y = digits_unit()
    assert x.shape == (1797, 64) and x.dtype == np.float32 and y.shape == (1797,)
    assert x.min() == 0.0 and x.max() == 1.0


def test_toy_bad_input_raises(key):
    with pytest.raises(ConfigError, match="unknown toy distribution 'spiral'; valid choices: eight_gaussians"):
        sample_toy("spiral", key, 10)
    with pytest.raises(ConfigError, match="has no parameter 'sigma'; valid: radius, std"):
        toy_sampler("ring", 8, sigma=0.1)
    with pytest.raises(ConfigError, match="positive"):
        sample_toy("ring", key, 0)
    with pytest.raises(ShapeError, match="mmd_rbf"):
        mmd_rbf(jnp.zeros((3, 2)), jnp.zeros((3, 3)))
