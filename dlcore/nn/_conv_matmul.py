"""Convolutions as patch extraction + one matrix product, for seed sweeps of CNNs on CPU.

``vmap`` over seeds turns a convolution with per-seed kernels into one *feature-grouped*
convolution (``feature_group_count = S``), which XLA's CPU backend runs slowly: a 4-seed sweep of
the MNIST-1D ConvBase ran at ~0.55× the speed of the same seeds one after another (issue 18).
Written as ``patches [.., K·C_in] @ kernel [K·C_in, C_out]``, the same convolution vmaps to a
*batched matmul* — the operation the MLP sweeps are already fast at. Same parameters, same
numbers (to float32 rounding); only the kernel XLA picks differs.

    >>> import jax, jax.numpy as jnp, flax.linen as nn
    >>> conv = nn.Conv(4, (3,), strides=2, padding=1)
    >>> x = jnp.ones((2, 9, 3)); v = conv.init(jax.random.PRNGKey(0), x)
    >>> with conv_as_matmul():
    ...     y = conv.apply(v, x)
    >>> bool(jnp.allclose(y, conv.apply(v, x), atol=1e-5))
    True
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

_SPECS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}


def patch_conv(x, kernel, strides: Sequence[int] = 1, padding="VALID"):
    """``lax.conv`` in channels-last layout as im2col + matmul.

    Args:
      x: ``[B, *spatial, C_in]``.
      kernel: ``[*window, C_in, C_out]`` (Flax ``nn.Conv`` layout).
      strides: an int or one per spatial axis.
      padding: ``"SAME"``, ``"VALID"`` or one ``(low, high)`` pair per spatial axis.
    Returns:
      ``[B, *spatial_out, C_out]``, equal to ``lax.conv_general_dilated`` up to rounding.

    >>> x, k = jnp.ones((1, 5, 2)), jnp.ones((3, 2, 4))
    >>> patch_conv(x, k).shape, float(patch_conv(x, k)[0, 0, 0])
    ((1, 3, 4), 6.0)
    """
    nd = kernel.ndim - 2
    strides = (strides,) * nd if isinstance(strides, int) else tuple(strides)
    # Patch features come out channel-major: index c * prod(window) + window position.
    p = lax.conv_general_dilated_patches(x, kernel.shape[:nd], strides, padding, dimension_numbers=_SPECS[nd])
    k2 = jnp.moveaxis(kernel, -2, 0).reshape(-1, kernel.shape[-1])
    return jnp.matmul(p, k2.astype(p.dtype))


def _padding(pad, nd: int):
    """``nn.Conv``'s padding as ``lax`` accepts it, or ``None`` when patch_conv cannot express it."""
    if isinstance(pad, str):
        return pad.upper() if pad.upper() in ("SAME", "VALID") else None
    if isinstance(pad, int):
        return [(pad, pad)] * nd
    pad = [(q, q) if isinstance(q, int) else tuple(q) for q in pad]
    return pad if len(pad) == nd else None


def _interceptor(next_fun, args, kwargs, context):
    m = context.module
    if type(m) is not nn.Conv or context.method_name != "__call__" or m.is_initializing() or kwargs:
        return next_fun(*args, **kwargs)
    x = args[0]
    kernel = m.variables["params"]["kernel"]
    nd = kernel.ndim - 2
    dil = lambda d: d is None or d == 1 or (not isinstance(d, int) and all(v == 1 for v in d))  # noqa: E731
    pad = _padding(m.padding, nd)
    if (pad is None or m.feature_group_count != 1 or not dil(m.kernel_dilation) or not dil(m.input_dilation)
            or x.ndim != nd + 2 or m.mask is not None):
        return next_fun(*args, **kwargs)  # anything unusual: the ordinary convolution
    dtype = m.dtype or jnp.result_type(x, kernel)
    y = patch_conv(x.astype(dtype), kernel.astype(dtype), m.strides or 1, pad)
    if m.use_bias:
        b = m.variables["params"]["bias"].astype(dtype)
        y = y + b.reshape((1,) * (y.ndim - 1) + b.shape)  # explicit rank (rank promotion may be "raise")
    return y


@contextlib.contextmanager
def conv_as_matmul():
    """Inside this context, ``flax.linen.Conv`` layers compute as :func:`patch_conv` (same parameters).

    Use it around ``model.apply`` in a step that is vmapped over seeds (``Recipe`` models are
    unchanged). Convolutions it cannot express (dilation, feature groups, circular padding, no
    batch axis) run as before; ``init`` is untouched.
    """
    with nn.intercept_methods(_interceptor):
        yield
