"""Shared pieces of the CNN zoo: input checks, a conv → norm → activation block, parameter counts."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.errors import ConfigError, ShapeError
from dlcore.nn._activations import Activation, check_activation
from dlcore.nn._init import InitSpec, init_kwargs
from dlcore.nn._norm import Norm, check_norm


def _initialized_channels(module: nn.Module, first_layer: str) -> int | None:
    """The input channels ``module`` was initialized with: the in-dim of its first conv's kernel."""
    if module.scope is None or module.is_initializing():
        return None
    sub = module.variables.get("params", {}).get(first_layer)
    kernels = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(sub)[0]
               if getattr(path[-1], "key", None) == "kernel" and getattr(leaf, "ndim", 0) >= 3]
    # a first layer is an ordinary conv (no groups): kernel [..spatial.., C_in, C_out]
    return int(kernels[0].shape[-2]) if len(kernels) == 1 else None


def check_input(x: jax.Array, rank: int, in_channels: int | None, what: str, *,
                module: nn.Module | None = None, first_layer: str | None = None) -> None:
    """Fail early (at init/trace time) on a wrong input rank or channel count.

    Without ``in_channels`` the count is inferred from the input at init: on apply, the in-dim of
    the first conv's kernel (``module``'s parameters under ``first_layer``) must match the input.
    """
    layout = {4: "[B, H, W, C] (NHWC)", 3: "[B, L, C] (NWC)"}[rank]
    if x.ndim != rank:
        hint = " add a channel axis with x[..., None]" if x.ndim == rank - 1 else ""
        raise ShapeError(f"{what} expects inputs {layout}, got shape {tuple(x.shape)};{hint or ' reshape the input'}")
    if in_channels is not None and x.shape[-1] != in_channels:
        raise ShapeError(
            f"{what} was built for in_channels={in_channels} but the input has {x.shape[-1]} channels "
            f"(shape {tuple(x.shape)}); pass in_channels={x.shape[-1]} or convert the input"
        )
    if in_channels is None and module is not None and first_layer is not None:
        c = _initialized_channels(module, first_layer)
        if c is not None and x.shape[-1] != c:
            raise ShapeError(
                f"{what} was initialized with {c}-channel inputs but the input has {x.shape[-1]} channels "
                f"(shape {tuple(x.shape)}); convert the input to {c} channels, or initialize a new model "
                f"on {x.shape[-1]}-channel inputs"
            )


def check_min_size(x: jax.Array, min_size: int, what: str, why: str) -> None:
    """Raise a :class:`ShapeError` if a spatial side of ``x`` (NHWC/NWC) is below ``min_size``."""
    sides = tuple(x.shape[1:-1])
    if min(sides) < min_size:
        raise ShapeError(
            f"{what} needs spatial size ≥ {min_size} ({why}), got {'x'.join(map(str, sides))}; "
            "use larger inputs (resize or pad) or a shallower/less-downsampling configuration"
        )


def check_positive(what: str, **values) -> None:
    """ConfigError unless every value (an int or a sequence of ints) is ≥ 1."""
    for k, v in values.items():
        vs = v if isinstance(v, (tuple, list)) else (v,)
        if any(int(a) < 1 for a in vs):
            raise ConfigError(f"{what}: {k} must be ≥ 1, got {v!r}")


def check_groups(what: str, in_ch: int, out_ch: int, groups: int) -> None:
    """Grouped convolutions need channel counts divisible by the group count."""
    if groups < 1 or in_ch % groups or out_ch % groups:
        raise ShapeError(
            f"{what}: a grouped conv with {groups} groups needs in and out channels divisible by {groups}, "
            f"got in={in_ch}, out={out_ch}; change the widths or the groups"
        )


def check_block_config(norm: str, activation) -> None:
    """Validate a norm and activation name at init time (listing the valid ones)."""
    check_norm(norm)
    check_activation(activation)


def pool(x: jax.Array, kind: str, window: int, stride: int, padding: Any = "VALID") -> jax.Array:
    """Max or average pooling over the spatial axes of NHWC/NWC ``x``."""
    nd = x.ndim - 2
    win, st = (window,) * nd, (stride,) * nd
    if isinstance(padding, int):
        padding = ((padding, padding),) * nd
    if kind == "max":
        return nn.max_pool(x, win, st, padding)
    if kind == "avg":
        return nn.avg_pool(x, win, st, padding)
    raise ConfigError(f"unknown pooling {kind!r}; valid choices: avg, max")


class ConvNormAct(nn.Module):
    """``conv → [norm] → activation`` (or ``conv → activation → norm`` with ``position="after"``).

    The conv has no bias when a norm follows it directly (the norm's shift replaces it).

    Attributes:
      features: output channels.
      kernel_size, strides, padding: per spatial axis (ints are broadcast); padding an int ``P``
        (zero padding per side), ``"SAME"`` or ``"VALID"``.
      groups: ``feature_group_count`` (``groups = in_channels`` is a depthwise conv).
      norm, activation, position, bn_momentum: see :class:`dlcore.nn.NormAct`.
      kernel_init: initializer spec (see :func:`dlcore.nn.get_initializer`), ``None`` = flax default.
    """

    features: int
    kernel_size: int = 3
    strides: int = 1
    padding: Any = "SAME"
    groups: int = 1
    norm: str = "none"
    activation: str | Callable = "relu"
    position: str = "before"
    bn_momentum: float = 0.9
    kernel_init: InitSpec | None = None
    dilation: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        nd = x.ndim - 2
        check_groups(self.name or "conv", x.shape[-1], self.features, self.groups)
        pad = self.padding if isinstance(self.padding, str) else ((self.padding, self.padding),) * nd
        x = nn.Conv(
            self.features,
            (self.kernel_size,) * nd,
            strides=(self.strides,) * nd,
            padding=pad,
            kernel_dilation=(self.dilation,) * nd,
            feature_group_count=self.groups,
            use_bias=self.norm == "none" or self.position == "after",
            name="conv",
            **init_kwargs(self.kernel_init),
        )(x)
        if self.norm == "none":
            return Activation(self.activation, name="act")(x)
        norm = Norm(self.norm, self.bn_momentum, name="norm")
        act = Activation(self.activation, name="act")
        return act(norm(x, train)) if self.position == "before" else norm(act(x), train)


def global_avg_pool(x: jax.Array) -> jax.Array:
    """Mean over the spatial axes: ``[B, ..., C] → [B, C]``."""
    return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))


def flatten(x: jax.Array) -> jax.Array:
    """``[B, ...] → [B, prod(...)]``."""
    return x.reshape((x.shape[0], -1))


def count_params(model: nn.Module, input_shape: Sequence[int], dtype=jnp.float32, **call_kwargs) -> int:
    """Number of trainable parameters, from shapes only (``jax.eval_shape``: nothing is allocated).

    Args:
      model: a Linen module called as ``model(x, train=...)``.
      input_shape: e.g. ``(1, 224, 224, 3)``.
      **call_kwargs: extra call arguments (default ``train=False``).
    Returns:
      the number of scalars in the ``params`` collection (batch-norm statistics excluded).

    >>> from dlcore.models import LeNet5
    >>> count_params(LeNet5(), (1, 32, 32, 1))
    61706
    """
    call_kwargs.setdefault("train", False)
    x = jax.ShapeDtypeStruct(tuple(input_shape), dtype)
    shapes = jax.eval_shape(lambda k, x: model.init(k, x, **call_kwargs), jax.ShapeDtypeStruct((2,), jnp.uint32), x)
    return int(sum(math.prod(a.shape) for a in jax.tree.leaves(shapes.get("params", {}))))
