"""Sample-quality measures for generative models on low-dimensional data."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlcore.errors import ShapeError


def mmd_rbf(x_NxD: jax.Array, y_MxD: jax.Array, bandwidth: float = 1.0) -> jax.Array:
    """Squared maximum mean discrepancy with an RBF kernel ``k(a, b) = exp(−‖a − b‖² / (2h²))``.

    The (biased, V-statistic) estimate ``mean k(x, x') + mean k(y, y') − 2 mean k(x, y)``: 0 when the
    two samples coincide, larger the further apart their distributions are (e.g. a mode-collapsed
    GAN on eight gaussians scores far above a good one).

    Args:
      x_NxD, y_MxD: two samples with the same feature size.
      bandwidth: kernel width ``h``.
    Returns:
      scalar ``≥ 0``.

    >>> import jax.numpy as jnp
    >>> float(mmd_rbf(jnp.zeros((3, 2)), jnp.zeros((4, 2))))
    0.0
    """
    if x_NxD.ndim != 2 or y_MxD.ndim != 2 or x_NxD.shape[1] != y_MxD.shape[1]:
        raise ShapeError(f"mmd_rbf needs [N, D] and [M, D] samples, got {x_NxD.shape} and {y_MxD.shape}")

    def k(a, b):
        d2 = jnp.sum(jnp.square(a[:, None, :] - b[None, :, :]), axis=-1)
        return jnp.exp(-d2 / (2.0 * bandwidth**2))

    return jnp.maximum(jnp.mean(k(x_NxD, x_NxD)) + jnp.mean(k(y_MxD, y_MxD)) - 2.0 * jnp.mean(k(x_NxD, y_MxD)), 0.0)
