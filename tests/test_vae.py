"""VAE: reparameterisation, KL and likelihood vs references, learning on digits, sampling, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from dlcore import random as dr
from dlcore.errors import ConfigError, ShapeError
from dlcore.generative import (
    VAE,
    array_sampler,
    digits_unit,
    elbo,
    gaussian_kl,
    init_gen_state,
    log_likelihood,
    make_gen_step,
    reparameterize,
    sample_prior,
    train_loop,
    vae_loss_fn,
)


def test_reparameterize_distribution_and_gradients(key):
    mu = jnp.array([[1.0, -2.0]])
    logvar = jnp.log(jnp.array([[0.25, 4.0]]))
    z = reparameterize(key, jnp.broadcast_to(mu, (20000, 2)), jnp.broadcast_to(logvar, (20000, 2)))
    np.testing.assert_allclose(z.mean(0), mu[0], atol=0.05)
    np.testing.assert_allclose(z.var(0), [0.25, 4.0], rtol=0.05)
    # dz/dμ = 1 and dz/dlogσ² = ½ σ ε: gradients flow through the sample.
    eps = jax.random.normal(key, (1, 2))
    g_mu, g_lv = jax.grad(lambda m, lv: jnp.sum(reparameterize(key, m, lv)), argnums=(0, 1))(mu, logvar)
    np.testing.assert_allclose(g_mu, jnp.ones_like(mu))
    np.testing.assert_allclose(g_lv, 0.5 * jnp.exp(0.5 * logvar) * eps, rtol=1e-6)


def test_gaussian_kl_matches_monte_carlo():
    mu, sd = np.array([0.5, -1.0, 0.0]), np.array([0.7, 1.5, 1.0])
    kl = float(gaussian_kl(jnp.asarray(mu)[None], jnp.log(jnp.asarray(sd) ** 2)[None])[0])
    z = np.random.default_rng(0).normal(mu, sd, size=(200_000, 3))
    mc = np.mean(np.sum(stats.norm.logpdf(z, mu, sd) - stats.norm.logpdf(z), axis=1))
    assert abs(kl - mc) < 0.02, (kl, mc)
    assert float(gaussian_kl(jnp.zeros((1, 3)), jnp.zeros((1, 3)))[0]) == 0.0


def test_log_likelihoods_match_scipy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 6)).astype(np.float32)
    xb = (rng.random((3, 6)) < 0.5).astype(np.float32)
    ref = stats.bernoulli.logpmf(xb, 1 / (1 + np.exp(-logits))).sum(1)
    np.testing.assert_allclose(log_likelihood(jnp.asarray(logits), jnp.asarray(xb), "bernoulli"), ref, rtol=1e-5)
    x = rng.normal(size=(3, 6)).astype(np.float32)
    ref = stats.norm.logpdf(x, logits, 0.5).sum(1)
    np.testing.assert_allclose(log_likelihood(jnp.asarray(logits), jnp.asarray(x), "gaussian", 0.5), ref, rtol=1e-5)


def test_vae_learns_digits_and_samples():
    x = jnp.asarray(digits_unit()[0][:512])
    vae = VAE(data_shape=(64,), latent_dim=4, widths=(32,))
    tx = optax.adam(3e-3)

    def run(seed):
        state = init_gen_state(vae.init(dr.key(seed, "params"), x[:2], dr.key(seed, "latent")), tx, seed)
        return train_loop(make_gen_step(vae_loss_fn(vae), tx), state, array_sampler(x, 64), 150, jit=False)

    states, hist = jax.jit(jax.vmap(run))(jnp.arange(2))  # vmapped over seeds
    loss = np.asarray(hist["loss"])
    assert np.all(loss[:, -10:].mean(1) < 0.7 * loss[:, :5].mean(1)), loss[:, [0, -1]]
    np.testing.assert_allclose(hist["elbo"], -(hist["reconstruction"] + hist["kl"]), rtol=1e-5)
    assert np.all(np.asarray(hist["kl"][:, -1]) > 0.0)  # the latents carry information
    params = jax.tree.map(lambda a: a[0], states.params)
    samples = sample_prior(vae, params, dr.key(0, "latent", 0), 16)
    assert samples.shape == (16, 64) and bool(jnp.all(jnp.isfinite(samples)))
    assert bool(jnp.all((samples >= 0) & (samples <= 1)))
    # The ELBO is a lower bound that training raised: trained params beat the initial ones.
    p0 = vae.init(dr.key(0, "params"), x[:2], dr.key(0, "latent"))
    k = dr.key(0, "latent", 999)
    assert float(jnp.mean(elbo(vae, params, k, x[:256]))) > float(jnp.mean(elbo(vae, p0, k, x[:256]))) + 5.0


def test_vae_bad_input_raises():
    vae = VAE(data_shape=(4,), latent_dim=2, widths=(8,))
    params = vae.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)), jax.random.PRNGKey(1))
    with pytest.raises(ShapeError, match="latents must be \\[B, 2\\]"):
        vae.apply(params, jnp.zeros((3, 5)), method="decode")
    with pytest.raises(ShapeError, match="data_shape"):
        vae.apply(params, jnp.zeros((3, 5)), jax.random.PRNGKey(1))
    with pytest.raises(ConfigError, match="unknown likelihood 'poisson'"):
        vae_loss_fn(vae, likelihood="poisson")
    with pytest.raises(ConfigError, match="num_samples"):
        sample_prior(vae, params, jax.random.PRNGKey(0), 0)
    with pytest.raises(ShapeError, match="same shape"):
        reparameterize(jax.random.PRNGKey(0), jnp.zeros((2, 3)), jnp.zeros((2, 2)))
