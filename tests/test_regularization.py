"""Dropout's scaling conventions (inverted vs the lectures' weight-scaling rule) and DropConnect."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.nn import DropConnectDense, Dropout, drop_connect, dropout, plain_dropout, weight_scaling_rule


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_inverted_dropout_preserves_the_mean(key, rate):
    x = jnp.full((200_000,), 3.0)
    y = dropout(key, x, rate)
    q = 1 - rate
    assert float(jnp.mean(y == 0)) == pytest.approx(rate, abs=0.005)
    np.testing.assert_allclose(np.unique(np.asarray(y)), [0.0, 3.0 / q], rtol=1e-6)
    # E[y] = x: within 4 standard errors (std of one element: 3·√(rate/q))
    se = 3.0 * np.sqrt(rate / q) / np.sqrt(x.size)
    assert abs(float(jnp.mean(y)) - 3.0) < 4 * se


def test_dropout_rate_zero_and_eval_are_identity(key):
    x = jax.random.normal(key, (4, 7))
    np.testing.assert_array_equal(dropout(key, x, 0.0), x)
    m = Dropout(0.5)
    np.testing.assert_array_equal(m.apply({}, x, train=False), x)


def test_lecture_weight_scaling_example_exact():
    """z = θ₁x₁m₁ + θ₂x₂m₂ with p = ½: the four masks average to ½(θ₁x₁ + θ₂x₂) (lecture 8)."""
    theta = np.array([0.7, -1.3])
    x = np.array([2.0, 5.0])
    masks = np.array(list(itertools.product([0, 1], repeat=2)), np.float64)
    expected_z = np.mean([(theta * x * m).sum() for m in masks])
    scaled = np.asarray(weight_scaling_rule(jnp.asarray(theta), 0.5)) @ x
    assert expected_z == pytest.approx(0.5 * (theta @ x))
    assert scaled == pytest.approx(expected_z, rel=1e-6)


def test_weight_scaling_rule_equals_inverted_dropout(key):
    """Plain dropout with W + weight scaling at test ≡ inverted dropout with W' = q·W, unchanged at test."""
    kx, kw, kd = jax.random.split(key, 3)
    x = jax.random.normal(kx, (8, 10))
    w = jax.random.normal(kw, (10, 3))
    rate = 0.3
    q = 1 - rate
    w_inv = q * w
    # Training: the same mask gives the same output (the two are reparametrisations).
    np.testing.assert_allclose(plain_dropout(kd, x, rate) @ w, dropout(kd, x, rate) @ w_inv, rtol=1e-5, atol=1e-6)
    # Test: weight-scaled W equals W' used as is.
    np.testing.assert_allclose(x @ weight_scaling_rule(w, rate), x @ w_inv, rtol=1e-6)
    # And both are the expectation over masks of the training output (Monte Carlo, 4000 masks: ±0.15 is > 6σ).
    keys = jax.random.split(kd, 4000)
    mc = jax.jit(lambda ks: jnp.mean(jax.vmap(lambda k: plain_dropout(k, x, rate) @ w)(ks), axis=0))(keys)
    np.testing.assert_allclose(mc, x @ weight_scaling_rule(w, rate), atol=0.15)


def test_drop_connect_masks_weights(key):
    w = jnp.ones((300, 300))
    m = drop_connect(key, w, 0.4)
    assert float(jnp.mean(m == 0)) == pytest.approx(0.4, abs=0.01)
    np.testing.assert_allclose(np.unique(np.asarray(m)), [0.0, 1 / 0.6], rtol=1e-6)
    np.testing.assert_array_equal(drop_connect(key, w, 0.0), w)


def test_drop_connect_dense_masks_weights_not_activations(key):
    layer = DropConnectDense(64, rate=0.5)
    x = jax.random.normal(key, (3, 64))
    v = layer.init(key, x, train=False)
    w, b = v["params"]["kernel"], v["params"]["bias"]
    rngs = {"dropout": jax.random.PRNGKey(7)}
    # The effective kernel (∂y/∂x of one example) is W with individual entries zeroed.
    w_eff = jax.jit(jax.jacobian(lambda xi: layer.apply(v, xi[None], train=True, rngs=rngs)[0]))(x[0]).T
    zero = np.asarray(w_eff) == 0
    assert zero.mean() == pytest.approx(0.5, abs=0.05)
    kept = ~zero
    np.testing.assert_allclose(np.asarray(w_eff)[kept], 2 * np.asarray(w)[kept], rtol=1e-5)
    # Dropout on inputs or outputs would zero whole rows / columns; DropConnect zeroes none entirely.
    assert not zero.all(axis=1).any() and not zero.all(axis=0).any()
    # One mask per call, shared by the batch: every example sees the same effective kernel.
    y = layer.apply(v, x, train=True, rngs=rngs)
    np.testing.assert_allclose(y, x @ w_eff + b.reshape(1, -1), rtol=1e-5, atol=1e-5)


def test_drop_connect_dense_eval_and_expectation(key):
    layer = DropConnectDense(4, rate=0.3)
    x = jax.random.normal(key, (2, 5))
    v = layer.init(key, x, train=False)
    w, b = v["params"]["kernel"], v["params"]["bias"]
    full = x @ w + b.reshape(1, -1)
    np.testing.assert_allclose(layer.apply(v, x, train=False), full, rtol=1e-6)
    apply = jax.jit(lambda ks: jnp.mean(jax.vmap(lambda k: layer.apply(v, x, train=True, rngs={"dropout": k}))(ks), 0))
    mc = apply(jax.random.split(key, 4000))
    np.testing.assert_allclose(mc, full, atol=0.06)  # inverted scaling: E[train output] = eval output
    # rate as a traced array (sweepable) works under jit
    f = jax.jit(lambda r: DropConnectDense(4, rate=r).apply(v, x, train=True, rngs={"dropout": key}))
    np.testing.assert_allclose(f(jnp.float32(0.0)), full, rtol=1e-6)
