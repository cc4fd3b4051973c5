"""GAN: the lectures' losses on fixed logits, saturation, a compiled alternating update that learns."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore import random as dr
from dlcore.errors import ConfigError, ShapeError
from dlcore.generative import (
    Tower, array_sampler, digits_unit, discriminator_loss, gan_sample, generator_loss, init_gan_state, make_gan_step,
    mlp_gan, mmd_rbf, sample_toy, toy_sampler, train_loop
)

REAL = np.array([2.0, -0.5, 0.3, 4.0], np.float32)
FAKE = np.array([-3.0, 0.1, 1.2], np.float32)


def _d(logits):
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def test_losses_equal_lecture_formulas_on_fixed_logits():
    j_d = -0.5 * np.mean(np.log(_d(REAL))) - 0.5 * np.mean(np.log(1 - _d(FAKE)))
    assert float(discriminator_loss(jnp.asarray(REAL), jnp.asarray(FAKE))) == pytest.approx(j_d, rel=1e-6)
    # Minimax: J_G = -J_D (with the real term); without it, the part that depends on G.
    assert float(generator_loss(jnp.asarray(FAKE), "minimax", jnp.asarray(REAL))) == pytest.approx(-j_d, rel=1e-6)
    g_mm = 0.5 * np.mean(np.log(1 - _d(FAKE)))
    assert float(generator_loss(jnp.asarray(FAKE), "minimax")) == pytest.approx(g_mm, rel=1e-6)
    g_ns = -0.5 * np.mean(np.log(_d(FAKE)))
    assert float(generator_loss(jnp.asarray(FAKE), "non_saturating")) == pytest.approx(g_ns, rel=1e-6)
    # Stable for confident logits (no log(0)).
    assert np.isfinite(float(discriminator_loss(jnp.array([100.0]), jnp.array([-100.0]))))
    assert np.isfinite(float(generator_loss(jnp.array([-100.0]))))


def test_minimax_generator_gradient_saturates_non_saturating_does_not():
    confident = jnp.full((4,), -8.0)  # D rejects the fakes, as early in training
    g_mm = jax.grad(lambda l: generator_loss(l, "minimax"))(confident)
    g_ns = jax.grad(lambda l: generator_loss(l, "non_saturating"))(confident)
    s = _d(np.array(-8.0))
    np.testing.assert_allclose(g_mm, np.full(4, -0.5 * s / 4), rtol=1e-5)
    np.testing.assert_allclose(g_ns, np.full(4, -0.5 * (1 - s) / 4), rtol=1e-5)
    assert float(jnp.abs(g_ns[0])) > 1000 * float(jnp.abs(g_mm[0]))


def test_gan_learns_ring():
    gen, disc = mlp_gan(data_dim=2, latent_dim=2, widths=(32, 32))
    g_tx, d_tx = optax.adam(1e-3, b1=0.5), optax.adam(1e-3, b1=0.5)
    data = sample_toy("ring", dr.key(0, "data"), 128)
    state = init_gan_state(gen, disc, g_tx, d_tx, seed=0, latent_dim=2, x_example=data[:64])
    before = gan_sample(gen, state.g_params, dr.key(1, "latent"), 400, 2)
    step = make_gan_step(gen, disc, g_tx, d_tx, latent_dim=2)
    state, hist = train_loop(step, state, toy_sampler("ring", 128), 300)
    after = gan_sample(gen, state.g_params, dr.key(1, "latent"), 400, 2)
    target = sample_toy("ring", dr.key(7, "data"), 400)
    assert float(mmd_rbf(after, target)) < 0.25 * float(mmd_rbf(before, target))
    assert int(state.step) == 300 and all(bool(jnp.all(jnp.isfinite(v))) for v in hist.values())
    # Near equilibrium D cannot tell: its outputs stay away from 0 and 1.
    assert 0.2 < float(hist["d_real"][-20:].mean()) < 0.8 and 0.2 < float(hist["d_fake"][-20:].mean()) < 0.8


def test_gan_learns_digits_and_covers_the_classes():
    from sklearn.linear_model import LogisticRegression

    xd, yd = digits_unit()
    x = jnp.asarray(2.0 * xd - 1.0)  # pixels in [-1, 1]
    train, held_out = x[:1500], x[1500:]
    gen, disc = mlp_gan(data_dim=64, latent_dim=16, widths=(128, 128))
    g_tx, d_tx = optax.adam(1e-3, b1=0.5), optax.adam(1e-3, b1=0.5)
    state = init_gan_state(gen, disc, g_tx, d_tx, seed=0, latent_dim=16, x_example=train[:64])
    before = gan_sample(gen, state.g_params, dr.key(1, "latent"), 500, 16)
    step = make_gan_step(gen, disc, g_tx, d_tx, latent_dim=16)
    state, hist = train_loop(step, state, array_sampler(train, 64), 1000)
    after = gan_sample(gen, state.g_params, dr.key(1, "latent"), 500, 16)
    classifier = LogisticRegression(max_iter=2000).fit(np.asarray(train), yd[:1500])
    probs = classifier.predict_proba(np.clip(np.asarray(after), -1, 1))
    counts = np.bincount(probs.argmax(1), minlength=10)
    # Seeds 0-4 of this program: MMD (bandwidth 4) to held-out digits 0.061, 0.042, 0.052, 0.058, 0.058
    # after training vs 0.60-0.68 before (held-out vs real digits: 0.009); a digit classifier's mean
    # confidence on the samples 0.767-0.793; classes drawn >= 10 times out of 500: 10, 10, 10, 10, 9.
    assert float(mmd_rbf(after, held_out, 4.0)) < 0.15 * float(mmd_rbf(before, held_out, 4.0))
    assert float(probs.max(1).mean()) > 0.7, probs.max(1).mean()
    assert np.sum(counts >= 10) >= 8, counts  # no mode collapse
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in hist.values())


def test_discriminator_step_lowers_its_loss():
    # With G fixed (learning rate 0), repeated D updates must lower J_D (it is D's own objective).
    gen, disc = mlp_gan(data_dim=2, latent_dim=2, widths=(16,))
    g_tx, d_tx = optax.sgd(0.0), optax.adam(1e-2)
    state = init_gan_state(gen, disc, g_tx, d_tx, seed=1, latent_dim=2, x_example=jnp.zeros((64, 2)))
    step = make_gan_step(gen, disc, g_tx, d_tx, latent_dim=2, loss="minimax", d_steps=2)
    state, hist = train_loop(step, state, toy_sampler("eight_gaussians", 64, radius=3.0), 60)
    d = np.asarray(hist["d_loss"])
    assert d[-5:].mean() < 0.5 * d[:3].mean(), d[[0, -1]]


def test_gan_bad_input_raises():
    gen, disc = mlp_gan(2, 2)
    with pytest.raises(ConfigError, match="unknown generator loss 'wasserstein'"):
        make_gan_step(gen, disc, optax.sgd(0.1), optax.sgd(0.1), 2, loss="wasserstein")
    with pytest.raises(ConfigError, match="d_steps"):
        make_gan_step(gen, disc, optax.sgd(0.1), optax.sgd(0.1), 2, d_steps=0)
    with pytest.raises(ConfigError, match="real_logits only applies"):
        generator_loss(jnp.zeros(2), "non_saturating", jnp.zeros(2))
    wide = Tower((8,), 3)  # a discriminator must return one logit per example
    state = init_gan_state(gen, wide, optax.sgd(0.1), optax.sgd(0.1), 0, 2, jnp.zeros((4, 2)))
    step = make_gan_step(gen, wide, optax.sgd(0.1), optax.sgd(0.1), 2)
    with pytest.raises(ShapeError, match="logits \\[B, 1\\]"):
        step(state, jnp.zeros((4, 2)))
