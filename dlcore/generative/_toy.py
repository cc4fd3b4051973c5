"""Small offline data for generative models: keyed 2-D toy distributions and the 8×8 digits.

Toy distributions are sampled from a key (no global state), so a training run can draw a fresh
batch every step from the ``"data"`` stream (see :func:`dlcore.generative.toy_sampler`). They are
the usual sanity checks for generative models: *two moons* (curved, two components), *eight
gaussians* (a mode-collapse detector for GANs) and a *ring* (a thin manifold).

>>> import jax
>>> sample_toy("eight_gaussians", jax.random.PRNGKey(0), 5).shape
(5, 2)
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.errors import ConfigError, unknown_name


def two_moons(key: jax.Array, n: int, noise: float = 0.05) -> jax.Array:
    """Two interleaving half circles (scikit-learn's ``make_moons`` layout), keyed.

    Args:
      key: PRNG key.
      n: number of points.
      noise: std of the Gaussian noise added to each coordinate.
    Returns:
      ``[n, 2]`` float32 points (upper moon around (0, 0.5), lower moon around (1, 0)).

    >>> import jax
    >>> two_moons(jax.random.PRNGKey(0), 3).shape
    (3, 2)
    """
    k_moon, k_t, k_noise = jax.random.split(key, 3)
    lower = jax.random.bernoulli(k_moon, 0.5, (n,))
    t = jax.random.uniform(k_t, (n,), minval=0.0, maxval=jnp.pi)
    upper_xy = jnp.stack([jnp.cos(t), jnp.sin(t)], axis=-1)
    lower_xy = jnp.stack([1.0 - jnp.cos(t), 0.5 - jnp.sin(t)], axis=-1)
    xy = jnp.where(lower[:, None], lower_xy, upper_xy)
    return xy + noise * jax.random.normal(k_noise, (n, 2))


def eight_gaussians(key: jax.Array, n: int, radius: float = 2.0, std: float = 0.1) -> jax.Array:
    """A mixture of 8 equal Gaussians centred on a circle of ``radius`` (angles ``2πk/8``).

    >>> import jax
    >>> x = eight_gaussians(jax.random.PRNGKey(0), 1000, std=0.0)
    >>> bool(jnp.allclose(jnp.linalg.norm(x, axis=1), 2.0, atol=1e-5))
    True
    """
    k_c, k_noise = jax.random.split(key)
    angle = 2.0 * jnp.pi * jax.random.randint(k_c, (n,), 0, 8) / 8.0
    centers = radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)
    return centers + std * jax.random.normal(k_noise, (n, 2))


def ring(key: jax.Array, n: int, radius: float = 2.0, std: float = 0.05) -> jax.Array:
    """Points on a circle of ``radius`` (uniform angle) with radial Gaussian noise of ``std``.

    >>> import jax
    >>> ring(jax.random.PRNGKey(0), 4).shape
    (4, 2)
    """
    k_a, k_r = jax.random.split(key)
    angle = jax.random.uniform(k_a, (n,), minval=0.0, maxval=2.0 * jnp.pi)
    r = radius + std * jax.random.normal(k_r, (n,))
    return jnp.stack([r * jnp.cos(angle), r * jnp.sin(angle)], axis=-1)


TOY_DISTRIBUTIONS = {"two_moons": two_moons, "eight_gaussians": eight_gaussians, "ring": ring}
"""Keyed 2-D toy distributions by name: ``fn(key, n, **params) -> [n, 2]``."""


def check_toy(name: str, params: dict | None = None) -> None:
    """Raise a clear :class:`~dlcore.errors.ConfigError` for an unknown distribution or parameter."""
    if name not in TOY_DISTRIBUTIONS:
        raise unknown_name("toy distribution", name, TOY_DISTRIBUTIONS)
    valid = [p for p in inspect.signature(TOY_DISTRIBUTIONS[name]).parameters if p not in ("key", "n")]
    for p in params or {}:
        if p not in valid:
            raise ConfigError(f"toy distribution {name!r} has no parameter {p!r}; valid: {', '.join(valid)}")


def sample_toy(name: str, key: jax.Array, n: int, **params) -> jax.Array:
    """``n`` points ``[n, 2]`` of the toy distribution ``name`` (see :data:`TOY_DISTRIBUTIONS`).

    >>> import jax
    >>> sample_toy("ring", jax.random.PRNGKey(1), 3, radius=1.0).shape
    (3, 2)
    """
    check_toy(name, params)
    if int(n) <= 0:
        raise ConfigError(f"number of points must be positive, got {n}")
    return TOY_DISTRIBUTIONS[name](key, int(n), **params).astype(jnp.float32)


def digits_unit() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8×8 digits, flattened and scaled to ``[0, 1]`` (grey levels / 16).

    ``[0, 1]`` pixels suit a Bernoulli decoder (VAE) or, mapped to ``[-1, 1]``, a GAN/DDPM.

    Returns:
      ``(x, y)``: ``float32[1797, 64]`` and ``int64[1797]``.

    >>> x, y = digits_unit()
    >>> x.shape, float(x.min()), float(x.max())
    ((1797, 64), 0.0, 1.0)
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target
