"""Dense prediction (lecture 10): a fully convolutional network and a U-Net.

Both map ``[B, H, W, C]`` images to per-pixel logits ``[B, H', W', num_classes]`` (``H' = H``
with "same" padding). Train them with a per-pixel loss, e.g. ``cross_entropy`` on the logits
reshaped to ``[B·H·W, K]`` (see :func:`pixel_cross_entropy`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.errors import ShapeError, unknown_name
from dlcore.models._common import ConvNormAct, check_block_config, check_input, check_positive, pool
from dlcore.nn._init import InitSpec, init_kwargs

PADDINGS = ("SAME", "VALID")


class FCN(nn.Module):
    """A fully convolutional network (Long et al. 2015, the "32s" form at small scale).

    A VGG-like encoder (``convs_per_stage`` 3×3 convs + 2×2 max pool per stage), the classifier's
    fully connected layers as convolutions (``head_width`` 1×1 conv, then a 1×1 conv to
    ``num_classes``), and one learned transposed conv that upsamples by ``2^stages`` back to the
    input resolution. Any input whose sides are multiples of ``2^stages`` works.

    >>> import jax, jax.numpy as jnp
    >>> m = FCN(num_classes=3, widths=(4, 8))
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((1, 16, 16, 1)), train=False)
    >>> m.apply(v, jnp.ones((2, 16, 16, 1)), train=False).shape
    (2, 16, 16, 3)
    """

    num_classes: int = 21
    widths: Sequence[int] = (64, 128, 256)
    convs_per_stage: int = 2
    head_width: int = 64
    norm: str = "none"
    activation: str | Callable = "relu"
    bn_momentum: float = 0.9
    kernel_init: InitSpec | None = None
    in_channels: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        check_input(x, 4, self.in_channels, "FCN", module=self, first_layer="stage1_conv1")
        check_block_config(self.norm, self.activation)
        check_positive("FCN", widths=tuple(self.widths), convs_per_stage=self.convs_per_stage,
                       head_width=self.head_width, num_classes=self.num_classes)
        f = 2 ** len(self.widths)
        _check_divisible(x, f, "FCN", f"{len(self.widths)} 2×2 poolings, undone by one ×{f} transposed conv")
        kw = dict(norm=self.norm, activation=self.activation, bn_momentum=self.bn_momentum, kernel_init=self.kernel_init)
        h = x
        for s, w in enumerate(self.widths):
            for i in range(self.convs_per_stage):
                h = ConvNormAct(w, 3, name=f"stage{s + 1}_conv{i + 1}", **kw)(h, train)
            h = pool(h, "max", 2, 2)
        h = ConvNormAct(self.head_width, 1, name="fc_as_conv", **kw)(h, train)
        h = nn.Conv(self.num_classes, (1, 1), name="score", **init_kwargs(self.kernel_init))(h)
        # Learned upsampling ("up-convolution"): kernel 2f, stride f, "same" → exactly f× larger.
        return nn.ConvTranspose(self.num_classes, (2 * f, 2 * f), strides=(f, f), padding="SAME", name="upsample")(h)


def _check_divisible(x: jax.Array, f: int, what: str, why: str) -> None:
    h, w = x.shape[1:3]
    if h % f or w % f or h < f or w < f:
        raise ShapeError(
            f"{what} needs height and width that are positive multiples of {f} ({why}), got {h}x{w}; "
            f"pad or crop the images to e.g. {max(f, -(-h // f) * f)}x{max(f, -(-w // f) * f)}"
        )


def unet_output_size(n: int, depth: int, padding: str = "SAME") -> int:
    """Output side of a :class:`UNet` for input side ``n`` (raises if ``n`` does not fit).

    ``"SAME"``: ``n`` (must be a multiple of ``2^depth``). ``"VALID"`` (the original U-Net): two
    unpadded 3×3 convs lose 4 pixels per level and every pooled size must be even; e.g. 572 → 388.

    >>> unet_output_size(572, 4, "VALID"), unet_output_size(64, 4)
    (388, 64)
    """
    padding = padding.upper()
    if padding not in PADDINGS:
        raise unknown_name("U-Net padding", padding, PADDINGS)
    f = 2**depth
    if padding == "SAME":
        if n % f or n < f:
            raise ShapeError(
                f"a U-Net with depth {depth} and 'SAME' padding needs sides that are multiples of {f} "
                f"(each of {depth} poolings halves them and the skips must match), got {n}; "
                f"pad or crop to {max(f, -(-n // f) * f)}"
            )
        return n
    size = n
    for level in range(depth):
        size -= 4
        if size < 2 or size % 2:
            raise ShapeError(
                f"a 'VALID' U-Net with depth {depth} cannot take side {n}: before pooling {level + 1} the size is "
                f"{size} (must be even and ≥ 2); use a side like {_valid_unet_input(n, depth)}"
            )
        size //= 2
    size -= 4
    if size < 1:
        raise ShapeError(f"a 'VALID' U-Net with depth {depth} needs sides ≥ {_valid_unet_input(1, depth)}, got {n}")
    for _ in range(depth):
        size = 2 * size - 4
    return size


def _valid_unet_input(n: int, depth: int) -> int:
    # Smallest legal side ≥ n: bottleneck output b ≥ 1 ⇒ side = ((b + 4)·2 + 4)·2 … unrolled.
    b = 1
    while True:
        side = b + 4
        for _ in range(depth):
            side = side * 2 + 4
        if side >= n:
            return side
        b += 1


def _center_crop(skip: jax.Array, h: int, w: int) -> jax.Array:
    dh, dw = (skip.shape[1] - h) // 2, (skip.shape[2] - w) // 2
    return skip[:, dh:dh + h, dw:dw + w, :]


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015): contracting path, expanding path, skip concatenation.

    Encoder level ``i``: two 3×3 convs with ``features · 2^i`` channels (+ norm, ReLU), 2×2 max
    pool. Bottleneck: two convs with ``features · 2^depth``. Decoder level: 2×2 stride-2 transposed
    conv halving the channels, concatenation with the encoder's feature map (center-cropped with
    ``"VALID"`` padding), two 3×3 convs. A final 1×1 conv maps to ``num_classes``.

    Attributes:
      num_classes: output channels (classes per pixel).
      features: channels of the first level (64 in the paper).
      depth: number of poolings (4 in the paper).
      padding: ``"SAME"`` (output size = input size; sides multiple of ``2^depth``) or
        ``"VALID"`` (the paper's unpadded convs; see :func:`unet_output_size`).
      norm, activation, bn_momentum, kernel_init, in_channels.

    >>> import jax, jax.numpy as jnp
    >>> m = UNet(num_classes=2, features=4, depth=2)
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((1, 16, 16, 1)), train=False)
    >>> m.apply(v, jnp.ones((2, 16, 16, 1)), train=False).shape
    (2, 16, 16, 2)
    """

    num_classes: int = 2
    features: int = 64
    depth: int = 4
    padding: str = "SAME"
    norm: str = "none"
    activation: str | Callable = "relu"
    bn_momentum: float = 0.9
    kernel_init: InitSpec | None = None
    in_channels: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        check_input(x, 4, self.in_channels, "UNet", module=self, first_layer="down1_conv1")
        check_block_config(self.norm, self.activation)
        check_positive("UNet", features=self.features, depth=self.depth, num_classes=self.num_classes)
        for side in x.shape[1:3]:
            unet_output_size(side, self.depth, self.padding)
        pad = self.padding.upper()
        kw = dict(norm=self.norm, activation=self.activation, bn_momentum=self.bn_momentum,
                  kernel_init=self.kernel_init, padding=pad)

        def double_conv(h, width, name):
            h = ConvNormAct(width, 3, name=f"{name}_conv1", **kw)(h, train)
            return ConvNormAct(width, 3, name=f"{name}_conv2", **kw)(h, train)

        skips = []
        h = x
        for i in range(self.depth):
            h = double_conv(h, self.features * 2**i, f"down{i + 1}")
            skips.append(h)
            h = pool(h, "max", 2, 2)
        h = double_conv(h, self.features * 2**self.depth, "bottleneck")
        for i in reversed(range(self.depth)):
            width = self.features * 2**i
            h = nn.ConvTranspose(width, (2, 2), strides=(2, 2), padding="VALID", name=f"up{i + 1}_upconv",
                                 **init_kwargs(self.kernel_init))(h)
            skip = _center_crop(skips[i], h.shape[1], h.shape[2])
            h = jnp.concatenate([skip, h], axis=-1)
            h = double_conv(h, width, f"up{i + 1}")
        return nn.Conv(self.num_classes, (1, 1), name="head", **init_kwargs(self.kernel_init))(h)


def pixel_cross_entropy(logits_BxHxWxK: jax.Array, labels_BxHxW: jax.Array) -> jax.Array:
    """Per-image mean softmax cross-entropy over pixels: ``[B, H, W, K], [B, H, W] → [B]``.

    Usable as a :class:`dlcore.train.Recipe` ``loss`` via ``lambda out, batch, hp:
    pixel_cross_entropy(out, batch["y"])``.
    """
    import optax

    if logits_BxHxWxK.shape[:-1] != labels_BxHxW.shape:
        raise ShapeError(f"logits {logits_BxHxWxK.shape} and labels {labels_BxHxW.shape} disagree on [B, H, W]")
    per_pixel = optax.softmax_cross_entropy_with_integer_labels(logits_BxHxWxK, labels_BxHxW)
    return jnp.mean(per_pixel, axis=(1, 2))
