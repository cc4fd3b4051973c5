"""Data augmentation as pure keyed functions on batches (lecture 8), plus test-time crops.

Every random augmentation has the signature ``aug(key, x, **options) -> x`` on a channels-last
batch: ``[B, H, W, C]`` images or ``[B, L, C]`` 1-D signals (the "spatial" axes are all but the
first and last). Draws are per example from ``key`` alone, so the same key gives the same batch
bit for bit; with ``functools.partial`` (and :func:`compose`) they fit ``Recipe(augment=...)``,
which calls ``augment(step_key(keys["augment"], step), x)``. Numeric options (probabilities,
deltas, factors) may be traced; sizes (``padding``, ``crop_size``) are static.

Test time uses a *fixed* set of views instead (lecture 8: 4 corners + centre, × 2 flips = 10) and
averages the predictions over them (:func:`tta_predict`).
"""

from __future__ import annotations

import itertools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from dlcore.errors import ConfigError, ShapeError

Augment = Callable[[jax.Array, jax.Array], jax.Array]


def _spatial(x) -> int:
    if jnp.ndim(x) not in (3, 4):
        raise ShapeError(
            f"augmentations take channels-last batches [B, H, W, C] or [B, L, C], got shape {jnp.shape(x)}; "
            "add a channel axis with x[..., None]"
        )
    return jnp.ndim(x) - 2


def _per_example(mask_B, x, y):
    # Select y where mask, else x, per example (mask broadcast over the example's axes).
    return jnp.where(mask_B.reshape((-1,) + (1,) * (x.ndim - 1)), y, x)


def random_flip(key: jax.Array, x, *, horizontal: bool = True, vertical: bool = False, prob=0.5) -> jax.Array:
    """Flip each example with probability ``prob``: left-right (last spatial axis) and/or up-down.

    ``vertical`` needs images (``[B, H, W, C]``); the two flips are drawn independently.

    >>> import jax, jax.numpy as jnp
    >>> x = jnp.arange(3.0).reshape(1, 3, 1)
    >>> random_flip(jax.random.PRNGKey(0), x, prob=1.0)[0, :, 0].tolist()
    [2.0, 1.0, 0.0]
    """
    s = _spatial(x)
    if vertical and s != 2:
        raise ConfigError("vertical flips need image batches [B, H, W, C]")
    b = x.shape[0]
    if horizontal:
        flip = jax.random.bernoulli(jax.random.fold_in(key, 0), prob, (b,))
        x = _per_example(flip, x, jnp.flip(x, axis=x.ndim - 2))
    if vertical:
        flip = jax.random.bernoulli(jax.random.fold_in(key, 1), prob, (b,))
        x = _per_example(flip, x, jnp.flip(x, axis=1))
    return x


def _crop_one(img, offset, size):
    # img [*spatial, C]; offset [S] ints (traced); size: static spatial sizes.
    start = tuple(offset[i] for i in range(len(size))) + (0,)
    return jax.lax.dynamic_slice(img, start, tuple(size) + (img.shape[-1],))


def random_crop(
    key: jax.Array,
    x,
    *,
    padding: int,
    crop_size: Sequence[int] | int | None = None,
    fill=0.0,
    mode: str = "constant",
) -> jax.Array:
    """Pad every spatial side by ``padding`` and cut a random window per example.

    Args:
      key: augmentation key.
      x: ``[B, H, W, C]`` or ``[B, L, C]``.
      padding: pixels added on each side of each spatial axis (static).
      crop_size: output spatial size (default: the input's, the usual "pad 4, crop 32").
      fill: padding value for ``mode="constant"``.
      mode: ``jnp.pad`` mode: ``"constant"``, ``"edge"``, ``"reflect"``...
    Returns:
      ``[B, *crop_size, C]``; the window's offset along each axis is uniform in
      ``[0, padded_size - crop_size]``.

    >>> import jax, jax.numpy as jnp
    >>> random_crop(jax.random.PRNGKey(0), jnp.ones((2, 8, 8, 3)), padding=2).shape
    (2, 8, 8, 3)
    """
    s = _spatial(x)
    if padding < 0:
        raise ConfigError(f"padding must be >= 0, got {padding}")
    sizes = tuple(x.shape[1:-1])
    crop = sizes if crop_size is None else ((crop_size,) * s if isinstance(crop_size, int) else tuple(crop_size))
    padded_sizes = tuple(n + 2 * padding for n in sizes)
    if len(crop) != s or any(c < 1 or c > p for c, p in zip(crop, padded_sizes)):
        raise ConfigError(f"crop_size {crop} must have {s} entries in [1, padded size {padded_sizes}]")
    pad_width = ((0, 0),) + ((padding, padding),) * s + ((0, 0),)
    extra = {"constant_values": fill} if mode == "constant" else {}
    xp = jnp.pad(x, pad_width, mode=mode, **extra)
    maxval = jnp.asarray([p - c + 1 for p, c in zip(padded_sizes, crop)], jnp.int32)
    offsets = jax.random.randint(key, (x.shape[0], s), 0, maxval[None, :])
    return jax.vmap(lambda img, off: _crop_one(img, off, crop))(xp, offsets)


def _spatial_axes(x):
    return tuple(range(1, x.ndim - 1))


def random_brightness(key: jax.Array, x, *, max_delta) -> jax.Array:
    """Add one offset ``δ ~ U(−max_delta, max_delta)`` per example (all pixels and channels)."""
    _spatial(x)
    delta = jax.random.uniform(key, (x.shape[0],), x.dtype, -max_delta, max_delta)
    return x + delta.reshape((-1,) + (1,) * (x.ndim - 1))


def random_contrast(key: jax.Array, x, *, lower, upper) -> jax.Array:
    """Scale each example's deviation from its per-channel mean by ``f ~ U(lower, upper)``.

    ``x' = (x − mean) · f + mean``, the mean taken over the spatial axes of each example and
    channel (as ``tf.image.adjust_contrast``); the mean is preserved.
    """
    _spatial(x)
    f = jax.random.uniform(key, (x.shape[0],), x.dtype, lower, upper)
    mean = jnp.mean(x, axis=_spatial_axes(x), keepdims=True)
    return (x - mean) * f.reshape((-1,) + (1,) * (x.ndim - 1)) + mean


def brightness_contrast(key: jax.Array, x, *, max_delta, contrast: tuple = (0.8, 1.2)) -> jax.Array:
    """Random brightness then random contrast, from two sub-keys of ``key``."""
    x = random_brightness(jax.random.fold_in(key, 0), x, max_delta=max_delta)
    return random_contrast(jax.random.fold_in(key, 1), x, lower=contrast[0], upper=contrast[1])


def compose(*augments: Augment) -> Augment:
    """Chain augmentations; the i-th gets ``fold_in(key, i)`` (independent draws, one key in).

    >>> import functools, jax, jax.numpy as jnp
    >>> aug = compose(random_flip, functools.partial(random_crop, padding=1))
    >>> aug(jax.random.PRNGKey(0), jnp.ones((2, 4, 4, 1))).shape
    (2, 4, 4, 1)
    """

    def apply(key, x):
        for i, aug in enumerate(augments):
            x = aug(jax.random.fold_in(key, i), x)
        return x

    return apply


def fixed_crops(x, crop_size: Sequence[int] | int, *, flips: bool = True) -> jax.Array:
    """The deterministic test-time views: every corner + the centre, optionally × left-right flip.

    Images give 5 crops (top-left, top-right, bottom-left, bottom-right, centre), 10 with flips;
    1-D signals give 3 (start, end, centre), 6 with flips. Flipped views follow the unflipped ones
    in the same order (a flipped crop is the crop, then flipped).

    Args:
      x: ``[B, H, W, C]`` or ``[B, L, C]``.
      crop_size: spatial size of the views (static).
    Returns:
      ``[V, B, *crop_size, C]``.

    >>> import jax.numpy as jnp
    >>> fixed_crops(jnp.zeros((2, 32, 32, 3)), 28).shape
    (10, 2, 28, 28, 3)
    """
    s = _spatial(x)
    sizes = tuple(x.shape[1:-1])
    crop = (crop_size,) * s if isinstance(crop_size, int) else tuple(crop_size)
    if len(crop) != s or any(c < 1 or c > n for c, n in zip(crop, sizes)):
        raise ConfigError(f"crop_size {crop} must have {s} entries in [1, input size {sizes}]")
    corners = list(itertools.product(*[(0, n - c) for n, c in zip(sizes, crop)]))
    centre = tuple((n - c) // 2 for n, c in zip(sizes, crop))
    views = []
    for start in corners + [centre]:
        idx = (slice(None),) + tuple(slice(o, o + c) for o, c in zip(start, crop)) + (slice(None),)
        views.append(x[idx])
    if flips:
        views += [jnp.flip(v, axis=v.ndim - 2) for v in views]
    return jnp.stack(views)


def tta_predict(
    predict_fn: Callable[[jax.Array], jax.Array], x, crop_size: Sequence[int] | int, *, flips: bool = True
) -> jax.Array:
    """Average ``predict_fn`` over the :func:`fixed_crops` views of a batch.

    Pass a function returning *probabilities* (e.g. ``softmax`` of the logits) to average
    probabilities, the usual choice; views are evaluated one after another with ``lax.map``.

    Returns:
      ``mean_v predict_fn(view_v)``, shaped like one ``predict_fn`` output.

    >>> import jax.numpy as jnp
    >>> tta_predict(lambda v: v.mean(axis=(1, 2, 3))[:, None], jnp.ones((2, 8, 8, 1)), 6).shape
    (2, 1)
    """
    views = fixed_crops(x, crop_size, flips=flips)
    return jnp.mean(jax.lax.map(predict_fn, views), axis=0)
