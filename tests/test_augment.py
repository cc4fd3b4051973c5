"""dlcore.data augmentations: keyed, exact on constructed images; test-time crops."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.data import (
    brightness_contrast, compose, fixed_crops, random_brightness, random_contrast, random_crop, random_flip, tta_predict
)
from dlcore.errors import ConfigError, ShapeError


def _images(b=32, h=6, w=5, c=2):
    # Every pixel distinct: a crop/flip is identified exactly by its values.
    return jnp.arange(b * h * w * c, dtype=jnp.float32).reshape(b, h, w, c)


def test_flip_is_exact_and_keyed(key):
    x = _images()
    out = np.asarray(random_flip(key, x))
    flipped = np.asarray(x)[:, :, ::-1]
    is_flipped = np.array([np.array_equal(o, f) for o, f in zip(out, flipped)])
    is_same = np.array([np.array_equal(o, xi) for o, xi in zip(out, np.asarray(x))])
    assert np.all(is_flipped ^ is_same)  # each example exactly one of the two
    assert 0 < is_flipped.sum() < len(x)
    np.testing.assert_array_equal(random_flip(key, x), out)  # same key => same output
    assert not np.array_equal(random_flip(jax.random.fold_in(key, 1), x), out)
    np.testing.assert_array_equal(random_flip(key, x, prob=1.0), flipped)
    np.testing.assert_array_equal(random_flip(key, x, prob=0.0), x)
    up_down = random_flip(key, x, horizontal=False, vertical=True, prob=1.0)
    np.testing.assert_array_equal(up_down, np.asarray(x)[:, ::-1])


def test_flip_probability_is_traceable(key):
    x = _images(b=64)
    def num_flipped(p):
        return jnp.sum(jnp.any(random_flip(key, x, prob=p) != x, axis=(1, 2, 3)))

    counts = jax.vmap(num_flipped)(jnp.array([0.0, 0.5, 1.0]))
    assert counts[0] == 0 and 10 < counts[1] < 54 and counts[2] == 64


def test_crop_is_an_exact_window_of_the_padded_image(key):
    x = _images()
    pad = 2
    out = np.asarray(jax.jit(functools.partial(random_crop, padding=pad))(key, x))
    assert out.shape == x.shape
    xp = np.pad(np.asarray(x), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    offsets = []
    for i in range(len(x)):
        found = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if np.array_equal(out[i], xp[i, dy : dy + 6, dx : dx + 5])
        ]
        assert len(found) == 1, i
        offsets.append(found[0])
    assert len(set(offsets)) > 5  # offsets are drawn, not fixed
    np.testing.assert_array_equal(random_crop(key, x, padding=pad), out)
    np.testing.assert_array_equal(random_crop(key, x, padding=0), x)  # no padding, full size: identity


def test_crop_size_edge_mode_and_1d_signals(key):
    x = _images(b=4)
    small = random_crop(key, x, padding=0, crop_size=(3, 4))
    assert small.shape == (4, 3, 4, 2)
    edge = np.asarray(random_crop(key, x, padding=3, mode="edge"))
    assert set(np.unique(edge)) <= set(np.unique(np.asarray(x)))  # edge padding copies pixels, no zeros added
    sig = jnp.arange(2 * 10 * 1, dtype=jnp.float32).reshape(2, 10, 1)
    out = np.asarray(random_crop(key, sig, padding=2))
    xp = np.pad(np.asarray(sig), ((0, 0), (2, 2), (0, 0)))
    for i in range(2):
        assert any(np.array_equal(out[i], xp[i, o : o + 10]) for o in range(5))
    np.testing.assert_array_equal(random_flip(key, sig, prob=1.0), np.asarray(sig)[:, ::-1])


def test_brightness_and_contrast(key):
    x = _images(b=16) / 100.0
    b = np.asarray(random_brightness(key, x, max_delta=0.3)) - np.asarray(x)
    per_example = b.reshape(16, -1)
    np.testing.assert_allclose(per_example, per_example[:, :1] * np.ones_like(per_example), atol=1e-5)
    assert np.all(np.abs(per_example[:, 0]) <= 0.3) and np.std(per_example[:, 0]) > 0.01
    c = np.asarray(random_contrast(key, x, lower=0.5, upper=1.5))
    xn = np.asarray(x)
    mean = xn.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(c.mean(axis=(1, 2), keepdims=True), mean, rtol=1e-5)  # mean preserved
    f = (c - mean)[:, 0, 0, 0] / (xn - mean)[:, 0, 0, 0]
    np.testing.assert_allclose((c - mean), f[:, None, None, None] * (xn - mean), rtol=1e-4, atol=1e-4)
    assert np.all((f >= 0.5 - 1e-5) & (f <= 1.5 + 1e-5))
    both = brightness_contrast(key, x, max_delta=0.2)
    np.testing.assert_array_equal(both, brightness_contrast(key, x, max_delta=0.2))


def test_compose_is_keyed_and_fits_the_recipe_signature(key):
    aug = compose(
        random_flip, functools.partial(random_crop, padding=1), functools.partial(random_brightness, max_delta=0.1)
    )
    x = _images(b=8)
    out = jax.jit(aug)(key, x)
    assert out.shape == x.shape
    np.testing.assert_array_equal(out, jax.jit(aug)(key, x))
    assert not np.array_equal(out, aug(jax.random.fold_in(key, 7), x))


def test_fixed_crops_corners_centre_and_flips():
    x = _images(b=2, h=6, w=6, c=1)
    v = np.asarray(fixed_crops(x, 4))
    xn = np.asarray(x)
    assert v.shape == (10, 2, 4, 4, 1)
    expected = [xn[:, 0:4, 0:4], xn[:, 0:4, 2:6], xn[:, 2:6, 0:4], xn[:, 2:6, 2:6], xn[:, 1:5, 1:5]]
    for i, e in enumerate(expected):
        np.testing.assert_array_equal(v[i], e)
        np.testing.assert_array_equal(v[5 + i], e[:, :, ::-1])
    assert fixed_crops(x, (3, 5), flips=False).shape == (5, 2, 3, 5, 1)
    assert fixed_crops(x[:, :, 0], 4).shape == (6, 2, 4, 1)  # 1-D: start, end, centre (x flips)


def test_tta_predict_averages_over_the_views(key):
    x = jax.random.normal(key, (3, 6, 6, 2))
    w = jax.random.normal(jax.random.fold_in(key, 1), (4 * 4 * 2, 5))

    def predict(v):
        return jax.nn.softmax(v.reshape(v.shape[0], -1) @ w)

    got = jax.jit(lambda a: tta_predict(predict, a, 4))(x)
    ref = np.mean([np.asarray(predict(view)) for view in fixed_crops(x, 4)], axis=0)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(got).sum(-1), 1.0, rtol=1e-5)


def test_bad_input(key):
    with pytest.raises(ShapeError, match="channels-last"):
        random_flip(key, jnp.zeros((4, 5)))
    with pytest.raises(ConfigError, match="vertical"):
        random_flip(key, jnp.zeros((4, 5, 1)), vertical=True)
    with pytest.raises(ConfigError, match="crop_size"):
        random_crop(key, _images(b=2), padding=1, crop_size=(9, 9))
    with pytest.raises(ConfigError, match="padding"):
        random_crop(key, _images(b=2), padding=-1)
    with pytest.raises(ConfigError, match="crop_size"):
        fixed_crops(_images(b=2), 7)
