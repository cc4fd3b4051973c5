"""Modern conv building blocks: Inception module, depthwise-separable conv, Xception block, ConvNeXt.

- Inception (Szegedy et al. 2015): parallel 1×1, 3×3, 5×5 convs and a pooling branch,
  concatenated; 1×1 *reductions* before the 3×3/5×5 convs (and after the pooling) cut the cost.
- Depthwise-separable conv: a depthwise ``k×k`` conv (one filter per channel, ``groups = C``)
  then a pointwise 1×1 conv: ``k²·C + C·F`` weights instead of ``k²·C·F``.
- Xception (Chollet 2017): "extreme Inception" — blocks of separable convs with a residual.
- ConvNeXt (Liu et al. 2022): depthwise 7×7 → LayerNorm → 1×1 (4×) → GELU → 1×1 → layer scale,
  plus the identity.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.errors import ConfigError
from dlcore.models._common import (
    ConvNormAct,
    check_block_config,
    check_input,
    check_min_size,
    check_positive,
    global_avg_pool,
    pool,
)
from dlcore.nn._activations import Activation
from dlcore.nn._init import InitSpec, init_kwargs
from dlcore.nn._norm import Norm


class InceptionModule(nn.Module):
    """GoogLeNet's Inception module: four branches concatenated along channels.

    Branches: 1×1 (``c1``); 1×1 reduce (``c3_reduce``) → 3×3 (``c3``); 1×1 reduce
    (``c5_reduce``) → 5×5 (``c5``); 3×3/1 max pool → 1×1 projection (``pool_proj``). Each conv is
    followed by the norm and activation. With ``reductions=False`` the naive module: no 1×1
    reductions, and the pooling branch passes all input channels through.

    Output channels: ``c1 + c3 + c5 + pool_proj`` (naive: ``c1 + c3 + c5 + C_in``). The spatial
    size is kept ("same" padding everywhere, stride 1).

    >>> import jax, jax.numpy as jnp
    >>> m = InceptionModule(64, 96, 128, 16, 32, 32)   # GoogLeNet's inception (3a)
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((1, 28, 28, 192)), train=False)
    >>> m.apply(v, jnp.ones((1, 28, 28, 192)), train=False).shape
    (1, 28, 28, 256)
    """

    c1: int
    c3_reduce: int
    c3: int
    c5_reduce: int
    c5: int
    pool_proj: int
    reductions: bool = True
    norm: str = "none"
    activation: str | Callable = "relu"
    bn_momentum: float = 0.9
    kernel_init: InitSpec | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        check_input(x, 4, None, "InceptionModule")
        check_block_config(self.norm, self.activation)
        check_positive("InceptionModule", c1=self.c1, c3=self.c3, c5=self.c5)
        kw = dict(norm=self.norm, activation=self.activation, bn_momentum=self.bn_momentum,
                  kernel_init=self.kernel_init, padding="SAME")
        b1 = ConvNormAct(self.c1, 1, name="b1_1x1", **kw)(x, train)
        b3, b5, bp = x, x, pool(x, "max", 3, 1, padding=1)
        if self.reductions:
            check_positive("InceptionModule", c3_reduce=self.c3_reduce, c5_reduce=self.c5_reduce, pool_proj=self.pool_proj)
            b3 = ConvNormAct(self.c3_reduce, 1, name="b3_reduce", **kw)(b3, train)
            b5 = ConvNormAct(self.c5_reduce, 1, name="b5_reduce", **kw)(b5, train)
            bp = ConvNormAct(self.pool_proj, 1, name="pool_proj", **kw)(bp, train)
        b3 = ConvNormAct(self.c3, 3, name="b3_3x3", **kw)(b3, train)
        b5 = ConvNormAct(self.c5, 5, name="b5_5x5", **kw)(b5, train)
        return jnp.concatenate([b1, b3, b5, bp], axis=-1)


class SeparableConv(nn.Module):
    """Depthwise-separable convolution: depthwise ``k×k`` (``groups = C_in``) then pointwise 1×1.

    Attributes:
      features: output channels ``F``.
      kernel_size, strides: of the depthwise conv ("same" padding).
      depth_multiplier: depthwise filters per input channel.
      use_bias: biases on both convs (off when a norm follows).

    Parameters: ``k²·C·m (+C·m) + C·m·F (+F)``.

    >>> import jax, jax.numpy as jnp
    >>> m = SeparableConv(8, use_bias=False)
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((1, 5, 5, 4)), train=False)
    >>> v["params"]["depthwise"]["kernel"].shape, v["params"]["pointwise"]["kernel"].shape
    ((3, 3, 1, 4), (1, 1, 4, 8))
    """

    features: int
    kernel_size: int = 3
    strides: int = 1
    depth_multiplier: int = 1
    use_bias: bool = True
    kernel_init: InitSpec | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        check_positive("SeparableConv", features=self.features, depth_multiplier=self.depth_multiplier)
        nd = x.ndim - 2
        c = x.shape[-1]
        h = nn.Conv(c * self.depth_multiplier, (self.kernel_size,) * nd, strides=(self.strides,) * nd, padding="SAME",
                    feature_group_count=c, use_bias=self.use_bias, name="depthwise", **init_kwargs(self.kernel_init))(x)
        return nn.Conv(self.features, (1,) * nd, use_bias=self.use_bias, name="pointwise",
                       **init_kwargs(self.kernel_init))(h)


class XceptionBlock(nn.Module):
    """An Xception entry/middle-flow block: ``[act → sepconv → norm] × reps`` (+ 3×3/s max pool) + shortcut.

    The shortcut is the identity when shapes agree, else a strided 1×1 conv + norm.

    Attributes:
      features: output channels.
      reps: separable convs (2 in the entry flow, 3 in the middle flow).
      strides: 1 or 2 (the max pool's stride).
      start_with_activation: ``False`` for the first block after the stem.
      norm, activation, bn_momentum, kernel_init.

    >>> import jax, jax.numpy as jnp
    >>> m = XceptionBlock(16, strides=2)
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 4)), train=False)
    >>> m.apply(v, jnp.ones((1, 8, 8, 4)), train=False).shape
    (1, 4, 4, 16)
    """

    features: int
    reps: int = 2
    strides: int = 1
    start_with_activation: bool = True
    norm: str = "batch"
    activation: str | Callable = "relu"
    bn_momentum: float = 0.9
    kernel_init: InitSpec | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        check_input(x, 4, None, "XceptionBlock")
        check_block_config(self.norm, self.activation)
        check_positive("XceptionBlock", features=self.features, reps=self.reps, strides=self.strides)
        h = x
        for i in range(self.reps):
            if i > 0 or self.start_with_activation:
                h = Activation(self.activation)(h)
            h = SeparableConv(self.features, use_bias=self.norm == "none", kernel_init=self.kernel_init,
                              name=f"sepconv{i + 1}")(h)
            h = Norm(self.norm, self.bn_momentum, name=f"norm{i + 1}")(h, train)
        if self.strides > 1:
            h = nn.max_pool(h, (3, 3), (self.strides, self.strides), "SAME")
        if x.shape[-1] == self.features and self.strides == 1:
            return h + x
        s = ConvNormAct(self.features, 1, self.strides, 0, norm=self.norm, activation="identity",
                        bn_momentum=self.bn_momentum, kernel_init=self.kernel_init, name="shortcut")(x, train)
        return h + s


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block: ``x + γ ⊙ W₂ GELU(W₁ LN(dwconv₇ₓ₇(x))))`` (channels kept).

    Attributes:
      kernel_size: of the depthwise conv (7).
      expansion: hidden width factor of the inverted bottleneck (4).
      layer_scale_init: initial ``γ`` (1e-6; ``0`` disables layer scale).
      activation: ``"gelu"``.

    >>> import jax, jax.numpy as jnp
    >>> m = ConvNeXtBlock()
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 16)), train=False)
    >>> m.apply(v, jnp.ones((1, 8, 8, 16)), train=False).shape
    (1, 8, 8, 16)
    """

    kernel_size: int = 7
    expansion: int = 4
    layer_scale_init: float = 1e-6
    activation: str | Callable = "gelu"
    kernel_init: InitSpec | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        check_input(x, 4, None, "ConvNeXtBlock")
        check_block_config("none", self.activation)
        c = x.shape[-1]
        h = nn.Conv(c, (self.kernel_size,) * 2, padding="SAME", feature_group_count=c, name="dwconv",
                    **init_kwargs(self.kernel_init))(x)
        h = nn.LayerNorm(epsilon=1e-6, name="norm")(h)
        h = nn.Dense(self.expansion * c, name="pwconv1", **init_kwargs(self.kernel_init))(h)
        h = Activation(self.activation)(h)
        h = nn.Dense(c, name="pwconv2", **init_kwargs(self.kernel_init))(h)
        if self.layer_scale_init > 0:
            gamma = self.param("gamma", nn.initializers.constant(self.layer_scale_init), (c,), jnp.float32)
            h = h * gamma.reshape((1, 1, 1, c))
        return x + h


class ConvNeXt(nn.Module):
    """ConvNeXt: patchify stem (4×4/4 conv + LN), stages of :class:`ConvNeXtBlock` separated by
    downsampling (LN + 2×2/2 conv), global average pool, LN, linear head.

    ConvNeXt-T: ``depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)`` — 28,589,128 parameters.

    >>> import jax, jax.numpy as jnp
    >>> m = ConvNeXt(depths=(1, 1), dims=(8, 16), num_classes=3)
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((1, 16, 16, 3)), train=False)
    >>> m.apply(v, jnp.ones((2, 16, 16, 3)), train=False).shape
    (2, 3)
    """

    depths: Sequence[int] = (3, 3, 9, 3)
    dims: Sequence[int] = (96, 192, 384, 768)
    num_classes: int = 1000
    patch_size: int = 4
    kernel_init: InitSpec | None = None
    in_channels: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        check_input(x, 4, self.in_channels, "ConvNeXt", module=self, first_layer="stem")
        if len(self.depths) != len(self.dims):
            raise ConfigError(f"ConvNeXt: {len(self.depths)} depths but {len(self.dims)} dims")
        check_positive("ConvNeXt", depths=tuple(self.depths), dims=tuple(self.dims), patch_size=self.patch_size)
        down = self.patch_size * 2 ** (len(self.dims) - 1)
        check_min_size(x, down, "ConvNeXt", f"the {self.patch_size}× stem and {len(self.dims) - 1} 2× downsamplings")
        p = self.patch_size
        h = nn.Conv(self.dims[0], (p, p), strides=(p, p), padding="VALID", name="stem",
                    **init_kwargs(self.kernel_init))(x)
        h = nn.LayerNorm(epsilon=1e-6, name="stem_norm")(h)
        for s, (n, d) in enumerate(zip(self.depths, self.dims)):
            if s > 0:
                h = nn.LayerNorm(epsilon=1e-6, name=f"down{s}_norm")(h)
                h = nn.Conv(d, (2, 2), strides=(2, 2), padding="VALID", name=f"down{s}",
                            **init_kwargs(self.kernel_init))(h)
            for b in range(n):
                h = ConvNeXtBlock(kernel_init=self.kernel_init, name=f"stage{s + 1}_block{b + 1}")(h, train)
        h = nn.LayerNorm(epsilon=1e-6, name="final_norm")(global_avg_pool(h))
        return nn.Dense(self.num_classes, name="head")(h)
