"""Regression metrics (lecture formulas; jittable; masks for padded batches).

For targets ``[B]`` or ``[B, T]`` the mean runs over the unmasked rows and all T targets
(for equal-sized outputs this is scikit-learn's ``multioutput="uniform_average"``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlcore.errors import ShapeError


def _masked_mean(v, mask_B):
    if mask_B is None:
        return jnp.mean(v)
    w = jnp.asarray(mask_B).astype(v.dtype).reshape((-1,) + (1,) * (v.ndim - 1))
    w = jnp.broadcast_to(w, v.shape)
    return jnp.sum(v * w) / jnp.maximum(jnp.sum(w), 1.0)


def _residual(y_true, y_pred):
    y_true, y_pred = jnp.asarray(y_true), jnp.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ShapeError(
            f"y_true {y_true.shape} and y_pred {y_pred.shape} must have the same shape; "
            "reshape the predictions like the targets (e.g. squeeze a trailing axis of size 1)"
        )
    dtype = jnp.result_type(y_true.dtype, y_pred.dtype, jnp.float32)
    return y_true.astype(dtype) - y_pred.astype(dtype)


def mean_bias_error(y_true_B: jax.Array, y_pred_B: jax.Array, mask_B: jax.Array | None = None) -> jax.Array:
    """``MBE = mean(y − ŷ)``: the signed error (positive: the model under-predicts on average).

    >>> import jax.numpy as jnp
    >>> float(mean_bias_error(jnp.array([1., 2.]), jnp.array([0., 4.])))
    -0.5
    """
    return _masked_mean(_residual(y_true_B, y_pred_B), mask_B)


def mean_absolute_error(y_true_B: jax.Array, y_pred_B: jax.Array, mask_B: jax.Array | None = None) -> jax.Array:
    """``MAE = mean|y − ŷ|`` (the L1 loss)."""
    return _masked_mean(jnp.abs(_residual(y_true_B, y_pred_B)), mask_B)


def mean_squared_error(y_true_B: jax.Array, y_pred_B: jax.Array, mask_B: jax.Array | None = None) -> jax.Array:
    """``MSE = mean (y − ŷ)²`` (the L2 / quadratic loss).

    >>> import jax.numpy as jnp
    >>> float(mean_squared_error(jnp.array([1., 2.]), jnp.array([0., 4.])))
    2.5
    """
    r = _residual(y_true_B, y_pred_B)
    return _masked_mean(r * r, mask_B)
