"""Batch norm across devices: statistics of the GLOBAL batch, from sums and counts.

With data parallelism each device holds a slice of the batch. Normalizing with each slice's own
mean and variance ("virtual batches") changes the model with the device count; here every device
uses the statistics of the whole global batch instead:

    ``n = Σ_d n_d``,  ``μ = Σ_d Σ_i m_i x_i / n``,  ``σ² = Σ_d Σ_i m_i (x_i − μ)² / n``

(``Σ_d`` is a ``psum`` over the data axis; ``m_i`` masks padding). Summing *counts and sums* —
not averaging per-device means — keeps the result exact when shards have unequal sizes (a last,
partial batch padded with a mask). The two-pass variance avoids ``E[x²] − E[x]²`` cancellation.
Every device then holds the same ``μ, σ²`` bit for bit (an all-reduce returns one value), so the
running averages ``β_m·running + (1 − β_m)·batch`` stay identical on every replica.

Under ``jit`` with a sharded batch (the mesh path, :mod:`dlcore.parallel._data_parallel`) nothing
is needed: flax's ``BatchNorm`` already reduces over the global array and XLA inserts the
all-reduce. :class:`SyncBatchNorm` and :func:`batchnorm_interceptor` are for per-device code
(``shard_map``, ``pmap``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from dlcore.errors import ConfigError


def _feature_axes(ndim: int, axis) -> tuple[int, ...]:
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a % ndim for a in axes))


def _weights(x: jax.Array, mask) -> jax.Array:
    # Mask of shape [B] (one flag per example) or broadcastable to x (flax's BatchNorm convention).
    if mask is None:
        return jnp.ones(x.shape, jnp.float32)
    mask = jnp.asarray(mask)
    if mask.ndim == 1 and x.ndim > 1:
        mask = mask.reshape((mask.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.broadcast_to(mask, x.shape).astype(jnp.float32)


def global_moments(
    x: jax.Array,
    feature_axes: int | Sequence[int] = -1,
    mask: jax.Array | None = None,
    axis_name: str | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-feature mean and biased variance over the global batch (all shards of ``axis_name``).

    Args:
      x: ``[B, ..., C]`` this device's slice of the batch.
      feature_axes: axes that keep their own statistics (default: the last).
      mask: ``[B]`` (or broadcastable to ``x``), 1 for real examples, 0 for padding.
      axis_name: the data axis of ``shard_map``/``pmap`` to combine over; ``None``: this array only.
    Returns:
      ``(mean, var, count)`` with the feature shape; ``count`` = real elements reduced per feature.

    >>> import jax.numpy as jnp
    >>> m, v, n = global_moments(jnp.array([[1.0], [3.0], [100.0]]), mask=jnp.array([1, 1, 0]))
    >>> float(m[0]), float(v[0]), float(n[0])
    (2.0, 1.0, 2.0)
    """
    fa = _feature_axes(x.ndim, feature_axes)
    red = tuple(i for i in range(x.ndim) if i not in fa)
    x32 = x.astype(jnp.float32)
    w = _weights(x, mask)
    count, total = jnp.sum(w, axis=red), jnp.sum(x32 * w, axis=red)
    if axis_name is not None:
        count, total = lax.psum((count, total), axis_name)
    safe = jnp.maximum(count, 1.0)  # an all-padding batch gives 0, not NaN
    mean = total / safe
    sq = jnp.sum(w * jnp.square(x32 - jnp.expand_dims(mean, red)), axis=red)
    if axis_name is not None:
        sq = lax.psum(sq, axis_name)
    return mean, sq / safe, count


def normalize(x, mean, var, scale=None, bias=None, epsilon: float = 1e-5, feature_axes=-1, dtype=None):
    """``(x − μ)/√(σ² + ε)·γ + β`` with per-feature ``μ, σ², γ, β`` broadcast along ``feature_axes``."""
    fa = _feature_axes(x.ndim, feature_axes)
    red = tuple(i for i in range(x.ndim) if i not in fa)
    mul = lax.rsqrt(jnp.expand_dims(var, red) + epsilon)
    if scale is not None:
        mul = mul * jnp.expand_dims(scale, red)
    y = (x - jnp.expand_dims(mean, red)) * mul
    if bias is not None:
        y = y + jnp.expand_dims(bias, red)
    return y.astype(dtype or jnp.result_type(x, *(p for p in (scale, bias) if p is not None)))


class SyncBatchNorm(nn.Module):
    """Batch norm with global-batch statistics over ``axis_name`` (a drop-in for ``nn.BatchNorm``).

    Same variables as flax's ``BatchNorm`` (``params``: ``scale``, ``bias``; ``batch_stats``:
    ``mean``, ``var``), so checkpoints move between the two. Inside ``shard_map``/``pmap`` over
    ``axis_name`` it normalizes with the statistics of all shards together; with ``axis_name=None``
    (or at initialization) it is an ordinary batch norm.

    Attributes:
      use_running_average: evaluate with the running averages (may also be passed at call time).
      axis: feature axis (or axes).
      momentum: ``β_m`` of the running averages.
      epsilon: added to the variance.
      use_bias, use_scale: learn ``β`` / ``γ``.
      axis_name: the data axis to combine over.

    Call: ``bn(x_Bx...xC, use_running_average=None, mask=None)``; ``mask`` ``[B]`` excludes padding.

    >>> import jax, jax.numpy as jnp
    >>> bn = SyncBatchNorm(use_running_average=False, momentum=0.9)
    >>> v = bn.init(jax.random.PRNGKey(0), jnp.ones((4, 3)))
    >>> y, st = bn.apply(v, jnp.arange(12.0).reshape(4, 3), mutable=["batch_stats"])
    >>> [round(float(m), 2) for m in st["batch_stats"]["mean"]]   # 0.9·0 + 0.1·batch mean
    [0.45, 0.55, 0.65]
    """

    use_running_average: bool | None = None
    axis: int | Sequence[int] = -1
    momentum: float = 0.99
    epsilon: float = 1e-5
    use_bias: bool = True
    use_scale: bool = True
    bias_init: Callable = nn.initializers.zeros
    scale_init: Callable = nn.initializers.ones
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
        ura = nn.merge_param("use_running_average", self.use_running_average, use_running_average)
        fa = _feature_axes(x.ndim, self.axis)
        shape = tuple(x.shape[a] for a in fa)
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros(shape, jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones(shape, jnp.float32))
        scale = self.param("scale", self.scale_init, shape, jnp.float32) if self.use_scale else None
        bias = self.param("bias", self.bias_init, shape, jnp.float32) if self.use_bias else None
        if ura:
            mean, var = ra_mean.value, ra_var.value
        else:
            # At init the data axis may not exist (init runs outside shard_map): local statistics.
            axis = None if self.is_initializing() else self.axis_name
            mean, var, _ = global_moments(x, fa, mask, axis)
            if not self.is_initializing():
                ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
                ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
        return normalize(x, mean, var, scale, bias, self.epsilon, fa)


def batchnorm_interceptor(axis_name: str, example_mask: jax.Array | None = None) -> Callable:
    """A ``flax.linen.intercept_methods`` interceptor giving every batch norm global statistics.

    Inside a per-shard function (``shard_map``/``pmap`` over ``axis_name``) it replaces the
    training-mode computation of flax ``nn.BatchNorm`` and :class:`SyncBatchNorm` layers by
    :func:`global_moments` over all shards (running averages updated from them), so an unchanged
    model (e.g. :class:`dlcore.nn.MLP` with ``norm="batch"``) normalizes by the global batch.
    ``example_mask`` ``[B_local]`` marks padding rows. Evaluation mode (running averages) and
    initialization are left alone.
    """

    def interceptor(next_fun, args, kwargs, context):
        m = context.module
        if context.method_name != "__call__" or not isinstance(m, (nn.BatchNorm, SyncBatchNorm)):
            return next_fun(*args, **kwargs)
        if m.is_initializing():
            return next_fun(*args, **kwargs)
        ura_arg = args[1] if len(args) > 1 else kwargs.get("use_running_average")
        if nn.merge_param("use_running_average", m.use_running_average, ura_arg):
            return next_fun(*args, **kwargs)
        if getattr(m, "axis_index_groups", None) is not None:
            raise ConfigError("batch norm with axis_index_groups is not supported across devices; remove it")
        x = args[0]
        fa = _feature_axes(x.ndim, m.axis)
        w = _weights(x, kwargs.get("mask"))
        if example_mask is not None:
            w = w * _weights(x, example_mask)
        mean, var, _ = global_moments(x, fa, w, axis_name)
        ra_mean = m.get_variable("batch_stats", "mean")
        ra_var = m.get_variable("batch_stats", "var")
        m.put_variable("batch_stats", "mean", m.momentum * ra_mean + (1 - m.momentum) * mean)
        m.put_variable("batch_stats", "var", m.momentum * ra_var + (1 - m.momentum) * var)
        scale = m.get_variable("params", "scale") if m.use_scale else None
        bias = m.get_variable("params", "bias") if m.use_bias else None
        return normalize(x, mean, var, scale, bias, m.epsilon, fa, getattr(m, "dtype", None))

    return interceptor

