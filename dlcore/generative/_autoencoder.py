"""Autoencoder: encode the input into a bottleneck and reconstruct it with the decoder (lecture 12).

``z = enc(x)`` with ``latent_dim`` much smaller than the input, ``x̂ = dec(z)``, trained to make
``x̂ ≈ x`` (unsupervised: the input is its own target). The decoder alone is not a good generator —
nothing makes the codes of unseen inputs look like those of the training set — which is what the
VAE adds.

>>> import jax, jax.numpy as jnp
>>> ae = Autoencoder(data_shape=(6,), latent_dim=2, widths=(8,))
>>> params = ae.init(jax.random.PRNGKey(0), jnp.zeros((3, 6)))
>>> ae.apply(params, jnp.zeros((3, 6))).shape, ae.apply(params, jnp.zeros((3, 6)), method="encode").shape
((3, 6), (3, 2))
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dlcore.errors import ConfigError, ShapeError, unknown_name
from dlcore.nn._activations import get_activation

RECONSTRUCTIONS = ("mse", "bce")
"""Reconstruction losses: squared error (real-valued data) or Bernoulli cross-entropy on logits."""


class Tower(nn.Module):
    """``(Dense -> act)`` per hidden width, then a linear ``Dense(num_outputs)`` (flattens the input)."""

    widths: Sequence[int]
    num_outputs: int
    activation: str | Callable = "relu"

    @nn.compact
    def __call__(self, x):
        act = get_activation(self.activation)
        h = x.reshape((x.shape[0], -1))
        for i, w in enumerate(self.widths):
            h = act(nn.Dense(int(w), name=f"dense_{i}")(h))
        return nn.Dense(int(self.num_outputs), name="out")(h)


def check_data_shape(x: jax.Array, data_shape: Sequence[int], who: str) -> None:
    """Raise a :class:`ShapeError` unless ``x`` is ``[B, *data_shape]``."""
    if tuple(x.shape[1:]) != tuple(data_shape):
        raise ShapeError(
            f"{who} was built for inputs [B, {', '.join(map(str, data_shape))}] but got {tuple(x.shape)}; "
            f"reshape the data or set data_shape={tuple(x.shape[1:])}"
        )


class Autoencoder(nn.Module):
    """MLP autoencoder ``x [B, *data_shape] -> z [B, latent_dim] -> x̂ [B, *data_shape]``.

    Attributes:
      data_shape: shape of one example, e.g. ``(64,)`` for flattened digits or ``(2,)``.
      latent_dim: bottleneck size.
      widths: encoder hidden widths; the decoder mirrors them.
      activation: name or callable.

    Methods: ``encode(x) -> z``, ``decode(z) -> x̂`` (raw outputs: logits for a ``"bce"`` loss),
    ``__call__(x) -> x̂``.
    """

    data_shape: Sequence[int]
    latent_dim: int = 2
    widths: Sequence[int] = (64,)
    activation: str | Callable = "relu"

    def setup(self):
        if self.latent_dim <= 0 or any(int(w) <= 0 for w in self.widths):
            raise ConfigError(f"latent_dim and widths must be positive, got {self.latent_dim}, {self.widths}")
        self.encoder = Tower(self.widths, self.latent_dim, self.activation)
        self.decoder = Tower(tuple(reversed(self.widths)), math.prod(self.data_shape), self.activation)

    def encode(self, x):
        check_data_shape(x, self.data_shape, "Autoencoder")
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z).reshape((z.shape[0],) + tuple(self.data_shape))

    def __call__(self, x, train: bool = False):
        return self.decode(self.encode(x))


def reconstruction_loss(x_hat: jax.Array, x: jax.Array, kind: str = "mse") -> jax.Array:
    """Per-example reconstruction loss ``[B]``, summed over features.

    Args:
      x_hat: decoder outputs ``[B, ...]`` (logits for ``"bce"``).
      x: targets of the same shape (in ``[0, 1]`` for ``"bce"``).
      kind: ``"mse"``: ``Σ (x̂ − x)²``; ``"bce"``: ``−Σ [x log σ(x̂) + (1 − x) log(1 − σ(x̂))]``.

    >>> import jax.numpy as jnp
    >>> reconstruction_loss(jnp.array([[1.0, 2.0]]), jnp.array([[0.0, 0.0]])).tolist()
    [5.0]
    """
    if kind not in RECONSTRUCTIONS:
        raise unknown_name("reconstruction loss", kind, RECONSTRUCTIONS)
    if x_hat.shape != x.shape:
        raise ShapeError(f"reconstruction {x_hat.shape} and target {x.shape} must have the same shape")
    per = jnp.square(x_hat - x) if kind == "mse" else optax.sigmoid_binary_cross_entropy(x_hat, x)
    return per.reshape((x.shape[0], -1)).sum(axis=-1)


def autoencoder_loss_fn(model: Autoencoder, kind: str = "mse") -> Callable:
    """``loss_fn(params, x, keys) -> (mean reconstruction loss, {})`` for :func:`make_gen_step`."""
    if kind not in RECONSTRUCTIONS:
        raise unknown_name("reconstruction loss", kind, RECONSTRUCTIONS)

    def loss_fn(params, x, keys):
        return jnp.mean(reconstruction_loss(model.apply(params, x), x, kind)), {}

    return loss_fn
