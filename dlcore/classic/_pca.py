"""Projections for visualization: PCA in JAX, t-SNE through scikit-learn (an optional extra).

PCA centres the data and takes the SVD ``X − x̄ = U S Vᵀ``; the components are the rows of ``Vᵀ``,
the explained variances ``S² / (N − 1)``. Signs are made deterministic as scikit-learn does
(``svd_flip(u_based_decision=False)``): the largest-magnitude entry of every component is positive.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.errors import ConfigError, DlcoreError, ShapeError


class PCA(NamedTuple):
    """A fitted PCA.

    Attributes:
      mean: ``[D]`` training mean.
      components: ``[K, D]`` orthonormal principal directions (rows).
      explained_variance: ``[K]`` variance along each component (``S²/(N−1)``).
      explained_variance_ratio: ``[K]`` fraction of the total variance.
    """

    mean: jax.Array
    components: jax.Array
    explained_variance: jax.Array
    explained_variance_ratio: jax.Array


def fit_pca(x_NxD, num_components: int = 2) -> PCA:
    """Fit PCA with ``num_components`` components (``1 <= K <= min(N, D)``).

    >>> import jax.numpy as jnp
    >>> p = fit_pca(jnp.array([[0., 0.], [1., 1.], [2., 2.]]), 1)
    >>> [round(float(v), 4) for v in p.components[0]], float(p.explained_variance_ratio[0])
    ([0.7071, 0.7071], 1.0)
    """
    if jnp.ndim(x_NxD) != 2:
        raise ShapeError(f"PCA needs a 2-D [N, D] array, got shape {jnp.shape(x_NxD)}; flatten first")
    n, d = jnp.shape(x_NxD)
    if not isinstance(num_components, (int, np.integer)) or not 1 <= num_components <= min(n, d):
        raise ConfigError(f"num_components must be an integer in [1, {min(n, d)}] (min(N, D)), got {num_components!r}")
    x = jnp.asarray(x_NxD)
    x = x.astype(jnp.result_type(x.dtype, jnp.float32))
    mean = jnp.mean(x, axis=0)
    xc = x - mean[None]
    _, s, vt = jnp.linalg.svd(xc, full_matrices=False)
    # svd_flip on V: make the largest-|.| entry of every component positive (deterministic signs).
    pivot = jnp.take_along_axis(vt, jnp.argmax(jnp.abs(vt), axis=1)[:, None], axis=1)
    vt = vt * jnp.where(pivot < 0, -1.0, 1.0).astype(vt.dtype)
    var = s * s / max(n - 1, 1)
    total = jnp.sum(var)
    k = int(num_components)
    return PCA(mean, vt[:k], var[:k], var[:k] / jnp.where(total > 0, total, 1.0))


def pca_transform(pca: PCA, x_NxD) -> jax.Array:
    """Coordinates ``[N, K]`` of ``x`` on the components."""
    return (jnp.asarray(x_NxD) - pca.mean[None]) @ pca.components.T


def pca_inverse_transform(pca: PCA, z_NxK) -> jax.Array:
    """Back to input space ``[N, D]`` (the rank-K reconstruction)."""
    return jnp.asarray(z_NxK) @ pca.components + pca.mean[None]


def tsne(
    x_NxD,
    *,
    seed: int,
    num_components: int = 2,
    perplexity: float = 30.0,
    pca_init: bool = True,
    max_iter: int = 1000,
) -> np.ndarray:
    """t-SNE embedding ``[N, num_components]`` through scikit-learn's ``TSNE`` (optional extra).

    t-SNE is a host-side visualization, not a differentiable op, so dlcore delegates it to a
    well-kept implementation. ``seed`` is passed as ``random_state``: the same seed gives the same
    embedding on the same machine and scikit-learn version. ``max_iter`` (≥ 250) bounds the
    optimization.

    Raises:
      DlcoreError: scikit-learn is not installed (``pip install scikit-learn``).
    """
    try:
        from sklearn.manifold import TSNE
    except ImportError as e:  # pragma: no cover - scikit-learn ships with dlcore's dependencies
        raise DlcoreError("t-SNE needs scikit-learn: pip install 'scikit-learn>=1.4'") from e
    x = np.asarray(x_NxD, dtype=np.float32)
    if x.ndim != 2:
        raise ShapeError(f"t-SNE needs a 2-D [N, D] array, got shape {x.shape}; flatten first")
    if not 0 < perplexity < x.shape[0]:
        raise ConfigError(f"perplexity must be in (0, N={x.shape[0]}), got {perplexity}; use a smaller perplexity")
    model = TSNE(
        n_components=num_components,
        perplexity=perplexity,
        init="pca" if pca_init else "random",
        random_state=int(seed),
        max_iter=int(max_iter),
    )
    return model.fit_transform(x)
