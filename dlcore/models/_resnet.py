"""ResNets (He et al. 2016): basic and bottleneck residual blocks, and the plain (no-skip) variant.

A block computes ``relu(F(x) + shortcut(x))``: the identity when shapes agree, else a strided
1×1 conv + BN ("option B"). ``residual=False`` drops the shortcut — the plain network of the
paper's depth study, whose training error *rises* with depth.

Published parameter counts (ImageNet, 1000 classes): ResNet-18 11,689,512; -34 21,797,672;
-50 25,557,032; -101 44,549,160; -152 60,192,808 (stride on the 3×3 conv of bottlenecks, "v1.5";
the count is the same either way).
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax

from dlcore.errors import unknown_name
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
from dlcore.nn._init import InitSpec

RESNET_CONFIGS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
"""Block type and blocks per stage for ResNet-18/34/50/101/152."""

BLOCKS = ("basic", "bottleneck")
STEMS = ("imagenet", "cifar")


class BasicBlock(nn.Module):
    """Two 3×3 convs: ``x → conv → BN → ReLU → conv → BN (+ shortcut) → ReLU``.

    Attributes:
      features: output channels.
      strides: stride of the first conv (2 halves the resolution).
      residual: add the shortcut (``False``: plain block).
      norm, activation, bn_momentum, kernel_init: as in :class:`dlcore.models.ConvNormAct`.

    Call: ``block(x_BxHxWxC, train)`` → ``[B, H/s, W/s, features]``.
    """

    features: int
    strides: int = 1
    residual: bool = True
    norm: str = "batch"
    activation: str | Callable = "relu"
    bn_momentum: float = 0.9
    kernel_init: InitSpec | None = None

    expansion = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        kw = dict(norm=self.norm, bn_momentum=self.bn_momentum, kernel_init=self.kernel_init)
        h = ConvNormAct(self.features, 3, self.strides, 1, activation=self.activation, name="conv1", **kw)(x, train)
        h = ConvNormAct(self.features, 3, 1, 1, activation="identity", name="conv2", **kw)(h, train)
        if self.residual:
            h = h + _shortcut(x, self.features, self.strides, kw, train)
        return Activation(self.activation, name="act")(h)


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (strided) → 1×1 expand to ``4 × features``, plus the shortcut.

    Attributes: as :class:`BasicBlock`; the output has ``4 * features`` channels.
    """

    features: int
    strides: int = 1
    residual: bool = True
    norm: str = "batch"
    activation: str | Callable = "relu"
    bn_momentum: float = 0.9
    kernel_init: InitSpec | None = None

    expansion = 4

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        kw = dict(norm=self.norm, bn_momentum=self.bn_momentum, kernel_init=self.kernel_init)
        out = self.features * self.expansion
        h = ConvNormAct(self.features, 1, 1, 0, activation=self.activation, name="conv1", **kw)(x, train)
        h = ConvNormAct(self.features, 3, self.strides, 1, activation=self.activation, name="conv2", **kw)(h, train)
        h = ConvNormAct(out, 1, 1, 0, activation="identity", name="conv3", **kw)(h, train)
        if self.residual:
            h = h + _shortcut(x, out, self.strides, kw, train)
        return Activation(self.activation, name="act")(h)


def _shortcut(x: jax.Array, features: int, strides: int, kw: dict, train: bool) -> jax.Array:
    # Identity when shapes agree; otherwise a learned projection (1x1 conv, stride s) + norm.
    if x.shape[-1] == features and strides == 1:
        return x
    return ConvNormAct(features, 1, strides, 0, activation="identity", name="shortcut", **kw)(x, train)


class ResNet(nn.Module):
    """A ResNet: stem, four stages of residual blocks (stride 2 from stage 2 on), global pool, FC head.

    Attributes:
      depth: 18, 34, 50, 101 or 152 (sets ``block`` and ``stage_sizes`` unless given).
      num_classes: outputs.
      block: ``"basic"`` or ``"bottleneck"`` (overrides the depth's).
      stage_sizes: blocks per stage (overrides the depth's).
      width: channels of the stem and first stage (64); stage ``i`` has ``width · 2^i``.
      stem: ``"imagenet"`` (7×7/2 conv + 3×3/2 max pool: 32× downsampling overall) or ``"cifar"``
        (one 3×3 conv: 8× downsampling, for 32×32 and smaller images).
      residual: ``False`` gives the plain network (no skips).
      norm, activation, bn_momentum, kernel_init, in_channels.

    >>> import jax, jax.numpy as jnp
    >>> m = ResNet(depth=18, num_classes=10, width=4, stem="cifar")
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((1, 16, 16, 3)), train=False)
    >>> m.apply(v, jnp.ones((2, 16, 16, 3)), train=False).shape
    (2, 10)
    """

    depth: int = 18
    num_classes: int = 1000
    block: str | None = None
    stage_sizes: Sequence[int] | None = None
    width: int = 64
    stem: str = "imagenet"
    residual: bool = True
    norm: str = "batch"
    activation: str | Callable = "relu"
    bn_momentum: float = 0.9
    kernel_init: InitSpec | None = None
    in_channels: int | None = None

    def config(self) -> tuple[str, tuple[int, ...]]:
        """``(block, stage_sizes)`` after applying the overrides."""
        if (self.block is None or self.stage_sizes is None) and self.depth not in RESNET_CONFIGS:
            raise unknown_name("ResNet depth", str(self.depth), [str(d) for d in RESNET_CONFIGS])
        block, sizes = RESNET_CONFIGS.get(self.depth, (None, None))
        block = self.block or block
        sizes = tuple(self.stage_sizes) if self.stage_sizes is not None else sizes
        if block not in BLOCKS:
            raise unknown_name("ResNet block", block, BLOCKS)
        return block, sizes

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        what = "ResNet" if self.residual else "plain ResNet"
        check_input(x, 4, self.in_channels, what, module=self, first_layer="stem")
        check_block_config(self.norm, self.activation)
        if self.stem not in STEMS:
            raise unknown_name("ResNet stem", self.stem, STEMS)
        block, sizes = self.config()
        check_positive(what, stage_sizes=sizes, width=self.width, num_classes=self.num_classes)
        down = (4 if self.stem == "imagenet" else 1) * 2 ** (len(sizes) - 1)
        check_min_size(x, down, what, f"its {self.stem} stem and {len(sizes)} stages downsample {down}×")
        kw = dict(norm=self.norm, bn_momentum=self.bn_momentum, kernel_init=self.kernel_init)
        if self.stem == "imagenet":
            h = ConvNormAct(self.width, 7, 2, 3, activation=self.activation, name="stem", **kw)(x, train)
            h = pool(h, "max", 3, 2, padding=1)
        else:
            h = ConvNormAct(self.width, 3, 1, 1, activation=self.activation, name="stem", **kw)(x, train)
        Block = BasicBlock if block == "basic" else Bottleneck
        for s, n in enumerate(sizes):
            for b in range(n):
                strides = 2 if (s > 0 and b == 0) else 1
                h = Block(self.width * 2**s, strides, self.residual, activation=self.activation,
                          name=f"stage{s + 1}_block{b + 1}", **kw)(h, train)
        return nn.Dense(self.num_classes, name="head")(global_avg_pool(h))


def resnet(depth: int, **kwargs) -> ResNet:
    """``ResNet(depth=depth, **kwargs)`` with a clear error for unknown depths.

    >>> resnet(50, width=8).config()
    ('bottleneck', (3, 4, 6, 3))
    """
    if depth not in RESNET_CONFIGS:
        raise unknown_name("ResNet depth", str(depth), [str(d) for d in RESNET_CONFIGS])
    return ResNet(depth=depth, **kwargs)


def plain_resnet(depth: int, **kwargs) -> ResNet:
    """The plain counterpart of ResNet-``depth`` (same layers, no skip connections)."""
    return resnet(depth, residual=False, **kwargs)
