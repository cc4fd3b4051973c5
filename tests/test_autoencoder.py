"""Autoencoder and the generative training loop: loss formulas, learning, determinism, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore import random as dr
from dlcore.data import batch_indices
from dlcore.errors import ConfigError, ShapeError
from dlcore.generative import (
    Autoencoder,
    array_sampler,
    autoencoder_loss_fn,
    digits_unit,
    init_gen_state,
    make_gen_step,
    reconstruction_loss,
    train_loop,
)


@pytest.fixture(scope="module")
def digits():
    x, _ = digits_unit()
    return jnp.asarray(x[:512])


def test_reconstruction_losses_match_formulas():
    rng = np.random.default_rng(0)
    x_hat = rng.normal(size=(4, 5)).astype(np.float32)
    x = rng.random((4, 5)).astype(np.float32)
    np.testing.assert_allclose(reconstruction_loss(jnp.asarray(x_hat), jnp.asarray(x), "mse"), ((x_hat - x) ** 2).sum(1), rtol=1e-6)
    p = 1.0 / (1.0 + np.exp(-x_hat))
    bce = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(1)
    np.testing.assert_allclose(reconstruction_loss(jnp.asarray(x_hat), jnp.asarray(x), "bce"), bce, rtol=1e-5)


def test_autoencoder_learns_digits(digits):
    ae = Autoencoder(data_shape=(64,), latent_dim=4, widths=(32,))
    tx = optax.adam(3e-3)
    state = init_gen_state(ae.init(dr.key(0, "params"), digits[:2]), tx, seed=0)
    state, hist = train_loop(make_gen_step(autoencoder_loss_fn(ae, "bce"), tx), state, array_sampler(digits, 64), 150)
    loss = np.asarray(hist["loss"])
    assert loss[-10:].mean() < 0.6 * loss[:5].mean(), loss[[0, -1]]
    assert int(state.step) == 150
    z = ae.apply(state.params, digits[:8], method="encode")
    assert z.shape == (8, 4)


def test_train_loop_is_a_pure_function_of_seed_and_step():
    # Chunking a run (10 + 10 steps) or re-running it gives bit-identical parameters.
    x = jnp.asarray(np.random.default_rng(1).normal(size=(40, 3)), jnp.float32)
    ae = Autoencoder(data_shape=(3,), latent_dim=2, widths=(8,))
    tx = optax.sgd(0.05)
    step = make_gen_step(autoencoder_loss_fn(ae), tx)
    sampler = array_sampler(x, 8)
    s0 = init_gen_state(ae.init(dr.key(3, "params"), x[:1]), tx, seed=3)
    full, hist = train_loop(step, s0, sampler, 20)
    half, _ = train_loop(step, s0, sampler, 10)
    chunked, hist2 = train_loop(step, half, sampler, 10)
    again, _ = train_loop(step, s0, sampler, 20)
    for a, b in ((full, chunked), (full, again)):
        for la, lb in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
            np.testing.assert_array_equal(np.asarray(la), np.asarray(lb))
    np.testing.assert_array_equal(hist["loss"][10:], hist2["loss"])
    # The sampler is dlcore's epoch sampler on the "data" stream.
    np.testing.assert_array_equal(sampler(s0.keys["data"], 7), x[batch_indices(dr.key(3, "data"), 7, 40, 8)])


def test_autoencoder_bad_input_raises():
    ae = Autoencoder(data_shape=(64,), latent_dim=2)
    with pytest.raises(ShapeError, match="data_shape=\\(8, 8\\)"):
        ae.init(jax.random.PRNGKey(0), jnp.zeros((2, 8, 8)))
    with pytest.raises(ConfigError, match="unknown reconstruction loss 'l1'"):
        autoencoder_loss_fn(ae, "l1")
    with pytest.raises(ConfigError, match="latent_dim"):
        Autoencoder(data_shape=(4,), latent_dim=0).init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))
    with pytest.raises(ConfigError, match="batch_size"):
        array_sampler(jnp.zeros((4, 2)), 5)
    with pytest.raises(ShapeError, match="same shape"):
        reconstruction_loss(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
