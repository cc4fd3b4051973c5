"""The MNIST-1D paper's baselines: logistic regression, residual MLP, CNN and bidirectional GRU.

Greydanus (2020), "Scaling down deep learning" (github.com/greydanus/mnist1d, ``models.py``): all
four are trained with Adam 1e-2, batch 100, 6000 steps on the 4,000 raw (unstandardized) training
examples; published test accuracies 32% / 68% / 94% / 91%, and 32% / 68% / 56% / 57% when the 40
positions are shuffled by one fixed permutation (:class:`PermuteInputs`,
``dlcore.data.position_permutation``). Parameter counts match the reference: 410, 15,210, 5,210
and 5,134. Initializations are Flax's (LeCun normal kernels, zero biases, orthogonal recurrent
blocks), not PyTorch's uniform ones.

``ConvBase1D``: three 1-D convs with 25 channels — kernel 5, 3, 3, stride 2, padding 1 — and ReLU, then a linear
classifier on the flattened features: lengths ``40 → 19 → 10 → 5``, ``5 · 25 = 125 → 10``;
5,210 parameters. The paper reports ~94% test accuracy (this machine's measurement: 0.918 after
6000 Adam steps, 1 seed). NWC (channels last) ran ~15% faster than NCW on CPU here.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore import random as drandom
from dlcore.errors import ConfigError, ShapeError
from dlcore.models._common import ConvNormAct, check_block_config, check_positive, flatten
from dlcore.nn._conv_utils import chain_output_size
from dlcore.nn._dropout import Dropout
from dlcore.nn._activations import get_activation
from dlcore.nn._init import InitSpec, init_kwargs
from dlcore.nn._attention import sinusoidal_positional_encoding
from dlcore.nn._rnn import StackedRNN
from dlcore.nn._transformer import EncoderBlock


class ConvBase1D(nn.Module):
    """MNIST-1D's ConvBase: ``[B, L]`` (or ``[B, L, C]``) sequences → logits ``[B, num_classes]``.

    Attributes:
      num_classes: 10.
      channels: 25 per conv.
      kernel_sizes: ``(5, 3, 3)``; one conv each.
      strides: 2.
      padding: 1.
      norm, activation, dropout_rate (before the linear layer), kernel_init.

    >>> import jax, jax.numpy as jnp
    >>> from dlcore.models import count_params
    >>> count_params(ConvBase1D(), (1, 40))
    5210
    """

    num_classes: int = 10
    channels: int = 25
    kernel_sizes: Sequence[int] = (5, 3, 3)
    strides: int = 2
    padding: int = 1
    norm: str = "none"
    activation: str | Callable = "relu"
    dropout_rate: float | jax.Array = 0.0
    bn_momentum: float = 0.9
    kernel_init: InitSpec | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if x.ndim == 2:
            x = x[..., None]  # [B, L] → [B, L, 1]: a single input channel, NWC
        if x.ndim != 3:
            raise ShapeError(f"ConvBase1D expects [B, L] or [B, L, C] sequences, got shape {tuple(x.shape)}")
        check_block_config(self.norm, self.activation)
        check_positive("ConvBase1D", channels=self.channels, kernel_sizes=tuple(self.kernel_sizes),
                       strides=self.strides, num_classes=self.num_classes)
        if self.padding < 0:
            raise ConfigError(f"ConvBase1D: padding must be ≥ 0, got {self.padding}")
        chain_output_size(x.shape[1], [(k, self.strides, self.padding) for k in self.kernel_sizes],
                          what="ConvBase1D (strided 1-D convs)")
        h = x
        for i, k in enumerate(self.kernel_sizes):
            h = ConvNormAct(self.channels, k, self.strides, self.padding, norm=self.norm, activation=self.activation,
                            bn_momentum=self.bn_momentum, kernel_init=self.kernel_init, name=f"conv{i + 1}")(h, train)
        h = Dropout(self.dropout_rate)(flatten(h), train)
        return nn.Dense(self.num_classes, name="head")(h)


class LinearClassifier(nn.Module):
    """Logistic (softmax) regression: flattened inputs ``[B, ...]`` → logits ``[B, num_classes]``.

    One dense layer; trained with the default cross-entropy it is multinomial logistic regression
    (the MNIST-1D paper's ``LinearBase``, 40·10 + 10 = 410 parameters).

    >>> from dlcore.models import count_params
    >>> count_params(LinearClassifier(), (1, 40))
    410
    """

    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train
        check_positive("LinearClassifier", num_classes=self.num_classes)
        return nn.Dense(self.num_classes, name="head")(flatten(x))


class MLPBase1D(nn.Module):
    """The MNIST-1D paper's MLP: ``h = relu(W₁x)``, ``h = h + relu(W₂h)`` (a residual layer), ``W₃h``.

    ``[B, L]`` → logits ``[B, num_classes]``; 40-100-100-10 has 15,210 parameters.

    >>> from dlcore.models import count_params
    >>> count_params(MLPBase1D(), (1, 40))
    15210
    """

    num_classes: int = 10
    hidden_size: int = 100

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train
        check_positive("MLPBase1D", num_classes=self.num_classes, hidden_size=self.hidden_size)
        h = nn.relu(nn.Dense(self.hidden_size, name="linear1")(flatten(x)))
        h = h + nn.relu(nn.Dense(self.hidden_size, name="linear2")(h))
        return nn.Dense(self.num_classes, name="linear3")(h)


class GRUBase1D(nn.Module):
    """The MNIST-1D paper's GRU: a bidirectional GRU (hidden 6) read at **every** step, then linear.

    ``[B, T]`` (``T`` steps of one feature) → GRU outputs ``[B, T, 2H]`` → flattened ``[B, T·2H]``
    → logits ``[B, num_classes]``. With ``T = 40``, ``H = 6``: 2 × 162 GRU parameters (input and
    recurrent biases, as PyTorch's ``nn.GRU``) + 480·10 + 10 = 5,134 parameters.

    >>> from dlcore.models import count_params
    >>> count_params(GRUBase1D(), (1, 40))
    5134
    """

    num_classes: int = 10
    hidden_size: int = 6
    bidirectional: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        check_positive("GRUBase1D", num_classes=self.num_classes, hidden_size=self.hidden_size)
        if x.ndim == 2:
            x = x[..., None]  # [B, T] → [B, T, 1]: one feature per step
        if x.ndim != 3:
            raise ShapeError(f"GRUBase1D expects [B, T] or [B, T, D] sequences, got shape {tuple(x.shape)}")
        y, _ = StackedRNN(hidden_size=self.hidden_size, cell="gru", bidirectional=self.bidirectional,
                          name="gru")(x, train)
        return nn.Dense(self.num_classes, name="head")(flatten(y))


class DeepMLP(nn.Module):
    """A deep MLP of equal-width layers, plain or residual: the lectures' depth-vs-skip experiment.

    ``h = act(W₀x)``, then ``depth`` layers ``h = act(Wₗh)`` (plain) or ``h = h + act(Wₗh)``
    (``residual=True``: each layer adds to an identity path, so the gradient reaches the first
    layers undiminished), then a linear head. ``[B, ...]`` → logits ``[B, num_classes]``;
    ``D·w + w + depth·(w² + w) + w·C + C`` parameters. ``kernel_init`` initializes the stem and
    hidden kernels: a name of ``dlcore.nn.INITIALIZERS`` or ``"normal:STD"`` (``N(0, STD²)``, the
    lectures' ``N(0, 0.01²)`` and ``N(0, 1)``); the head keeps Flax's default.

    >>> from dlcore.models import count_params
    >>> count_params(DeepMLP(width=8, depth=3), (1, 40)) == 40 * 8 + 8 + 3 * (64 + 8) + 8 * 10 + 10
    True
    """

    num_classes: int = 10
    width: int = 64
    depth: int = 8
    residual: bool = False
    activation: str | Callable = "relu"
    kernel_init: str = "lecun_normal"

    def _init(self):
        spec = self.kernel_init
        if isinstance(spec, str) and spec.startswith("normal:"):
            try:
                std = float(spec.split(":", 1)[1])
            except ValueError:
                raise ConfigError(f"DeepMLP: kernel_init {spec!r} must be 'normal:STD' with a number STD") from None
            spec = ("normal", {"stddev": std})
        return init_kwargs(spec)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train
        check_positive("DeepMLP", num_classes=self.num_classes, width=self.width)
        if int(self.depth) < 0:
            raise ConfigError(f"DeepMLP: depth must be ≥ 0, got {self.depth}")
        act = get_activation(self.activation)
        kw = self._init()
        h = act(nn.Dense(self.width, name="stem", **kw)(flatten(x)))
        for i in range(int(self.depth)):
            z = act(nn.Dense(self.width, name=f"layer{i + 1}", **kw)(h))
            h = h + z if self.residual else z
        return nn.Dense(self.num_classes, name="head")(h)


class SequenceTransformer1D(nn.Module):
    """A Transformer encoder classifier of ``[B, T]`` sequences (one feature per step, e.g. MNIST-1D).

    Each step's value is embedded linearly to ``d_model`` and added to the sinusoidal positional
    encoding; ``num_layers`` :class:`dlcore.nn.EncoderBlock` s follow (post-norm as in the original
    Transformer, or pre-norm with ``norm_first=True`` and a final LayerNorm); the mean over steps
    feeds a linear head → logits ``[B, num_classes]``.

    >>> import jax, jax.numpy as jnp
    >>> m = SequenceTransformer1D(d_model=8, num_heads=2, d_ff=16, num_layers=2)
    >>> x = jnp.ones((3, 40))
    >>> m.apply(m.init(jax.random.PRNGKey(0), x), x).shape
    (3, 10)
    """

    num_classes: int = 10
    d_model: int = 32
    num_heads: int = 4
    d_ff: int = 64
    num_layers: int = 4
    norm_first: bool = False
    dropout_rate: float | jax.Array = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        check_positive("SequenceTransformer1D", num_classes=self.num_classes, d_model=self.d_model,
                       num_layers=self.num_layers)
        if x.ndim == 2:
            x = x[..., None]  # [B, T] → [B, T, 1]
        if x.ndim != 3:
            raise ShapeError(f"SequenceTransformer1D expects [B, T] or [B, T, D], got shape {tuple(x.shape)}")
        h = nn.Dense(self.d_model, name="embed")(x)
        h = h + sinusoidal_positional_encoding(x.shape[1], self.d_model)[None].astype(h.dtype)
        for i in range(int(self.num_layers)):
            h = EncoderBlock(num_heads=self.num_heads, d_ff=self.d_ff, dropout_rate=self.dropout_rate,
                             norm_first=self.norm_first, name=f"block{i + 1}")(h, train=train)
        if self.norm_first:
            h = nn.LayerNorm(name="final_norm")(h)  # pre-norm leaves the residual stream unnormalized
        return nn.Dense(self.num_classes, name="head")(jnp.mean(h, axis=1))


class PermuteInputs(nn.Module):
    """``model(x[:, perm])``: one fixed reordering of the input positions (axis 1) before ``model``.

    ``perm = permutation(key(seed, "permute"), L)`` — the permutation of
    ``dlcore.data.position_permutation(seed, L)``, so this equals training ``model`` on data loaded
    with ``load_dataset(..., permute_seed=seed)``; as a module it lets a study sweep "shuffled or
    not" while all its points share one dataset.

    >>> import jax, jax.numpy as jnp
    >>> m = PermuteInputs(LinearClassifier(2), seed=0)
    >>> x = jnp.array([[1.0, 2.0, 3.0]])
    >>> v = m.init(jax.random.PRNGKey(0), x)
    >>> perm = jax.random.permutation(drandom.key(0, "permute"), 3)
    >>> bool(jnp.allclose(m.apply(v, x), LinearClassifier(2).apply({"params": v["params"]["model"]}, x[:, perm])))
    True
    """

    model: nn.Module
    seed: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if x.ndim < 2:
            raise ShapeError(f"PermuteInputs needs inputs [B, L, ...] (positions on axis 1), got {tuple(x.shape)}")
        perm = jax.random.permutation(drandom.key(int(self.seed), "permute"), x.shape[1])
        return self.model(x[:, perm], train)
