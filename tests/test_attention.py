"""Scaled dot-product and multi-head attention, masks, sinusoidal positional encoding."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.errors import ConfigError, ShapeError
from dlcore.nn import (
    MultiHeadAttention, PositionalEncoding, causal_mask, combine_masks, padding_mask, scaled_dot_product_attention,
    sinusoidal_positional_encoding
)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def numpy_attention(q, k, v, mask=None):
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    w = np.exp(s - s.max(-1, keepdims=True))
    return (w / w.sum(-1, keepdims=True)) @ v


def test_matches_the_lecture_formula(rng):
    q, k, v = rng.normal(size=(2, 4, 8)), rng.normal(size=(2, 6, 8)), rng.normal(size=(2, 6, 3))
    out, w = scaled_dot_product_attention(*(jnp.asarray(a, jnp.float32) for a in (q, k, v)))
    np.testing.assert_allclose(out, numpy_attention(q, k, v), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jnp.sum(w, -1), np.ones((2, 4)), rtol=1e-6)
    mask = rng.random((2, 4, 6)) < 0.6
    mask[..., 0] = True  # every query keeps at least one key
    out_m, w_m = scaled_dot_product_attention(*(jnp.asarray(a, jnp.float32) for a in (q, k, v)), mask=jnp.asarray(mask))
    np.testing.assert_allclose(out_m, numpy_attention(q, k, v, mask), rtol=1e-5, atol=1e-5)
    assert float(jnp.max(jnp.where(mask, 0.0, w_m))) == 0.0  # masked weights are exactly zero


def test_one_key_returns_its_value(rng):
    q = jnp.asarray(rng.normal(size=(3, 5, 4)), jnp.float32) * 10
    k = jnp.asarray(rng.normal(size=(3, 1, 4)), jnp.float32)
    v = jnp.asarray(rng.normal(size=(3, 1, 2)), jnp.float32)
    out, w = scaled_dot_product_attention(q, k, v)
    np.testing.assert_array_equal(w, np.ones((3, 5, 1), np.float32))
    np.testing.assert_array_equal(out, jnp.broadcast_to(v, (3, 5, 2)))
    # Multi-head: with one key/value position every query gets the same output.
    mha = MultiHeadAttention(num_heads=2)
    x_q, x_kv = q[:, :, :4], jnp.asarray(rng.normal(size=(3, 1, 6)), jnp.float32)
    params = mha.init(jax.random.PRNGKey(0), x_q, x_kv)
    o = mha.apply(params, x_q, x_kv)
    np.testing.assert_allclose(o, jnp.broadcast_to(o[:, :1], o.shape), rtol=1e-6, atol=1e-6)


def test_permuting_keys_and_values_together_changes_nothing(rng):
    q, k, v = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in ((2, 4, 8), (2, 7, 8), (2, 7, 5)))
    mask = jnp.asarray(rng.random((2, 1, 7)) < 0.7).at[..., 0].set(True)
    perm = rng.permutation(7)
    out, _ = scaled_dot_product_attention(q, k, v, mask)
    out_p, _ = scaled_dot_product_attention(q, k[:, perm], v[:, perm], mask[..., perm])
    np.testing.assert_allclose(out_p, out, rtol=1e-5, atol=1e-6)
    mha = MultiHeadAttention(num_heads=4, qkv_features=8)
    x_kv = jnp.asarray(rng.normal(size=(2, 7, 6)), jnp.float32)
    params = mha.init(jax.random.PRNGKey(0), q, x_kv)
    f = jax.jit(lambda kv, m: mha.apply(params, q, kv, mask=m[:, None]))
    np.testing.assert_allclose(f(x_kv[:, perm], mask[..., perm]), f(x_kv, mask), rtol=1e-5, atol=1e-6)
    assert not np.allclose(f(x_kv[:, perm], mask), f(x_kv, mask))  # permuting keys alone does change it


def test_causal_mask_gradient_of_output_t_wrt_later_inputs_is_exactly_zero(rng):
    T, D = 6, 8
    mha = MultiHeadAttention(num_heads=2)
    x = jnp.asarray(rng.normal(size=(1, T, D)), jnp.float32)
    params = mha.init(jax.random.PRNGKey(0), x)
    jac = jax.jit(jax.jacrev(lambda x: mha.apply(params, x, mask=causal_mask(T)[None])))(x)[0, :, :, 0]  # [T, D, T, D]
    norms = np.asarray(jnp.sum(jnp.abs(jac), axis=(1, 3)))
    assert np.all(norms[np.triu_indices(T, k=1)] == 0.0)  # exactly zero, not just small
    assert np.all(norms[np.tril_indices(T)] > 0.0)
    no_mask = jax.jit(jax.jacrev(lambda x: mha.apply(params, x)))(x)[0, :, :, 0]
    assert float(jnp.sum(jnp.abs(no_mask[0, :, -1]))) > 0  # without the mask the future leaks in


def test_padding_mask_ignores_padded_keys_and_empty_rows_are_zero(rng):
    q, k, v = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in ((2, 1, 3, 4), (2, 1, 5, 4), (2, 1, 5, 4)))
    valid = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    out, _ = scaled_dot_product_attention(q, k, v, padding_mask(valid))
    out2, _ = scaled_dot_product_attention(q, k.at[0, :, 3:].set(50.0), v.at[0, :, 3:].set(-7.0), padding_mask(valid))
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_allclose(out[0], scaled_dot_product_attention(q[:1], k[:1, :, :3], v[:1, :, :3])[0][0], rtol=1e-6)
    none, w = scaled_dot_product_attention(q, k, v, jnp.zeros((1, 1, 1, 5), bool))
    assert np.all(np.isfinite(none)) and float(jnp.max(jnp.abs(none))) == 0.0 and float(jnp.sum(w)) == 0.0
    m = combine_masks(causal_mask(5)[None], padding_mask(valid))
    assert m.shape == (2, 1, 5, 5) and not bool(m[0, 0, 4, 3]) and bool(m[1, 0, 4, 3]) and not bool(m[1, 0, 0, 1])


def test_positional_encoding_matches_the_formula():
    max_len, d = 50, 10
    pe = np.asarray(sinusoidal_positional_encoding(max_len, d))
    for pos in range(max_len):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert abs(pe[pos, 2 * i] - math.sin(angle)) < 1e-6
            assert abs(pe[pos, 2 * i + 1] - math.cos(angle)) < 1e-6
    odd = np.asarray(sinusoidal_positional_encoding(7, 5))
    np.testing.assert_allclose(odd[:, 4], np.sin(np.arange(7) / 10000 ** (4 / 5)), atol=1e-6)
    x = jnp.ones((2, 9, d))
    layer = PositionalEncoding(max_len=max_len)
    np.testing.assert_allclose(layer.apply({}, x), np.broadcast_to(1.0 + pe[None, :9], (2, 9, d)), rtol=1e-6)
    learned = PositionalEncoding(max_len=12, kind="learned")
    assert learned.init(jax.random.PRNGKey(0), x)["params"]["table"].shape == (12, d)


def test_attention_weights_are_sown_and_dropout_is_keyed(rng):
    mha = MultiHeadAttention(num_heads=2, dropout_rate=0.5)
    x = jnp.asarray(rng.normal(size=(1, 4, 4)), jnp.float32)
    params = mha.init(jax.random.PRNGKey(0), x)
    _, inter = mha.apply(params, x, mask=causal_mask(4)[None], mutable=["intermediates"])
    w = inter["intermediates"]["attention_weights"][0]
    assert w.shape == (1, 2, 4, 4)
    np.testing.assert_allclose(jnp.sum(w, -1), np.ones((1, 2, 4)), rtol=1e-6)
    a = mha.apply(params, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    b = mha.apply(params, x, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(mha.apply(params, x), mha.apply(params, x, train=False))


def test_bad_input_errors():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ShapeError, match="exceeds the positional table.*max_len=8"):
        PositionalEncoding(max_len=8).apply({}, jnp.ones((1, 9, 4)))
    with pytest.raises(ShapeError, match="same head dimension d_k, got 4 and 3"):
        scaled_dot_product_attention(jnp.ones((1, 2, 4)), jnp.ones((1, 3, 3)), jnp.ones((1, 3, 4)))
    with pytest.raises(ShapeError, match="same length"):
        scaled_dot_product_attention(jnp.ones((1, 2, 4)), jnp.ones((1, 3, 4)), jnp.ones((1, 5, 4)))
    with pytest.raises(ShapeError, match="does not broadcast"):
        scaled_dot_product_attention(jnp.ones((1, 2, 4)), jnp.ones((1, 3, 4)), jnp.ones((1, 3, 4)), jnp.ones((1, 2, 4), bool))
    with pytest.raises(ConfigError, match="not divisible by num_heads=3"):
        MultiHeadAttention(num_heads=3).init(key, jnp.ones((1, 2, 8)))
    with pytest.raises(ConfigError, match="unknown positional encoding"):
        PositionalEncoding(kind="rotary").init(key, jnp.ones((1, 2, 4)))
    with pytest.raises(ShapeError, match="batches differ"):
        MultiHeadAttention(num_heads=2).init(key, jnp.ones((1, 2, 8)), jnp.ones((2, 2, 8)))
