"""Variational autoencoder: a Gaussian latent distribution, the reparameterisation trick, the ELBO.

The encoder outputs ``q(z|x) = N(μ(x), diag σ²(x))`` (as ``μ`` and ``log σ²``); a latent is drawn as
``z = μ + σ ⊙ ε`` with ``ε ~ N(0, I)`` from an explicit key, so gradients flow through ``μ`` and
``σ`` (the reparameterisation trick). Training maximises the evidence lower bound

    ``ELBO(x) = E_q[log p(x|z)] − KL(q(z|x) ‖ N(0, I))``,
    ``KL = ½ Σ_k (σ_k² + μ_k² − 1 − log σ_k²)`` (closed form),

i.e. "the reconstruction is close to the input and the latent space is close to a Gaussian"
(lecture 12). At test time, sample ``z ~ N(0, I)`` and decode (:func:`sample_prior`).

>>> import jax, jax.numpy as jnp
>>> vae = VAE(data_shape=(4,), latent_dim=2, widths=(8,))
>>> params = vae.init(jax.random.PRNGKey(0), jnp.zeros((3, 4)), jax.random.PRNGKey(1))
>>> x_hat, mu, logvar = vae.apply(params, jnp.zeros((3, 4)), jax.random.PRNGKey(2))
>>> x_hat.shape, mu.shape
((3, 4), (3, 2))
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dlcore.errors import ConfigError, ShapeError, unknown_name
from dlcore.generative._autoencoder import Tower, check_data_shape

LIKELIHOODS = ("bernoulli", "gaussian")
"""Decoder likelihoods ``p(x|z)``: Bernoulli on logits (pixels in [0, 1]) or Gaussian with fixed std."""


def reparameterize(key: jax.Array, mu: jax.Array, logvar: jax.Array) -> jax.Array:
    """``z = μ + exp(½ log σ²) ⊙ ε``, ``ε ~ N(0, I)`` drawn from ``key`` (differentiable in μ, σ).

    >>> import jax, jax.numpy as jnp
    >>> z = reparameterize(jax.random.PRNGKey(0), jnp.zeros((2, 3)), jnp.full((2, 3), -jnp.inf))
    >>> z.tolist()  # σ = 0: z = μ
    [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    if mu.shape != logvar.shape:
        raise ShapeError(f"mu {mu.shape} and logvar {logvar.shape} must have the same shape")
    eps = jax.random.normal(key, mu.shape, mu.dtype)
    return mu + jnp.exp(0.5 * logvar) * eps


def gaussian_kl(mu: jax.Array, logvar: jax.Array) -> jax.Array:
    """``KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ (σ² + μ² − 1 − log σ²)`` per example ``[B]``.

    >>> import jax.numpy as jnp
    >>> gaussian_kl(jnp.zeros((1, 3)), jnp.zeros((1, 3))).tolist()
    [0.0]
    """
    return 0.5 * jnp.sum(jnp.exp(logvar) + jnp.square(mu) - 1.0 - logvar, axis=-1)


def log_likelihood(x_hat: jax.Array, x: jax.Array, likelihood: str = "bernoulli", obs_std: float = 1.0) -> jax.Array:
    """``log p(x|z)`` per example ``[B]`` from the decoder output ``x_hat``.

    Args:
      x_hat: decoder outputs ``[B, ...]``: logits (Bernoulli) or means (Gaussian).
      x: data of the same shape (in ``[0, 1]`` for Bernoulli).
      likelihood: ``"bernoulli"``: ``Σ x log σ(x̂) + (1−x) log(1−σ(x̂))``; ``"gaussian"``:
        ``−½ Σ ((x − x̂)/s)² − ½ D log(2π s²)`` with ``s = obs_std``.
      obs_std: the Gaussian's fixed standard deviation ``s``.

    >>> import jax.numpy as jnp
    >>> round(float(log_likelihood(jnp.zeros((1, 1)), jnp.ones((1, 1)))[0]), 4)  # log ½
    -0.6931
    """
    if likelihood not in LIKELIHOODS:
        raise unknown_name("likelihood", likelihood, LIKELIHOODS)
    if x_hat.shape != x.shape:
        raise ShapeError(f"decoder output {x_hat.shape} and data {x.shape} must have the same shape")
    flat = lambda a: a.reshape((a.shape[0], -1))
    if likelihood == "bernoulli":
        return -jnp.sum(flat(optax.sigmoid_binary_cross_entropy(x_hat, x)), axis=-1)
    d = math.prod(x.shape[1:])
    sq = jnp.sum(flat(jnp.square((x - x_hat) / obs_std)), axis=-1)
    return -0.5 * sq - 0.5 * d * jnp.log(2.0 * jnp.pi * jnp.square(obs_std))


class VAE(nn.Module):
    """MLP VAE: encoder ``x -> (μ, log σ²)`` ``[B, latent_dim]`` each, decoder ``z -> x̂``.

    Attributes:
      data_shape: shape of one example, e.g. ``(64,)``.
      latent_dim: size of ``z``.
      widths: encoder hidden widths; the decoder mirrors them.
      activation: name or callable.

    Methods: ``encode(x) -> (mu, logvar)``, ``decode(z) -> x̂`` (logits for a Bernoulli
    likelihood), ``__call__(x, key) -> (x̂, mu, logvar)`` with ``z`` reparameterised from ``key``.
    """

    data_shape: Sequence[int]
    latent_dim: int = 2
    widths: Sequence[int] = (64,)
    activation: str | Callable = "relu"

    def setup(self):
        if self.latent_dim <= 0 or any(int(w) <= 0 for w in self.widths):
            raise ConfigError(f"latent_dim and widths must be positive, got {self.latent_dim}, {self.widths}")
        self.encoder = Tower(self.widths, 2 * self.latent_dim, self.activation)
        self.decoder = Tower(tuple(reversed(self.widths)), math.prod(self.data_shape), self.activation)

    def encode(self, x):
        check_data_shape(x, self.data_shape, "VAE")
        h = self.encoder(x)
        return h[:, : self.latent_dim], h[:, self.latent_dim :]

    def decode(self, z):
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ShapeError(f"latents must be [B, {self.latent_dim}], got {tuple(z.shape)}")
        return self.decoder(z).reshape((z.shape[0],) + tuple(self.data_shape))

    def __call__(self, x, key):
        mu, logvar = self.encode(x)
        return self.decode(reparameterize(key, mu, logvar)), mu, logvar


def elbo(
    model: VAE, params, key: jax.Array, x: jax.Array, likelihood: str = "bernoulli", obs_std: float = 1.0
) -> jax.Array:
    """One-sample estimate of the ELBO per example ``[B]`` (a lower bound on ``log p(x)``)."""
    x_hat, mu, logvar = model.apply(params, x, key)
    return log_likelihood(x_hat, x, likelihood, obs_std) - gaussian_kl(mu, logvar)


def vae_loss_fn(model: VAE, likelihood: str = "bernoulli", beta=1.0, obs_std: float = 1.0) -> Callable:
    """``loss_fn(params, x, keys) -> (−ELBO averaged over the batch, metrics)`` for :func:`make_gen_step`.

    Args:
      model: the :class:`VAE`.
      likelihood: see :data:`LIKELIHOODS`.
      beta: weight of the KL term (1 = the ELBO; ≠ 1 = β-VAE); may be a traced array.
      obs_std: Gaussian likelihood's std.
    Returns:
      the loss function; it draws ``z`` from ``keys["latent"]`` and reports ``reconstruction``
      (``−E log p(x|z)``), ``kl`` and ``elbo``.
    """
    if likelihood not in LIKELIHOODS:
        raise unknown_name("likelihood", likelihood, LIKELIHOODS)

    def loss_fn(params, x, keys):
        x_hat, mu, logvar = model.apply(params, x, keys["latent"])
        recon = -log_likelihood(x_hat, x, likelihood, obs_std)
        kl = gaussian_kl(mu, logvar)
        loss = jnp.mean(recon + beta * kl)
        return loss, {"reconstruction": jnp.mean(recon), "kl": jnp.mean(kl), "elbo": -jnp.mean(recon + kl)}

    return loss_fn


def sample_prior(model: VAE, params, key: jax.Array, num_samples: int, likelihood: str = "bernoulli") -> jax.Array:
    """Generate: ``z ~ N(0, I)`` from ``key``, decode, return the mean of ``p(x|z)``.

    Returns:
      ``[num_samples, *data_shape]``: probabilities ``σ(x̂)`` (Bernoulli) or means ``x̂`` (Gaussian).
    """
    if likelihood not in LIKELIHOODS:
        raise unknown_name("likelihood", likelihood, LIKELIHOODS)
    if int(num_samples) <= 0:
        raise ConfigError(f"num_samples must be positive, got {num_samples}")
    z = jax.random.normal(key, (int(num_samples), model.latent_dim))
    x_hat = model.apply(params, z, method="decode")
    return jax.nn.sigmoid(x_hat) if likelihood == "bernoulli" else x_hat
