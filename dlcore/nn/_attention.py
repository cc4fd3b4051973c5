"""Attention: scaled dot-product attention, masks, multi-head attention, sinusoidal positions.

The lectures' formula ``Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V``: each query takes a
softmax-weighted average of the values, weighted by how well it matches each key ("differentiable
soft indexing"); dividing by ``√d_k`` keeps the dot products of ``d_k``-dimensional vectors from
growing with ``d_k`` and saturating the softmax.

Masks are boolean, ``True`` = may attend, broadcastable to ``[..., T_q, T_k]``:
:func:`causal_mask` (position ``i`` sees only ``j ≤ i``: the decoder's "masked" attention),
:func:`padding_mask` (ignore padded keys), combined with :func:`combine_masks`. Masked scores are
replaced by the most negative finite float before the softmax, so their weights are exactly 0 and
so are the gradients through them (a row with no allowed key outputs zeros, not NaN).

Positional encoding (the lectures' formula)::

    PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
    PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))
"""

from __future__ import annotations


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlcore.errors import ConfigError, ShapeError, unknown_name
from dlcore.nn._dropout import Dropout

POSITIONAL_KINDS = ("sinusoidal", "learned")


def _broadcastable(mask_shape, target_shape) -> bool:
    if len(mask_shape) > len(target_shape):
        return False
    for m, t in zip(reversed(mask_shape), reversed(target_shape)):
        if m not in (1, t):
            return False
    return True


def scaled_dot_product_attention(q_xQxK, k_xSxK, v_xSxV, mask=None, dropout_fn=None):
    """``softmax(q kᵀ / √d_k) v`` over the last two axes, with an optional boolean mask.

    Args:
      q_xQxK: queries ``[..., T_q, d_k]``.
      k_xSxK: keys ``[..., T_k, d_k]`` (same leading axes as ``q``).
      v_xSxV: values ``[..., T_k, d_v]``.
      mask: bool, broadcastable to ``[..., T_q, T_k]``; ``True`` = may attend.
      dropout_fn: optional ``weights -> weights`` (attention dropout, training only).
    Returns:
      ``(out [..., T_q, d_v], weights [..., T_q, T_k])``; rows of ``weights`` sum to 1 (0 for a
      query with no allowed key).
    Raises:
      ShapeError: ``d_k`` of queries and keys differ, keys and values differ in length, or the
        mask does not broadcast.

    >>> q = jnp.ones((1, 2, 4)); k = jnp.ones((1, 3, 4)); v = jnp.arange(6.0).reshape(1, 3, 2)
    >>> out, w = scaled_dot_product_attention(q, k, v)
    >>> out.tolist()          # equal scores: the mean of the values
    [[[2.0, 3.0], [2.0, 3.0]]]
    """
    if q_xQxK.ndim < 2 or k_xSxK.ndim != q_xQxK.ndim or v_xSxV.ndim != q_xQxK.ndim:
        raise ShapeError(
            f"attention needs q, k, v of equal rank >= 2 ([..., T, d]); got {q_xQxK.shape}, "
            f"{k_xSxK.shape}, {v_xSxV.shape}"
        )
    if q_xQxK.shape[-1] != k_xSxK.shape[-1]:
        raise ShapeError(
            f"queries and keys must have the same head dimension d_k, got {q_xQxK.shape[-1]} and "
            f"{k_xSxK.shape[-1]}; project both to the same size"
        )
    if k_xSxK.shape[-2] != v_xSxV.shape[-2]:
        raise ShapeError(f"keys and values must have the same length, got {k_xSxK.shape[-2]} and {v_xSxV.shape[-2]}")
    d_k = q_xQxK.shape[-1]
    scores = jnp.einsum("...qd,...kd->...qk", q_xQxK, k_xSxK) / jnp.sqrt(jnp.asarray(d_k, q_xQxK.dtype))
    if mask is not None:
        mask = jnp.asarray(mask)
        if not _broadcastable(mask.shape, scores.shape):
            raise ShapeError(f"attention mask of shape {mask.shape} does not broadcast to the scores {scores.shape}")
        mask = jnp.broadcast_to(mask.astype(bool), scores.shape)
        scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores, axis=-1)
    if mask is not None:
        # A fully masked row would otherwise be a uniform average over forbidden keys.
        weights = jnp.where(mask, weights, jnp.zeros_like(weights))
    if dropout_fn is not None:
        weights = dropout_fn(weights)
    return jnp.einsum("...qk,...kd->...qd", weights, v_xSxV), weights


def causal_mask(length: int) -> jax.Array:
    """``bool[1, length, length]``: query ``i`` may attend to keys ``j ≤ i`` (lower triangle).

    >>> causal_mask(3)[0].astype(int).tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    return jnp.tril(jnp.ones((length, length), bool))[None]


def padding_mask(valid_BxT: jax.Array) -> jax.Array:
    """``bool[B, 1, 1, T]`` from ``valid_BxT`` (True/1 = real token): no query attends to padding.

    Broadcasts against multi-head scores ``[B, heads, T_q, T]``.

    >>> padding_mask(jnp.array([[1, 1, 0]])).shape
    (1, 1, 1, 3)
    """
    valid = jnp.asarray(valid_BxT).astype(bool)
    if valid.ndim != 2:
        raise ShapeError(f"padding_mask expects [batch, time], got {valid.shape}")
    return valid[:, None, None, :]


def combine_masks(*masks) -> jax.Array | None:
    """Logical AND of boolean masks (``None`` entries ignored), broadcast to a common rank.

    >>> combine_masks(causal_mask(2)[None], padding_mask(jnp.array([[1, 0]])))[0, 0].astype(int).tolist()
    [[1, 0], [1, 0]]
    """
    masks = [jnp.asarray(m).astype(bool) for m in masks if m is not None]
    if not masks:
        return None
    rank = max(m.ndim for m in masks)
    out = masks[0].reshape((1,) * (rank - masks[0].ndim) + masks[0].shape)
    for m in masks[1:]:
        out = jnp.logical_and(out, m.reshape((1,) * (rank - m.ndim) + m.shape))
    return out


def sinusoidal_positional_encoding(max_len: int, d_model: int) -> jax.Array:
    """The lectures' table ``PE[pos, 2i] = sin(pos/10000^(2i/d))``, ``PE[pos, 2i+1] = cos(...)``.

    Args:
      max_len: number of positions (rows).
      d_model: model width (columns); an odd width ends with a sine column.
    Returns:
      ``float32[max_len, d_model]``.

    >>> pe = sinusoidal_positional_encoding(4, 6)
    >>> pe.shape, float(pe[0, 1]), float(pe[1, 0]) == float(jnp.sin(1.0))
    ((4, 6), 1.0, True)
    """
    if int(max_len) <= 0 or int(d_model) <= 0:
        raise ConfigError(f"positional table needs max_len > 0 and d_model > 0, got {max_len}, {d_model}")
    # Built in float64 NumPy (a constant): exact angles for long tables, then cast once.
    pos = np.arange(max_len, dtype=np.float64)[:, None]
    two_i = np.arange(0, d_model, 2, dtype=np.float64)[None, :]
    angle = pos / np.power(10000.0, two_i / d_model)
    pe = np.zeros((max_len, d_model), np.float64)
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle[:, : d_model // 2])
    return jnp.asarray(pe, jnp.float32)


def check_length(length: int, max_len: int) -> None:
    """Raise :class:`ShapeError` when a sequence is longer than the positional table."""
    if length > max_len:
        raise ShapeError(
            f"sequence length {length} exceeds the positional table (max_len={max_len}); "
            f"raise max_len to at least {length} or feed shorter sequences"
        )


class PositionalEncoding(nn.Module):
    """Add position information to ``x_BxTxD``: the fixed sinusoidal table or a learned one.

    Attributes:
      max_len: longest sequence supported; a longer input raises :class:`ShapeError`.
      kind: ``"sinusoidal"`` (the lectures' fixed table, no parameters) or ``"learned"``.

    >>> import jax
    >>> pe = PositionalEncoding(max_len=8)
    >>> pe.apply({}, jnp.zeros((1, 3, 4)))[0, 1].tolist() == sinusoidal_positional_encoding(8, 4)[1].tolist()
    True
    """

    max_len: int = 512
    kind: str = "sinusoidal"

    @nn.compact
    def __call__(self, x_BxTxD):
        if self.kind not in POSITIONAL_KINDS:
            raise unknown_name("positional encoding", self.kind, POSITIONAL_KINDS)
        if x_BxTxD.ndim != 3:
            raise ShapeError(f"PositionalEncoding expects [batch, time, d_model], got {x_BxTxD.shape}")
        T, D = x_BxTxD.shape[1:]
        check_length(T, int(self.max_len))
        if self.kind == "sinusoidal":
            table = sinusoidal_positional_encoding(int(self.max_len), D)
        else:
            table = self.param("table", nn.initializers.normal(0.02), (int(self.max_len), D))
        return x_BxTxD + table[None, :T].astype(x_BxTxD.dtype)


class MultiHeadAttention(nn.Module):
    """Multi-head attention: ``num_heads`` parallel scaled dot-product attentions, then a projection.

    ``head_i = Attention(x_q W_qᵢ, x_kv W_kᵢ, x_kv W_vᵢ)``, output ``[head_1 | … | head_h] W_o``.

    Attributes:
      num_heads: number of heads ``h``.
      qkv_features: total width of queries/keys/values (default: the query input's width); must
        be divisible by ``num_heads`` (each head gets ``qkv_features / h``).
      out_features: output width (default: the query input's width).
      dropout_rate: dropout on the attention weights (training only).
      use_bias: biases in the projections.

    Call: ``apply(v, x_q_BxTxD, x_kv_BxSxE=None, mask=None, train=False)`` → ``[B, T, out]``;
    ``x_kv=None`` is self-attention; ``mask`` broadcastable to ``[B, h, T, S]`` (e.g.
    :func:`causal_mask` or :func:`padding_mask`). The weights ``[B, h, T, S]`` are sown as
    ``intermediates/attention_weights``.

    >>> import jax
    >>> mha = MultiHeadAttention(num_heads=2)
    >>> x = jnp.ones((1, 3, 4))
    >>> mha.apply(mha.init(jax.random.PRNGKey(0), x), x, mask=causal_mask(3)).shape
    (1, 3, 4)
    """

    num_heads: int = 4
    qkv_features: int | None = None
    out_features: int | None = None
    dropout_rate: float | jax.Array = 0.0
    use_bias: bool = True

    @nn.compact
    def __call__(self, x_q_BxTxD, x_kv_BxSxE=None, mask=None, train: bool = False):
        if x_kv_BxSxE is None:
            x_kv_BxSxE = x_q_BxTxD
        if x_q_BxTxD.ndim != 3 or x_kv_BxSxE.ndim != 3:
            raise ShapeError(
                f"MultiHeadAttention expects [batch, time, features] inputs, got {x_q_BxTxD.shape} and {x_kv_BxSxE.shape}"
            )
        if x_q_BxTxD.shape[0] != x_kv_BxSxE.shape[0]:
            raise ShapeError(f"query and key/value batches differ: {x_q_BxTxD.shape[0]} vs {x_kv_BxSxE.shape[0]}")
        h = int(self.num_heads)
        feats = int(self.qkv_features or x_q_BxTxD.shape[-1])
        out = int(self.out_features or x_q_BxTxD.shape[-1])
        if h <= 0:
            raise ConfigError(f"num_heads must be positive, got {h}")
        if feats % h:
            raise ConfigError(
                f"qkv_features={feats} is not divisible by num_heads={h} (each head needs an equal "
                f"share); choose num_heads dividing {feats} or set qkv_features to a multiple of {h}"
            )
        d_head = feats // h
        proj = lambda name: nn.DenseGeneral((h, d_head), use_bias=self.use_bias, name=name)  # noqa: E731
        q = proj("query")(x_q_BxTxD)  # [B, T, h, d]
        k = proj("key")(x_kv_BxSxE)
        v = proj("value")(x_kv_BxSxE)
        q, k, v = (jnp.swapaxes(a, 1, 2) for a in (q, k, v))  # [B, h, T, d]
        drop = Dropout(self.dropout_rate, name="attention_dropout")
        o, w = scaled_dot_product_attention(q, k, v, mask, dropout_fn=lambda a: drop(a, train))
        self.sow("intermediates", "attention_weights", w)
        o = jnp.swapaxes(o, 1, 2)  # [B, T, h, d]
        return nn.DenseGeneral(out, axis=(-2, -1), use_bias=self.use_bias, name="out")(o)
