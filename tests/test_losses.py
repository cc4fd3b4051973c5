"""Classification losses: multiclass (Weston–Watkins, Crammer–Singer) and binary hinge vs formulas and optax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.errors import ConfigError
from dlcore.losses import binary_hinge, cross_entropy, multiclass_hinge


def _ww(s, y, margin):  # Σ_{j≠y} max(0, s_j − s_y + Δ), by loops
    return np.array([sum(max(0.0, s[i, j] - s[i, y[i]] + margin) for j in range(s.shape[1]) if j != y[i])
                     for i in range(len(y))])


def _cs(s, y, margin):  # max(0, max_{j≠y} s_j − s_y + Δ)
    return np.array([max(0.0, max(s[i, j] for j in range(s.shape[1]) if j != y[i]) - s[i, y[i]] + margin)
                     for i in range(len(y))])


@pytest.mark.parametrize("margin", [1.0, 0.5])
def test_multiclass_hinge_matches_formulas(key, margin):
    s = np.asarray(jax.random.normal(key, (32, 5)) * 2, np.float64)
    y = np.asarray(jax.random.randint(jax.random.fold_in(key, 1), (32,), 0, 5))
    np.testing.assert_allclose(multiclass_hinge(jnp.asarray(s), jnp.asarray(y), margin), _ww(s, y, margin), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(multiclass_hinge(jnp.asarray(s), jnp.asarray(y), margin, kind="crammer_singer"),
                               _cs(s, y, margin), rtol=1e-5, atol=1e-5)


def test_crammer_singer_equals_optax(key):
    s = jax.random.normal(key, (64, 10)) * 3
    y = jax.random.randint(jax.random.fold_in(key, 1), (64,), 0, 10)
    np.testing.assert_allclose(multiclass_hinge(s, y, kind="crammer_singer"), optax.losses.multiclass_hinge_loss(s, y),
                               rtol=1e-6, atol=1e-6)


def test_lecture_svm_example():
    # CS231n-style scores (rows: examples; columns: cat, car, frog): losses 2.9, 0, 12.9.
    s = jnp.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    np.testing.assert_allclose(multiclass_hinge(s, jnp.array([0, 1, 2])), [2.9, 0.0, 12.9], atol=1e-5)


def test_hinge_is_zero_with_zero_gradient_past_the_margin_unlike_cross_entropy():
    s = jnp.array([[5.0, 1.0, 0.0]])
    y = jnp.array([0])
    g = jax.grad(lambda s: multiclass_hinge(s, y).sum())(s)
    assert float(multiclass_hinge(s, y)[0]) == 0.0 and float(jnp.abs(g).sum()) == 0.0
    ce = cross_entropy(s, y)
    g_ce = jax.grad(lambda s: cross_entropy(s, y).sum())(s)
    assert float(ce[0]) > 0 and float(g_ce[0, 0]) < 0  # cross-entropy still pushes the margin up


def test_binary_hinge_matches_formula_and_optax(key):
    s = jax.random.normal(key, (50,)) * 2
    y01 = jax.random.bernoulli(jax.random.fold_in(key, 1), 0.5, (50,)).astype(jnp.int32)
    t = 2.0 * y01 - 1.0
    np.testing.assert_allclose(binary_hinge(s, y01), np.maximum(0, 1 - np.asarray(t) * np.asarray(s)), rtol=1e-6)
    np.testing.assert_allclose(binary_hinge(s, t), optax.losses.hinge_loss(s, t), rtol=1e-6)  # ±1 labels too
    np.testing.assert_allclose(binary_hinge(s[:, None], y01, margin=2.0), np.maximum(0, 2 - np.asarray(t * s)),
                               rtol=1e-6)


def test_unknown_hinge_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown hinge kind 'ww'; valid choices: crammer_singer, weston_watkins"):
        multiclass_hinge(jnp.zeros((1, 3)), jnp.array([0]), kind="ww")
