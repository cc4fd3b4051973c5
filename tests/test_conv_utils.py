"""Output-size helpers vs the lectures' examples and vs the shapes XLA/flax actually produce."""

from __future__ import annotations

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from dlcore.errors import ConfigError, ShapeError
from dlcore.nn import (
    chain_output_size, conv_output_size, min_input_size, pool_output_size, same_padding, transposed_conv_output_size
)


def test_lecture_examples():
    assert conv_output_size(7, 3, 1) == 5  # (7 − 3)/1 + 1
    assert conv_output_size(7, 3, 2) == 3  # (7 − 3)/2 + 1
    assert conv_output_size(7, 3, 3) == 2  # ⌊2.33⌋ (the floor formula)
    assert conv_output_size(7, 3, 1, padding=1) == 7  # zero padding 1 keeps 7×7
    assert [same_padding(f) for f in (3, 5, 7)] == [1, 2, 3]
    assert pool_output_size(4, 2) == 2 and pool_output_size(224, 2, 2) == 112


def test_illegal_stride_when_exact():
    with pytest.raises(ConfigError, match=r"illegal stride 3 for input 7, filter 3.*2\.33 is not an integer.*divides 4"):
        conv_output_size(7, 3, 3, exact=True)
    assert conv_output_size(7, 3, 2, exact=True) == 3
    assert conv_output_size(227, 11, 4, exact=True) == 55  # AlexNet's conv1 fits exactly


def _xla_out(n, f, s, p, d):
    x = jax.ShapeDtypeStruct((1, n, 1), jnp.float32)
    w = jax.ShapeDtypeStruct((f, 1, 1), jnp.float32)
    pad = p if isinstance(p, str) else [(p, p)]
    out = jax.eval_shape(
        lambda x, w: jax.lax.conv_general_dilated(x, w, (s,), pad, rhs_dilation=(d,),
                                                  dimension_numbers=("NWC", "WIO", "NWC")), x, w)
    return out.shape[1]


@pytest.mark.parametrize("n", [7, 8, 13, 32])
def test_formula_matches_xla_on_a_grid(n):
    checked = 0
    for f, s, p, d in itertools.product((1, 2, 3, 5), (1, 2, 3), (0, 1, 2, "SAME", "VALID"), (1, 2)):
        eff = d * (f - 1) + 1
        pad = 0 if p == "VALID" else (None if p == "SAME" else 2 * p)
        if pad is not None and n + pad < eff:
            with pytest.raises(ShapeError, match="smaller than the filter"):
                conv_output_size(n, f, s, p, d)
            continue
        assert conv_output_size(n, f, s, p, d) == _xla_out(n, f, s, p, d), (n, f, s, p, d)
        checked += 1
    assert checked > 80


def test_pooling_matches_flax():
    for n, w, s in [(13, 3, 2), (8, 2, 2), (27, 3, 2), (9, 2, 1)]:
        out = jax.eval_shape(lambda x: nn.max_pool(x, (w,), (s,), "VALID"), jax.ShapeDtypeStruct((1, n, 1), jnp.float32))
        assert pool_output_size(n, w, s) == out.shape[1]


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_transposed_conv_matches_flax(key, padding):
    for n, f, s in [(8, 2, 2), (5, 3, 2), (4, 4, 4), (3, 1, 2), (6, 8, 4)]:
        m = nn.ConvTranspose(1, (f,), strides=(s,), padding=padding)
        out = jax.eval_shape(lambda x: m.init_with_output(key, x)[0], jax.ShapeDtypeStruct((1, n, 1), jnp.float32))
        assert transposed_conv_output_size(n, f, s, padding) == out.shape[1], (n, f, s, padding)
    assert transposed_conv_output_size(4, 3, 2, 1) == 7  # PyTorch's (N − 1)S − 2P + F


def test_chain_and_minimum_size():
    lenet = [(5, 1, 0), (2, 2, 0), (5, 1, 0), (2, 2, 0), (5, 1, 0)]
    assert chain_output_size(32, lenet) == 1
    assert min_input_size(lenet) == 32
    with pytest.raises(ShapeError, match=r"input size 28 is too small for LeNet.*at least 32"):
        chain_output_size(28, lenet, what="LeNet")
    for layers in ([(3, 2, 1)] * 4, [(11, 4, 0), (3, 2, 0), (5, 1, 2), (3, 2, 0)], [(3, 1, 0, 2), (2, 2, 0)]):
        m = min_input_size(layers)
        assert chain_output_size(m, layers) >= 1
        if m > 1:
            with pytest.raises(ShapeError):
                chain_output_size(m - 1, layers)


def test_bad_sizes():
    with pytest.raises(ConfigError, match="must be ≥ 1"):
        conv_output_size(7, 3, 0)
    with pytest.raises(ConfigError, match="padding must be"):
        conv_output_size(7, 3, 1, padding="FULL")
    with pytest.raises(ConfigError, match="even filter"):
        same_padding(4)
    with pytest.raises(ShapeError, match="smaller than the filter's extent 5"):
        conv_output_size(4, 3, dilation=2)
