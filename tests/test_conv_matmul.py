"""Convolutions as patches @ kernel: the same numbers as flax's nn.Conv (and under vmap over seeds)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.models import ConvBase1D, LeNet5
from dlcore.nn import conv_as_matmul, patch_conv


@pytest.mark.parametrize(
    "window, strides, padding",
    [((5,), 2, 1), ((3,), 1, "SAME"), ((3,), 2, "VALID"), ((4,), 3, ((2, 1),)),
     ((5, 5), 1, "VALID"), ((3, 3), 2, 1), ((3, 2), (2, 1), "SAME")],
)
def test_conv_as_matmul_equals_nn_conv(key, window, strides, padding):
    x = jax.random.normal(key, (3, *(11,) * len(window), 4))
    conv = nn.Conv(6, window, strides=strides, padding=padding)
    v = conv.init(jax.random.fold_in(key, 1), x)
    want = conv.apply(v, x)
    with conv_as_matmul():
        got = conv.apply(v, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_patch_conv_against_lax(key):
    x = jax.random.normal(key, (2, 9, 9, 3))
    k = jax.random.normal(jax.random.fold_in(key, 1), (3, 3, 3, 5))
    want = jax.lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(patch_conv(x, k, 2, ((1, 1), (1, 1))), want, rtol=1e-5, atol=1e-5)


# Narrow versions (fast to compile); the layers and their padding/strides are the real ones.
@pytest.mark.parametrize("model, shape", [(ConvBase1D(channels=4), (8, 40)),
                                          (LeNet5(channels=(2, 3, 4), hidden=5), (2, 32, 32, 1))])
def test_vmapped_seed_sweep_same_loss_and_gradients(key, model, shape):
    """A seed sweep's loss and gradients are those of the vmapped convolutions, to float32 rounding."""
    x = jax.random.normal(key, shape)
    y = jax.random.randint(jax.random.fold_in(key, 1), (shape[0],), 0, 10)
    seeds = jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(5))
    params = jax.vmap(lambda k: model.init(k, x[:1], train=False)["params"])(seeds)

    def loss(p):
        logits = model.apply({"params": p}, x, train=True)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    def loss_mm(p):
        with conv_as_matmul():
            return loss(p)

    want_fn, got_fn = jax.jit(jax.vmap(jax.value_and_grad(loss))), jax.jit(jax.vmap(jax.value_and_grad(loss_mm)))
    # vmap folds the seeds into feature groups of the convolutions; the matmul form has none
    # (its patch extraction is a depthwise convolution with a constant filter: seeds fold into the
    # batch; 5 seeds, so no channel count of these models can be mistaken for the seed groups).
    assert "feature_group_count = 5" in want_fn.lower(params).as_text()
    assert "feature_group_count = 5" not in got_fn.lower(params).as_text()
    want_l, want_g = want_fn(params)
    got_l, got_g = got_fn(params)
    np.testing.assert_allclose(got_l, want_l, rtol=1e-5, atol=1e-6)
    for g, w in zip(jax.tree.leaves(got_g), jax.tree.leaves(want_g)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


def test_unsupported_convs_fall_back(key):
    x = jax.random.normal(key, (2, 12, 4))
    for conv in (nn.Conv(4, (3,), kernel_dilation=2), nn.Conv(4, (3,), feature_group_count=2),
                 nn.Conv(4, (3,), padding="CIRCULAR")):
        v = conv.init(key, x)
        with conv_as_matmul():
            np.testing.assert_array_equal(conv.apply(v, x), conv.apply(v, x))
            assert "dot_general" not in jax.jit(conv.apply).lower(v, x).as_text()  # not rewritten
