"""Recurrent networks: the lectures' vanilla RNN and LSTM cells, a GRU cell, and ``nn.scan`` wrappers.

Cells (Flax ``RNNCellBase`` subclasses, so ``flax.linen.RNN`` accepts them too), for an input
``x_t`` ``[B, D]`` and hidden size ``H`` (row-vector convention ``x @ W`` as in the lectures' NumPy
code, i.e. ``W_xh x_t`` written with ``W_xh`` stored as ``[D, H]``):

* :class:`SimpleRNNCell` — ``h_t = tanh(W_hh h_{t-1} + W_xh x_t + b)``.
* :class:`LSTMCell` — the lectures' gate equations with **one fused matmul** producing ``4H``
  pre-activations ``a = x W_x + h W_h + b`` split in the order ``i, f, o, g`` (as in the lectures'
  ``lstm_step_forward``)::

      i = σ(a_i)  f = σ(a_f)  o = σ(a_o)  g = tanh(a_g)
      c_t = f ⊙ c_{t-1} + i ⊙ g        h_t = o ⊙ tanh(c_t)

* :class:`GRUCell` — ``r = σ(x W_xr + h W_hr + b_r)``, ``z = σ(x W_xz + h W_hz + b_z)``,
  ``n = tanh(x W_xn + b_xn + r ⊙ (h W_hn + b_hn))``, ``h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}``
  (Cho et al. 2014 in the form PyTorch and Flax use: ``r`` gates ``h W_hn`` after the product);
  fused ``3H`` matmuls for the input and the hidden state.

Recurrent kernels start orthogonal (default) or as the identity (the lectures' "W = identity,
bias = 0" advice against vanishing gradients; Le et al.'s IRNN with ``activation="relu"``), one
``H × H`` block per gate: :func:`recurrent_initializer`.

Wrappers: :class:`Recurrent` runs one cell over time with ``nn.scan`` (masking padded steps, so the
carry at a padded step is the last valid one and both directions handle right-padding);
:class:`StackedRNN` stacks layers (optionally bidirectional, dropout between layers);
:class:`RNNModel` adds the heads of the lectures' picture — many-to-one (classify a sequence),
many-to-many (a label per step, e.g. a character LM) and one-to-many (a sequence from a vector).

Gradient clipping (the lectures' fix for exploding gradients) lives in the optimizer:
``dlcore.optim.optimizer_fn("adam", clip_norm=1.0)`` chains ``optax.clip_by_global_norm`` before
the update (``clip_norm`` may also be a swept hyperparameter); :func:`dlcore.tasks.sequence_recipe`
turns it on by default.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.errors import ConfigError, ShapeError, unknown_name
from dlcore.nn._activations import get_activation
from dlcore.nn._dropout import Dropout

RECURRENT_INITS = ("orthogonal", "identity", "lecun_normal")
CELLS = ("rnn", "lstm", "gru")
HEADS = ("many_to_one", "many_to_many", "one_to_many")


def recurrent_initializer(name: str | Callable = "orthogonal", num_gates: int = 1, scale: float = 1.0) -> Callable:
    """Initializer of a fused recurrent kernel ``[H, num_gates·H]``: one ``H × H`` block per gate.

    Args:
      name: ``"orthogonal"`` (each block a random orthogonal matrix: eigenvalues on the unit
        circle, so ``W^t`` neither vanishes nor explodes), ``"identity"`` (each block ``scale·I``,
        the lectures' advice / IRNN) or ``"lecun_normal"``; a callable initializer is returned as is.
      num_gates: blocks along the output axis (1 RNN, 4 LSTM, 3 GRU).
      scale: multiplies each block.
    Returns:
      ``init(key, shape, dtype) -> [H, num_gates·H]``.

    >>> import jax
    >>> w = recurrent_initializer("identity", num_gates=2)(jax.random.PRNGKey(0), (3, 6))
    >>> w[:, :3].tolist() == jnp.eye(3).tolist() and w[:, 3:].tolist() == jnp.eye(3).tolist()
    True
    """
    if callable(name):
        return name
    if name not in RECURRENT_INITS:
        raise unknown_name("recurrent_init", name, RECURRENT_INITS)

    def init(key, shape, dtype=jnp.float32):
        h, gh = shape
        if gh != num_gates * h:
            raise ShapeError(f"a fused recurrent kernel must be [H, {num_gates}*H], got {shape}")
        if name == "lecun_normal":
            return nn.initializers.lecun_normal()(key, shape, dtype) * scale
        if name == "identity":
            return jnp.tile(scale * jnp.eye(h, dtype=dtype), (1, num_gates))
        keys = jax.random.split(key, num_gates)
        blocks = [nn.initializers.orthogonal(scale)(k, (h, h), dtype) for k in keys]
        return jnp.concatenate(blocks, axis=1)

    return init


def _bias(b_N: jax.Array, like: jax.Array) -> jax.Array:
    # Explicit broadcast of a [N] bias against [..., N] (dlcore runs with rank promotion = "raise").
    return jnp.reshape(b_N, (1,) * (like.ndim - 1) + (-1,))


def _zeros_carry(batch_dims: tuple[int, ...], features: int, dtype) -> jax.Array:
    return jnp.zeros(batch_dims + (features,), dtype)


class LSTMCarry(NamedTuple):
    """The LSTM's recurrent state: cell ``c`` and hidden ``h``, each ``[B, H]``."""

    c: jax.Array
    h: jax.Array


def hidden_of(carry) -> jax.Array:
    """The hidden state ``h`` of a carry (``carry.h`` for the LSTM, the carry itself otherwise)."""
    if isinstance(carry, LSTMCarry):
        return carry.h
    if isinstance(carry, tuple):  # flax's (c, h) convention
        return carry[-1]
    return carry


class SimpleRNNCell(nn.RNNCellBase):
    """Vanilla RNN cell ``h_t = act(h_{t-1} W_hh + x_t W_xh + b)`` (the lectures' tanh RNN).

    Attributes:
      features: hidden size ``H``.
      activation: ``"tanh"`` (lectures) or any name of :data:`dlcore.nn.ACTIVATIONS`
        (``"relu"`` with ``recurrent_init="identity"`` is the IRNN).
      recurrent_init: see :func:`recurrent_initializer`.
      use_bias: the lectures' slide formula has no bias; default True (it costs nothing).

    Call: ``cell.apply(v, h_BxH, x_BxD) -> (h_BxH, h_BxH)`` (new carry, output).

    >>> import jax
    >>> cell = SimpleRNNCell(4)
    >>> h = cell.initialize_carry(None, (2, 3))
    >>> v = cell.init(jax.random.PRNGKey(0), h, jnp.ones((2, 3)))
    >>> sorted(v["params"]), cell.apply(v, h, jnp.ones((2, 3)))[0].shape
    (['W_hh', 'W_xh', 'bias'], (2, 4))
    """

    features: int
    activation: str | Callable = "tanh"
    recurrent_init: str | Callable = "orthogonal"
    kernel_init: Callable = nn.initializers.lecun_normal()
    use_bias: bool = True

    @nn.compact
    def __call__(self, carry, x_BxD):
        h = carry
        w_xh = self.param("W_xh", self.kernel_init, (x_BxD.shape[-1], self.features))
        w_hh = self.param("W_hh", recurrent_initializer(self.recurrent_init, 1), (self.features, self.features))
        a = x_BxD @ w_xh + h @ w_hh
        if self.use_bias:
            a = a + _bias(self.param("bias", nn.initializers.zeros_init(), (self.features,)), a)
        h = get_activation(self.activation)(a)
        return h, h

    @nn.nowrap
    def initialize_carry(self, rng, input_shape: tuple[int, ...]):
        """Zero hidden state ``[*batch, H]`` (``rng`` unused; kept for Flax's interface)."""
        del rng
        return _zeros_carry(tuple(input_shape[:-1]), self.features, jnp.float32)

    @property
    def num_feature_axes(self) -> int:
        return 1


class LSTMCell(nn.RNNCellBase):
    """LSTM cell from the lectures' equations, gates ``i, f, o, g`` from ONE fused ``4H`` matmul.

    Parameters ``W_x`` ``[D, 4H]``, ``W_h`` ``[H, 4H]``, ``b`` ``[4H]`` are laid out exactly as the
    lectures' ``lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)``, so weights can be copied in and
    out of that NumPy code.

    Attributes:
      features: hidden size ``H``.
      recurrent_init: init of each ``H × H`` block of ``W_h`` (see :func:`recurrent_initializer`).
      forget_bias: initial value of ``b_f`` (1.0 keeps the cell's memory open at the start,
        Jozefowicz et al. 2015; 0.0 is the lectures' plain zero bias).

    Call: ``cell.apply(v, LSTMCarry(c, h), x_BxD) -> (LSTMCarry(c', h'), h'_BxH)``.

    >>> import jax
    >>> cell = LSTMCell(4)
    >>> carry = cell.initialize_carry(None, (2, 3))
    >>> v = cell.init(jax.random.PRNGKey(0), carry, jnp.ones((2, 3)))
    >>> v["params"]["W_x"].shape, v["params"]["W_h"].shape, v["params"]["b"].shape
    ((3, 16), (4, 16), (16,))
    """

    features: int
    recurrent_init: str | Callable = "orthogonal"
    kernel_init: Callable = nn.initializers.lecun_normal()
    forget_bias: float = 1.0

    def _bias_init(self, key, shape, dtype=jnp.float32):
        del key
        h = self.features
        return jnp.zeros(shape, dtype).at[h : 2 * h].set(self.forget_bias)  # order i, f, o, g

    @nn.compact
    def __call__(self, carry: LSTMCarry, x_BxD):
        c, h = carry
        H = self.features
        w_x = self.param("W_x", self.kernel_init, (x_BxD.shape[-1], 4 * H))
        w_h = self.param("W_h", recurrent_initializer(self.recurrent_init, 4), (H, 4 * H))
        b = self.param("b", self._bias_init, (4 * H,))
        a = x_BxD @ w_x + h @ w_h + _bias(b, h)  # the one fused matmul (per operand) for all four gates
        a_i, a_f, a_o, a_g = jnp.split(a, 4, axis=-1)
        i, f, o = jax.nn.sigmoid(a_i), jax.nn.sigmoid(a_f), jax.nn.sigmoid(a_o)
        g = jnp.tanh(a_g)
        c = f * c + i * g  # the cell: an additive "highway" the gradient flows along
        h = o * jnp.tanh(c)
        return LSTMCarry(c, h), h

    @nn.nowrap
    def initialize_carry(self, rng, input_shape: tuple[int, ...]) -> LSTMCarry:
        """Zero ``LSTMCarry(c, h)``, each ``[*batch, H]`` (``rng`` unused)."""
        del rng
        z = _zeros_carry(tuple(input_shape[:-1]), self.features, jnp.float32)
        return LSTMCarry(z, z)

    @property
    def num_feature_axes(self) -> int:
        return 1


class GRUCell(nn.RNNCellBase):
    """GRU cell with fused ``3H`` matmuls (gate order ``r, z, n``).

    ``[r|z|n]_x = x W_x + b_x``, ``[r|z|n]_h = h W_h + b_h``; ``r = σ(r_x + r_h)``,
    ``z = σ(z_x + z_h)``, ``n = tanh(n_x + r ⊙ n_h)``, ``h' = (1 − z) ⊙ n + z ⊙ h``.

    Attributes:
      features: hidden size ``H``.
      recurrent_init: init of each ``H × H`` block of ``W_h``.

    >>> import jax
    >>> cell = GRUCell(4)
    >>> h = cell.initialize_carry(None, (2, 3))
    >>> v = cell.init(jax.random.PRNGKey(0), h, jnp.ones((2, 3)))
    >>> v["params"]["W_x"].shape, v["params"]["W_h"].shape
    ((3, 12), (4, 12))
    """

    features: int
    recurrent_init: str | Callable = "orthogonal"
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, carry, x_BxD):
        h = carry
        H = self.features
        w_x = self.param("W_x", self.kernel_init, (x_BxD.shape[-1], 3 * H))
        w_h = self.param("W_h", recurrent_initializer(self.recurrent_init, 3), (H, 3 * H))
        b_x = self.param("b_x", nn.initializers.zeros_init(), (3 * H,))
        b_h = self.param("b_h", nn.initializers.zeros_init(), (3 * H,))
        ax = x_BxD @ w_x + _bias(b_x, h)
        ah = h @ w_h + _bias(b_h, h)
        rx, zx, nx = jnp.split(ax, 3, axis=-1)
        rh, zh, nh = jnp.split(ah, 3, axis=-1)
        r = jax.nn.sigmoid(rx + rh)
        z = jax.nn.sigmoid(zx + zh)
        n = jnp.tanh(nx + r * nh)  # the reset gate scales the recurrent contribution only
        h = (1.0 - z) * n + z * h
        return h, h

    @nn.nowrap
    def initialize_carry(self, rng, input_shape: tuple[int, ...]):
        """Zero hidden state ``[*batch, H]`` (``rng`` unused)."""
        del rng
        return _zeros_carry(tuple(input_shape[:-1]), self.features, jnp.float32)

    @property
    def num_feature_axes(self) -> int:
        return 1


def make_cell(kind: str, features: int, recurrent_init: str | Callable = "orthogonal", **kwargs) -> nn.RNNCellBase:
    """A cell by kind: ``"rnn"`` (:class:`SimpleRNNCell`), ``"lstm"`` or ``"gru"``.

    ``kwargs`` go to the cell (e.g. ``activation="relu"``, ``forget_bias=0.0``, ``name=...``).

    >>> make_cell("gru", 8).features
    8
    """
    classes = {"rnn": SimpleRNNCell, "lstm": LSTMCell, "gru": GRUCell}
    if kind not in classes:
        raise unknown_name("cell", kind, CELLS)
    if int(features) <= 0:
        raise ConfigError(f"hidden size must be positive, got {features}")
    return classes[kind](features=int(features), recurrent_init=recurrent_init, **kwargs)


def _masked_step(cell, carry, inputs):
    x_t, m_t = inputs
    new_carry, y_t = cell(carry, x_t)
    keep = m_t[:, None]
    # A padded step leaves the carry as it was, so the final carry is the last valid one in either
    # direction (a reverse scan over right-padding starts from the initial carry).
    carry = jax.tree.map(lambda n, o: jnp.where(keep, n.astype(o.dtype), o), new_carry, carry)
    return carry, jnp.where(keep, y_t, jnp.zeros_like(y_t))


class Recurrent(nn.Module):
    """Run a cell over the time axis with ``nn.scan`` (parameters shared by all steps).

    Attributes:
      cell: an RNN cell (e.g. ``LSTMCell(32)``); its ``initialize_carry(None, shape)`` must work.
      reverse: process the sequence from the end (outputs stay in the original time order).
      unroll: steps unrolled per scan iteration (speed only; same numbers).

    Call: ``(carry, y_BxTxH) = Recurrent(cell).apply(v, x_BxTxD, mask_BxT=None, initial_carry=None)``.
    ``mask_BxT`` (bool, True = real step) marks padding: padded steps output zeros and do not change
    the carry, so ``carry`` is the state after the last real step.

    >>> import jax
    >>> r = Recurrent(GRUCell(5))
    >>> x = jnp.ones((2, 7, 3))
    >>> carry, y = r.apply(r.init(jax.random.PRNGKey(0), x), x)
    >>> carry.shape, y.shape
    ((2, 5), (2, 7, 5))
    """

    cell: nn.RNNCellBase
    reverse: bool = False
    unroll: int = 1

    @nn.compact
    def __call__(self, x_BxTxD, mask_BxT=None, initial_carry=None):
        if x_BxTxD.ndim != 3:
            raise ShapeError(f"Recurrent expects inputs [batch, time, features], got shape {x_BxTxD.shape}")
        B, T = x_BxTxD.shape[:2]
        if mask_BxT is None:
            mask_BxT = jnp.ones((B, T), bool)
        elif mask_BxT.shape != (B, T):
            raise ShapeError(f"mask must be [batch, time] = {(B, T)}, got {mask_BxT.shape}")
        carry = initial_carry
        if carry is None:
            carry = self.cell.initialize_carry(None, (B, x_BxTxD.shape[-1]))
            # The state is kept in the inputs' float type (float64 inputs -> float64 state).
            dtype = jnp.result_type(x_BxTxD.dtype, jnp.float32)
            carry = jax.tree.map(lambda c: c.astype(dtype), carry)
        scan = nn.scan(
            _masked_step,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=1,
            out_axes=1,
            reverse=self.reverse,
            unroll=self.unroll,
        )
        return scan(self.cell, carry, (x_BxTxD, mask_BxT.astype(bool)))


class StackedRNN(nn.Module):
    """Multi-layer (optionally bidirectional) RNN: layer ``l`` reads layer ``l−1``'s outputs.

    Attributes:
      hidden_size: ``H`` per direction.
      cell: ``"rnn"``, ``"lstm"`` or ``"gru"``.
      num_layers: stacked layers.
      bidirectional: add a reverse-time layer per level; outputs are ``[fw | bw]`` (``2H``).
      dropout_rate: dropout on the outputs of every layer but the last (training only).
      recurrent_init: see :func:`recurrent_initializer`.
      cell_kwargs: extra cell attributes, e.g. ``{"activation": "relu"}`` or ``{"forget_bias": 0.0}``.

    Call: ``apply(v, x_BxTxD, train=False, mask_BxT=None) -> (y_BxTxF, finals)`` where ``F`` is
    ``H`` or ``2H`` and ``finals`` lists each layer's final carry (a ``(fw, bw)`` pair when
    bidirectional).

    >>> import jax
    >>> m = StackedRNN(hidden_size=4, cell="lstm", num_layers=2, bidirectional=True)
    >>> x = jnp.ones((2, 5, 3))
    >>> y, finals = m.apply(m.init(jax.random.PRNGKey(0), x), x)
    >>> y.shape, len(finals)
    ((2, 5, 8), 2)
    """

    hidden_size: int = 32
    cell: str = "lstm"
    num_layers: int = 1
    bidirectional: bool = False
    dropout_rate: float | jax.Array = 0.0
    recurrent_init: str | Callable = "orthogonal"
    cell_kwargs: Any = None

    @nn.compact
    def __call__(self, x_BxTxD, train: bool = False, mask_BxT=None):
        if int(self.num_layers) < 1:
            raise ConfigError(f"num_layers must be >= 1, got {self.num_layers}")
        kw = dict(self.cell_kwargs or {})
        h = x_BxTxD
        finals = []
        for layer in range(int(self.num_layers)):
            # Cells are named here (created in this scope, Flax makes them children of this module).
            fw_cell = make_cell(self.cell, self.hidden_size, self.recurrent_init, name=f"layer_{layer}_fw", **kw)
            fw_carry, fw = Recurrent(fw_cell, name=f"scan_{layer}_fw")(h, mask_BxT)
            if self.bidirectional:
                bw_cell = make_cell(self.cell, self.hidden_size, self.recurrent_init, name=f"layer_{layer}_bw", **kw)
                bw_carry, bw = Recurrent(bw_cell, reverse=True, name=f"scan_{layer}_bw")(h, mask_BxT)
                h = jnp.concatenate([fw, bw], axis=-1)
                finals.append((fw_carry, bw_carry))
            else:
                h = fw
                finals.append(fw_carry)
            if layer < self.num_layers - 1:
                h = Dropout(self.dropout_rate, name=f"dropout_{layer}")(h, train)
        return h, finals


def final_hidden(finals) -> jax.Array:
    """The last layer's final hidden state ``[B, H]`` (``[B, 2H]`` = ``[fw | bw]`` if bidirectional)."""
    last = finals[-1]
    if isinstance(last, tuple) and not isinstance(last, LSTMCarry):
        return jnp.concatenate([hidden_of(last[0]), hidden_of(last[1])], axis=-1)
    return hidden_of(last)


class RNNModel(nn.Module):
    """A recurrent network with one of the lectures' heads.

    Inputs: token ids ``int[B, T]`` when ``vocab_size`` is set (one-hot encoded as in the lectures'
    "hello" example, or embedded with ``embed_dim``), a real sequence ``[B, T, D]``, or ``[B, T]``
    reals read as ``T`` steps of one feature (MNIST-1D as a sequence). For ``one_to_many`` the input
    is a vector ``[B, D]`` fed at each of ``length`` steps.

    Heads:
      ``many_to_one``: a linear layer on the final hidden state → ``[B, num_outputs]``
        (padding-aware through ``mask``).
      ``many_to_many``: a linear layer on every step's output → ``[B, T, num_outputs]``
        (with ``bidirectional=False`` step ``t`` sees only inputs ``≤ t``: a language model).
      ``one_to_many``: like many-to-many over ``length`` generated steps → ``[B, length, num_outputs]``.

    Attributes: see :class:`StackedRNN`, plus ``num_outputs``, ``head``, ``vocab_size``,
    ``embed_dim`` and ``length``.

    >>> import jax
    >>> m = RNNModel(hidden_size=8, num_outputs=4, cell="lstm", head="many_to_many", vocab_size=4)
    >>> x = jnp.array([[0, 1, 2, 2]])   # "hell" with vocabulary [h, e, l, o]
    >>> m.apply(m.init(jax.random.PRNGKey(0), x), x).shape
    (1, 4, 4)
    """

    hidden_size: int = 32
    num_outputs: int = 10
    cell: str = "lstm"
    num_layers: int = 1
    bidirectional: bool = False
    head: str = "many_to_one"
    vocab_size: int | None = None
    embed_dim: int | None = None
    length: int | None = None
    dropout_rate: float | jax.Array = 0.0
    recurrent_init: str | Callable = "orthogonal"
    cell_kwargs: Any = None

    def _inputs(self, x):
        if self.head == "one_to_many":
            if self.length is None or int(self.length) < 1:
                raise ConfigError("head 'one_to_many' needs length=<number of output steps> (>= 1)")
            v = x.reshape((x.shape[0], -1))
            v = v if jnp.issubdtype(v.dtype, jnp.floating) else v.astype(jnp.float32)
            # The vector is fed at every step (the decoder reads it as a constant input).
            return jnp.broadcast_to(v[:, None, :], (v.shape[0], int(self.length), v.shape[1]))
        if self.vocab_size is not None:
            if not jnp.issubdtype(x.dtype, jnp.integer) or x.ndim != 2:
                raise ShapeError(
                    f"with vocab_size set, inputs must be integer token ids [batch, time], got "
                    f"{x.dtype}{list(x.shape)}; pass vocab_size=None for real-valued sequences"
                )
            if self.embed_dim is not None:
                return nn.Embed(int(self.vocab_size), int(self.embed_dim), name="embed")(x)
            return jax.nn.one_hot(x, int(self.vocab_size), dtype=jnp.float32)
        x = x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)
        if x.ndim == 2:
            return x[..., None]
        if x.ndim == 3:
            return x
        raise ShapeError(f"RNN inputs must be [batch, time] or [batch, time, features], got {x.shape}")

    @nn.compact
    def __call__(self, x, train: bool = False, mask_BxT=None):
        if self.head not in HEADS:
            raise unknown_name("head", self.head, HEADS)
        if int(self.num_outputs) <= 0:
            raise ConfigError(f"num_outputs must be positive, got {self.num_outputs}")
        h = self._inputs(x)
        y, finals = StackedRNN(
            hidden_size=self.hidden_size, cell=self.cell, num_layers=self.num_layers,
            bidirectional=self.bidirectional, dropout_rate=self.dropout_rate,
            recurrent_init=self.recurrent_init, cell_kwargs=self.cell_kwargs, name="rnn",
        )(h, train, mask_BxT)
        out = nn.Dense(int(self.num_outputs), name="head")
        if self.head == "many_to_one":
            return out(final_hidden(finals))
        return out(y)
