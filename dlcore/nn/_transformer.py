"""Transformer blocks, a small encoder-decoder and a decoder-only language model.

An encoder block is ``self-attention → feed-forward``, each wrapped in a residual connection,
layer norm and (residual) dropout; a decoder block adds *masked* (causal) self-attention and
encoder-decoder (cross) attention. Two placements of the norm:

* post-norm (the original Transformer): ``x = LN(x + Drop(Sublayer(x)))``;
* pre-norm (``norm_first=True``, common today, trains without warmup more easily):
  ``x = x + Drop(Sublayer(LN(x)))`` with a final LN after the stack.

Training tricks from the lectures: Adam with the warmup schedule
``lr = d_model^-0.5 · min(step^-0.5, step · warmup^-1.5)`` —
``dlcore.optim.get_schedule("transformer", d_model=..., warmup_steps=...)`` with learning rate
1.0 — residual dropout (``dropout_rate``) and label smoothing (the ``label_smoothing``
hyperparameter of :func:`dlcore.tasks.sequence_loss`).

Sequence-to-sequence inputs are packed into one array so the model fits dlcore's
``model.apply(v, x, train=...)`` training step: ``x = [src | tgt_in]`` of shape
``[B, src_len + tgt_len]`` where ``tgt_in`` is the target shifted right behind a BOS token
(teacher forcing); see :func:`dlcore.tasks.translation_task`.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.errors import ConfigError, ShapeError
from dlcore.nn._activations import get_activation
from dlcore.nn._attention import MultiHeadAttention, PositionalEncoding, causal_mask, combine_masks
from dlcore.nn._dropout import Dropout


class FeedForward(nn.Module):
    """Position-wise ``Dense(d_ff) → activation → dropout → Dense(d_model)``.

    >>> import jax
    >>> ff = FeedForward(d_ff=8)
    >>> ff.apply(ff.init(jax.random.PRNGKey(0), jnp.ones((1, 2, 4))), jnp.ones((1, 2, 4))).shape
    (1, 2, 4)
    """

    d_ff: int = 128
    activation: str = "relu"
    dropout_rate: float | jax.Array = 0.0

    @nn.compact
    def __call__(self, x_BxTxD, train: bool = False):
        h = get_activation(self.activation)(nn.Dense(int(self.d_ff), name="dense_in")(x_BxTxD))
        h = Dropout(self.dropout_rate, name="dropout")(h, train)
        return nn.Dense(x_BxTxD.shape[-1], name="dense_out")(h)


def _check_heads(d_model: int, num_heads: int) -> None:
    if num_heads <= 0 or d_model % num_heads:
        raise ConfigError(
            f"d_model={d_model} must be divisible by num_heads={num_heads} (head dimension "
            f"d_model/num_heads); pick num_heads from the divisors of {d_model}"
        )


class _Residual(nn.Module):
    """``x + Drop(f(LN(x)))`` (pre-norm) or ``LN(x + Drop(f(x)))`` (post-norm)."""

    norm_first: bool
    dropout_rate: float | jax.Array

    @nn.compact
    def __call__(self, x, f, train: bool):
        norm = nn.LayerNorm(name="norm")
        drop = Dropout(self.dropout_rate, name="dropout")
        if self.norm_first:
            return x + drop(f(norm(x)), train)
        return norm(x + drop(f(x), train))


class EncoderBlock(nn.Module):
    """Self-attention and feed-forward sublayers with residuals (pre- or post-norm).

    Attributes:
      num_heads: attention heads (must divide the input width ``d_model``).
      d_ff: feed-forward width.
      dropout_rate: residual and attention dropout.
      norm_first: pre-norm (True) or the original post-norm (False).
      causal: mask self-attention causally (a decoder-only LM's block).

    Call: ``apply(v, x_BxTxD, mask=None, train=False) -> [B, T, D]``.

    >>> import jax
    >>> b = EncoderBlock(num_heads=2, d_ff=8)
    >>> x = jnp.ones((1, 3, 4))
    >>> b.apply(b.init(jax.random.PRNGKey(0), x), x).shape
    (1, 3, 4)
    """

    num_heads: int = 4
    d_ff: int = 128
    dropout_rate: float | jax.Array = 0.0
    norm_first: bool = True
    causal: bool = False

    @nn.compact
    def __call__(self, x_BxTxD, mask=None, train: bool = False):
        _check_heads(x_BxTxD.shape[-1], int(self.num_heads))
        if self.causal:
            mask = combine_masks(causal_mask(x_BxTxD.shape[1])[None], mask)
        attn = MultiHeadAttention(self.num_heads, dropout_rate=self.dropout_rate, name="self_attention")
        x = _Residual(self.norm_first, self.dropout_rate, name="attention_residual")(
            x_BxTxD, lambda h: attn(h, mask=mask, train=train), train
        )
        ff = FeedForward(self.d_ff, dropout_rate=self.dropout_rate, name="feed_forward")
        return _Residual(self.norm_first, self.dropout_rate, name="ff_residual")(x, lambda h: ff(h, train), train)


class DecoderBlock(nn.Module):
    """Masked self-attention, encoder-decoder attention and feed-forward (pre- or post-norm).

    Call: ``apply(v, y_BxTxD, memory_BxSxD, self_mask=None, memory_mask=None, train=False)``;
    the causal mask is always applied to self-attention (position ``i`` sees only ``≤ i``).

    >>> import jax
    >>> b = DecoderBlock(num_heads=2, d_ff=8)
    >>> y, mem = jnp.ones((1, 3, 4)), jnp.ones((1, 5, 4))
    >>> b.apply(b.init(jax.random.PRNGKey(0), y, mem), y, mem).shape
    (1, 3, 4)
    """

    num_heads: int = 4
    d_ff: int = 128
    dropout_rate: float | jax.Array = 0.0
    norm_first: bool = True

    @nn.compact
    def __call__(self, y_BxTxD, memory_BxSxD, self_mask=None, memory_mask=None, train: bool = False):
        _check_heads(y_BxTxD.shape[-1], int(self.num_heads))
        if memory_BxSxD.shape[-1] != y_BxTxD.shape[-1]:
            raise ShapeError(
                f"decoder width {y_BxTxD.shape[-1]} and encoder memory width {memory_BxSxD.shape[-1]} differ; "
                "use the same d_model for encoder and decoder"
            )
        mask = combine_masks(causal_mask(y_BxTxD.shape[1])[None], self_mask)
        self_attn = MultiHeadAttention(self.num_heads, dropout_rate=self.dropout_rate, name="self_attention")
        cross = MultiHeadAttention(self.num_heads, dropout_rate=self.dropout_rate, name="cross_attention")
        ff = FeedForward(self.d_ff, dropout_rate=self.dropout_rate, name="feed_forward")
        y = _Residual(self.norm_first, self.dropout_rate, name="self_residual")(
            y_BxTxD, lambda h: self_attn(h, mask=mask, train=train), train
        )
        y = _Residual(self.norm_first, self.dropout_rate, name="cross_residual")(
            y, lambda h: cross(h, memory_BxSxD, mask=memory_mask, train=train), train
        )
        return _Residual(self.norm_first, self.dropout_rate, name="ff_residual")(y, lambda h: ff(h, train), train)


class _Embed(nn.Module):
    """Token embedding × √d_model + positional encoding + dropout (the paper's input layer)."""

    vocab_size: int
    d_model: int
    max_len: int
    positional: str
    dropout_rate: float | jax.Array

    @nn.compact
    def __call__(self, tokens_BxT, train: bool):
        if tokens_BxT.ndim != 2 or not jnp.issubdtype(tokens_BxT.dtype, jnp.integer):
            raise ShapeError(f"expected integer token ids [batch, time], got {tokens_BxT.dtype}{list(tokens_BxT.shape)}")
        e = nn.Embed(int(self.vocab_size), int(self.d_model), name="tokens")(tokens_BxT) * math.sqrt(self.d_model)
        e = PositionalEncoding(int(self.max_len), self.positional, name="positions")(e)
        return Dropout(self.dropout_rate, name="dropout")(e, train)


class TransformerLM(nn.Module):
    """Decoder-only (GPT-style) language model: causal encoder blocks, logits per position.

    Attributes:
      vocab_size: tokens (the output has ``vocab_size`` logits per position).
      d_model, num_heads, num_layers, d_ff: sizes (``num_heads`` must divide ``d_model``).
      max_len: positional table length; longer inputs raise :class:`ShapeError`.
      dropout_rate: residual/attention/embedding dropout.
      norm_first: pre-norm blocks (with a final LayerNorm) or post-norm.
      positional: ``"sinusoidal"`` (lectures) or ``"learned"``.

    Call: ``apply(v, tokens_BxT, train=False) -> logits [B, T, vocab]``; position ``t``'s logits
    depend only on tokens ``≤ t``.

    >>> import jax
    >>> lm = TransformerLM(vocab_size=5, d_model=8, num_heads=2, num_layers=1, d_ff=16, max_len=6)
    >>> t = jnp.array([[0, 1, 2, 2]])
    >>> lm.apply(lm.init(jax.random.PRNGKey(0), t), t).shape
    (1, 4, 5)
    """

    vocab_size: int = 64
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    d_ff: int = 128
    max_len: int = 256
    dropout_rate: float | jax.Array = 0.0
    norm_first: bool = True
    positional: str = "sinusoidal"

    @nn.compact
    def __call__(self, tokens_BxT, train: bool = False):
        _check_heads(int(self.d_model), int(self.num_heads))
        h = _Embed(self.vocab_size, self.d_model, self.max_len, self.positional, self.dropout_rate, name="embed")(
            tokens_BxT, train
        )
        for i in range(int(self.num_layers)):
            h = EncoderBlock(
                self.num_heads, self.d_ff, self.dropout_rate, self.norm_first, causal=True, name=f"block_{i}"
            )(h, None, train)
        if self.norm_first:
            h = nn.LayerNorm(name="final_norm")(h)
        return nn.Dense(int(self.vocab_size), name="logits")(h)


class Seq2SeqTransformer(nn.Module):
    """A small encoder-decoder Transformer (the lectures' translation architecture).

    Inputs are packed as ``x = [src | tgt_in]`` (``[B, src_len + T]`` int32): the first
    ``src_len`` tokens are encoded; the rest are the decoder's inputs (target shifted right behind
    BOS). Source and target share one vocabulary and embedding table.

    Attributes:
      vocab_size, src_len: vocabulary and source length (static).
      d_model, num_heads, num_layers (each side), d_ff, max_len, dropout_rate, norm_first,
      positional: as in :class:`TransformerLM`.
      pad_id: source tokens equal to it are masked out of attention (``None``: no padding).

    Call: ``apply(v, x, train=False) -> logits [B, T, vocab]``; also :meth:`encode` and
    :meth:`decode` (via ``apply(..., method=...)``) for :func:`greedy_decode`.

    >>> import jax
    >>> m = Seq2SeqTransformer(vocab_size=6, src_len=3, d_model=8, num_heads=2, num_layers=1, d_ff=16, max_len=8)
    >>> x = jnp.array([[2, 3, 4, 1, 4, 3]])   # src = 2 3 4, tgt_in = BOS 4 3
    >>> m.apply(m.init(jax.random.PRNGKey(0), x), x).shape
    (1, 3, 6)
    """

    vocab_size: int = 16
    src_len: int = 8
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    d_ff: int = 128
    max_len: int = 64
    dropout_rate: float | jax.Array = 0.0
    norm_first: bool = True
    positional: str = "sinusoidal"
    pad_id: int | None = None

    def setup(self):
        _check_heads(int(self.d_model), int(self.num_heads))
        self.embed = _Embed(self.vocab_size, self.d_model, self.max_len, self.positional, self.dropout_rate)
        self.encoder = [
            EncoderBlock(self.num_heads, self.d_ff, self.dropout_rate, self.norm_first) for _ in range(int(self.num_layers))
        ]
        self.decoder = [
            DecoderBlock(self.num_heads, self.d_ff, self.dropout_rate, self.norm_first) for _ in range(int(self.num_layers))
        ]
        if self.norm_first:
            self.encoder_norm = nn.LayerNorm()
            self.decoder_norm = nn.LayerNorm()
        self.logits = nn.Dense(int(self.vocab_size))

    def _src_mask(self, src_BxS):
        if self.pad_id is None:
            return None
        return (src_BxS != self.pad_id)[:, None, None, :]

    def encode(self, src_BxS, train: bool = False):
        """Encoder memory ``[B, S, d_model]`` of source tokens ``[B, S]``."""
        mask = self._src_mask(src_BxS)
        h = self.embed(src_BxS, train)
        for block in self.encoder:
            h = block(h, mask, train)
        return self.encoder_norm(h) if self.norm_first else h

    def decode(self, memory_BxSxD, src_BxS, tgt_in_BxT, train: bool = False):
        """Logits ``[B, T, vocab]`` for decoder inputs ``[B, T]`` given the encoder memory."""
        mem_mask = self._src_mask(src_BxS)
        h = self.embed(tgt_in_BxT, train)
        for block in self.decoder:
            h = block(h, memory_BxSxD, None, mem_mask, train)
        if self.norm_first:
            h = self.decoder_norm(h)
        return self.logits(h)

    def __call__(self, x_BxL, train: bool = False):
        S = int(self.src_len)
        if x_BxL.ndim != 2 or x_BxL.shape[1] <= S:
            raise ShapeError(
                f"Seq2SeqTransformer expects packed tokens [batch, src_len + tgt_len] with src_len={S} "
                f"and tgt_len >= 1, got shape {x_BxL.shape}"
            )
        src, tgt_in = x_BxL[:, :S], x_BxL[:, S:]
        return self.decode(self.encode(src, train), src, tgt_in, train)


def greedy_decode(model: Seq2SeqTransformer, variables, src_BxS, length: int, bos_id: int) -> jax.Array:
    """Decode ``length`` tokens greedily (arg-max), feeding each prediction back in; jittable.

    The decoder runs on a fixed buffer ``[BOS, y_1, …]`` each step (causal masking makes the
    unfilled tail irrelevant), so shapes stay static under ``jit``.

    Args:
      model: a :class:`Seq2SeqTransformer`.
      variables: its variables.
      src_BxS: source tokens.
      length: tokens to generate.
      bos_id: the start token.
    Returns:
      ``int32[B, length]``.
    """
    memory = model.apply(variables, src_BxS, method=model.encode)
    B = src_BxS.shape[0]
    buf = jnp.full((B, length), bos_id, jnp.int32)

    def step(buf, t):
        logits = model.apply(variables, memory, src_BxS, buf, method=model.decode)
        nxt = jnp.argmax(logits[:, t], axis=-1).astype(jnp.int32)
        # Write prediction t into decoder input t+1 (the last one has nowhere to go).
        buf = jnp.where(t + 1 < length, buf.at[:, jnp.minimum(t + 1, length - 1)].set(nxt), buf)
        return buf, nxt

    _, out = jax.lax.scan(step, buf, jnp.arange(length))
    return out.T
