"""Classic CNNs (lecture 10): LeNet-5, AlexNet, VGG, and the simple conv → BN → ReLU prototype.

All take NHWC images and are called as ``model.apply(variables, x_BxHxWxC, train=bool)``,
returning logits ``[B, num_classes]``. Widths are parameters so tests can build tiny ones; the
defaults are the published architectures (parameter counts checked in ``tests/test_models.py``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax

from dlcore.errors import ConfigError, unknown_name
from dlcore.models._common import (
    ConvNormAct,
    check_block_config,
    check_groups,
    check_input,
    check_positive,
    flatten,
    global_avg_pool,
    pool,
)
from dlcore.nn._activations import Activation
from dlcore.nn._conv_utils import chain_output_size
from dlcore.nn._dropout import Dropout
from dlcore.nn._init import InitSpec, init_kwargs


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998), conv → pool → conv → pool → conv → FC → FC, valid convolutions.

    With the defaults on ``32×32×1`` inputs: 61,706 parameters (C3 fully connected to S2, the
    common modern form; the paper's sparse C3 table gives ~60k). Sizes ``32 → 28 → 14 → 10 → 5 → 1``.

    Attributes:
      num_classes: outputs.
      channels: filters of C1, C3, C5 (``(6, 16, 120)``).
      hidden: width of F6 (84).
      kernel_size: 5.
      first_padding: zero padding of C1 (2 lets 28×28 MNIST in, as 32×32).
      activation: ``"tanh"`` (the original; ``"relu"`` is the modern choice).
      pooling: ``"avg"`` (the original subsampling) or ``"max"``.
      in_channels: checked against the input when given; otherwise the channel count the model was
        initialized with is checked on every apply.

    >>> import jax, jax.numpy as jnp
    >>> m = LeNet5()
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((1, 32, 32, 1)), train=False)
    >>> m.apply(v, jnp.ones((2, 32, 32, 1)), train=False).shape
    (2, 10)
    """

    num_classes: int = 10
    channels: Sequence[int] = (6, 16, 120)
    hidden: int = 84
    kernel_size: int = 5
    first_padding: int = 0
    activation: str | Callable = "tanh"
    pooling: str = "avg"
    kernel_init: InitSpec | None = None
    in_channels: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        check_input(x, 4, self.in_channels, "LeNet5", module=self, first_layer="c1")
        check_positive("LeNet5", channels=tuple(self.channels), hidden=self.hidden, num_classes=self.num_classes)
        if len(self.channels) != 3:
            raise ConfigError(f"LeNet5 takes 3 conv widths (C1, C3, C5), got {self.channels!r}")
        if self.pooling not in ("avg", "max"):
            raise unknown_name("pooling", self.pooling, ("avg", "max"))
        check_block_config("none", self.activation)
        k = self.kernel_size
        layers = [(k, 1, self.first_padding), (2, 2, 0), (k, 1, 0), (2, 2, 0), (k, 1, 0)]
        for side in x.shape[1:3]:
            chain_output_size(side, layers, what="LeNet5 (three valid 5×5 convs, two 2×2 poolings)")
        c1, c3, c5 = self.channels
        h = ConvNormAct(c1, k, padding=self.first_padding, activation=self.activation,
                        kernel_init=self.kernel_init, name="c1")(x, train)
        h = pool(h, self.pooling, 2, 2)
        h = ConvNormAct(c3, k, padding="VALID", activation=self.activation, kernel_init=self.kernel_init, name="c3")(h, train)
        h = pool(h, self.pooling, 2, 2)
        h = ConvNormAct(c5, k, padding="VALID", activation=self.activation, kernel_init=self.kernel_init, name="c5")(h, train)
        h = flatten(h)
        h = Activation(self.activation)(nn.Dense(self.hidden, name="f6", **init_kwargs(self.kernel_init))(h))
        return nn.Dense(self.num_classes, name="head")(h)


class AlexNet(nn.Module):
    """AlexNet (Krizhevsky et al. 2012): 5 convs (ReLU, max pooling) and 3 FC layers with dropout.

    The defaults are the paper's two-GPU network on ``227×227×3`` (conv2, 4, 5 grouped in 2):
    60,965,224 parameters. ``channels=(64, 192, 384, 256, 256), groups=(1,)*5, first_padding=2``
    on ``224×224`` is torchvision's one-GPU variant (61,100,840). Local response normalization is
    left out (no parameters; later work found it unnecessary).

    Attributes:
      num_classes, channels (5 conv widths), groups (5 group counts), hidden (FC widths),
      dropout_rate (0.5 before each hidden FC), first_kernel/first_stride/first_padding (conv1),
      norm (``"none"``, or e.g. ``"batch"`` for a modern variant), activation, in_channels.

    >>> from dlcore.models import count_params
    >>> count_params(AlexNet(), (1, 227, 227, 3))
    60965224
    """

    num_classes: int = 1000
    channels: Sequence[int] = (96, 256, 384, 384, 256)
    groups: Sequence[int] = (1, 2, 1, 2, 2)
    hidden: Sequence[int] = (4096, 4096)
    dropout_rate: float | jax.Array = 0.5
    first_kernel: int = 11
    first_stride: int = 4
    first_padding: int = 0
    norm: str = "none"
    activation: str | Callable = "relu"
    kernel_init: InitSpec | None = None
    in_channels: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        check_input(x, 4, self.in_channels, "AlexNet", module=self, first_layer="conv1")
        check_block_config(self.norm, self.activation)
        if len(self.channels) != 5 or len(self.groups) != 5:
            raise ConfigError(f"AlexNet takes 5 conv widths and 5 group counts, got {self.channels!r}, {self.groups!r}")
        check_positive("AlexNet", channels=tuple(self.channels), hidden=tuple(self.hidden))
        layers = [(self.first_kernel, self.first_stride, self.first_padding), (3, 2, 0), (5, 1, 2), (3, 2, 0),
                  (3, 1, 1), (3, 1, 1), (3, 1, 1), (3, 2, 0)]
        for side in x.shape[1:3]:
            chain_output_size(side, layers, what="AlexNet (conv1 stride 4 and three 3×3/2 max poolings)")
        kernels = (self.first_kernel, 5, 3, 3, 3)
        pads = (self.first_padding, 2, 1, 1, 1)
        in_ch = x.shape[-1]
        h = x
        for i, (c, g, k, p) in enumerate(zip(self.channels, self.groups, kernels, pads)):
            check_groups(f"AlexNet conv{i + 1}", in_ch, c, g)
            h = ConvNormAct(c, k, strides=self.first_stride if i == 0 else 1, padding=p, groups=g, norm=self.norm,
                            activation=self.activation, kernel_init=self.kernel_init, name=f"conv{i + 1}")(h, train)
            if i in (0, 1, 4):
                h = pool(h, "max", 3, 2)
            in_ch = c
        h = flatten(h)
        for j, width in enumerate(self.hidden):
            h = Dropout(self.dropout_rate)(h, train)
            h = Activation(self.activation)(nn.Dense(width, name=f"fc{j + 6}", **init_kwargs(self.kernel_init))(h))
        return nn.Dense(self.num_classes, name="head")(h)


VGG_CONFIGS = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
"""Convs per stage for VGG-11/13/16/19 (configurations A, B, D, E of Simonyan & Zisserman)."""


class VGG(nn.Module):
    """VGG (Simonyan & Zisserman 2015): stages of 3×3 "same" convs, 2×2 max pooling, three FC layers.

    VGG-16 on ``224×224×3`` with 1000 classes: 138,357,544 parameters.

    Attributes:
      depth: 11, 13, 16 or 19 (sets the convs per stage), ignored if ``stage_sizes`` is given.
      stage_sizes: convs per stage (overrides ``depth``).
      widths: channels per stage (``(64, 128, 256, 512, 512)``).
      hidden: FC widths (``(4096, 4096)``), each followed by ReLU and dropout (``dropout_rate``).
      norm: ``"none"`` (the paper) or ``"batch"`` (VGG-BN).

    >>> from dlcore.models import count_params
    >>> count_params(VGG(depth=16), (1, 224, 224, 3))
    138357544
    """

    depth: int = 16
    num_classes: int = 1000
    stage_sizes: Sequence[int] | None = None
    widths: Sequence[int] = (64, 128, 256, 512, 512)
    hidden: Sequence[int] = (4096, 4096)
    dropout_rate: float | jax.Array = 0.5
    norm: str = "none"
    activation: str | Callable = "relu"
    bn_momentum: float = 0.9
    kernel_init: InitSpec | None = None
    in_channels: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        check_input(x, 4, self.in_channels, "VGG", module=self, first_layer="stage1_conv1")
        check_block_config(self.norm, self.activation)
        if self.stage_sizes is None and self.depth not in VGG_CONFIGS:
            raise unknown_name("VGG depth", str(self.depth), [str(d) for d in VGG_CONFIGS])
        sizes = tuple(self.stage_sizes) if self.stage_sizes is not None else VGG_CONFIGS[self.depth]
        if len(sizes) != len(self.widths):
            raise ConfigError(f"VGG: {len(sizes)} stages but {len(self.widths)} widths ({self.widths!r})")
        check_positive("VGG", stage_sizes=sizes, widths=tuple(self.widths), hidden=tuple(self.hidden))
        for side in x.shape[1:3]:
            chain_output_size(side, [(2, 2, 0)] * len(sizes), what=f"VGG ({len(sizes)} 2×2 max poolings)")
        h = x
        for s, (n, w) in enumerate(zip(sizes, self.widths)):
            for i in range(n):
                h = ConvNormAct(w, 3, padding=1, norm=self.norm, activation=self.activation, bn_momentum=self.bn_momentum,
                                kernel_init=self.kernel_init, name=f"stage{s + 1}_conv{i + 1}")(h, train)
            h = pool(h, "max", 2, 2)
        h = flatten(h)
        for j, width in enumerate(self.hidden):
            h = Activation(self.activation)(nn.Dense(width, name=f"fc{j + 1}", **init_kwargs(self.kernel_init))(h))
            h = Dropout(self.dropout_rate)(h, train)
        return nn.Dense(self.num_classes, name="head")(h)


class SimpleCNN(nn.Module):
    """The lectures' prototype: ``(conv → [BN] → ReLU → [pool])`` × L, then flatten and FC layers.

    Attributes:
      channels: conv widths, one block each.
      kernel_size: odd; "same" padding.
      pool_every: max-pool 2×2 after every ``pool_every`` blocks (0: never).
      global_pool: average over positions instead of flattening before the FC layers.
      hidden: FC widths before the head.
      norm, position, activation, dropout_rate (before each FC), bn_momentum, kernel_init, in_channels.

    >>> import jax, jax.numpy as jnp
    >>> m = SimpleCNN(channels=(8, 16), num_classes=10)
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 1)), train=False)
    >>> m.apply(v, jnp.ones((3, 8, 8, 1)), train=False).shape
    (3, 10)
    """

    channels: Sequence[int] = (32, 64)
    num_classes: int = 10
    kernel_size: int = 3
    pool_every: int = 1
    global_pool: bool = False
    hidden: Sequence[int] = ()
    norm: str = "batch"
    position: str = "before"
    activation: str | Callable = "relu"
    dropout_rate: float | jax.Array = 0.0
    bn_momentum: float = 0.9
    kernel_init: InitSpec | None = None
    in_channels: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        check_input(x, 4, self.in_channels, "SimpleCNN", module=self, first_layer="block0")
        check_block_config(self.norm, self.activation)
        check_positive("SimpleCNN", channels=tuple(self.channels) or (1,), num_classes=self.num_classes)
        pools = len(self.channels) // self.pool_every if self.pool_every else 0
        for side in x.shape[1:3]:
            chain_output_size(side, [(2, 2, 0)] * pools, what=f"SimpleCNN ({pools} 2×2 max poolings)")
        h = x
        for i, c in enumerate(self.channels):
            h = ConvNormAct(c, self.kernel_size, padding="SAME", norm=self.norm, activation=self.activation,
                            position=self.position, bn_momentum=self.bn_momentum, kernel_init=self.kernel_init,
                            name=f"block{i}")(h, train)
            if self.pool_every and (i + 1) % self.pool_every == 0:
                h = pool(h, "max", 2, 2)
        h = global_avg_pool(h) if self.global_pool else flatten(h)
        for j, width in enumerate(self.hidden):
            h = Dropout(self.dropout_rate)(h, train)
            h = Activation(self.activation)(nn.Dense(width, name=f"fc{j}", **init_kwargs(self.kernel_init))(h))
        h = Dropout(self.dropout_rate)(h, train)
        return nn.Dense(self.num_classes, name="head")(h)
