"""Label encoding and per-channel input standardization (statistics fitted on train only)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.data._dataset import Standardizer, fit_standardizer
from dlcore.errors import DataError, ShapeError


def one_hot(labels_B, num_classes: int, dtype=jnp.float32) -> jax.Array:
    """One-hot rows ``[B, C]`` for integer labels ``[B]`` (jittable).

    Concrete (non-traced) labels are range-checked: ``jax.nn.one_hot`` would silently give an
    all-zero row for a label outside ``[0, C)``.

    >>> import jax.numpy as jnp
    >>> one_hot(jnp.array([0, 2]), 3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    if int(num_classes) < 1:
        raise DataError(f"num_classes must be positive, got {num_classes}")
    if not isinstance(labels_B, jax.core.Tracer):
        lab = np.asarray(labels_B)
        if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
            raise DataError(
                f"labels must lie in [0, {num_classes}), found values in [{lab.min()}, {lab.max()}]; "
                "pass the right num_classes or re-map the labels to 0..C-1"
            )
    return jax.nn.one_hot(labels_B, num_classes, dtype=dtype)


def fit_channel_standardizer(x_train, eps: float = 1e-8) -> Standardizer:
    """Per-channel statistics of channels-last training inputs (``[N, ..., C]``, e.g. NHWC).

    Reduces over every axis but the last, so each channel is standardized with one mean/std, the
    way images are normalized (per-feature standardization is ``fit_standardizer(x, axis=0)``).

    Returns:
      a :class:`Standardizer` whose statistics have shape ``[1, ..., 1, C]`` (the rank of a batch,
      so they also apply to ``jnp`` batches under strict rank promotion).

    >>> import numpy as np
    >>> s = fit_channel_standardizer(np.stack([np.zeros((2, 2)), np.full((2, 2), 4.0)], -1)[None])
    >>> s.mean.ravel().tolist(), s.std.ravel().tolist(), s.mean.shape
    ([0.0, 4.0], [1.0, 1.0], (1, 1, 1, 2))
    """
    x = np.asarray(x_train)
    if x.ndim < 2:
        raise ShapeError(f"channel standardization needs [N, ..., C] inputs, got shape {x.shape}")
    s = fit_standardizer(x, axis=tuple(range(x.ndim - 1)), eps=eps)
    shape = (1,) * (x.ndim - 1) + (x.shape[-1],)
    return Standardizer(s.mean.reshape(shape), s.std.reshape(shape))
