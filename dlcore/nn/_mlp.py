"""Multilayer perceptron with optional batch/layer norm and dropout."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax

from dlcore.errors import ConfigError, unknown_name
from dlcore.nn._activations import PARAMETRIC_ACTIVATIONS, Activation, get_activation
from dlcore.nn._dropout import Dropout

NORMS = ("none", "batch", "layer")


class MLP(nn.Module):
    """``Dense -> [norm] -> activation -> dropout`` per hidden width, then a linear output layer.

    Attributes:
      widths: hidden widths, e.g. ``(100, 100)``.
      num_outputs: output size (classes for a classifier; logits, no softmax).
      activation: name (see :data:`dlcore.nn.ACTIVATIONS`, or ``"prelu"``/``"maxout"``) or callable.
      dropout_rate: float or traced scalar (vmappable in a sweep).
      norm: ``"none"``, ``"batch"`` (running averages in ``batch_stats``) or ``"layer"``.
      bn_momentum: EMA momentum of batch-norm statistics.

    Call: ``model.apply(variables, x_BxD, train=...)`` → logits ``[B, num_outputs]``.

    >>> import jax, jax.numpy as jnp
    >>> m = MLP(widths=(8,), num_outputs=3)
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((2, 5)), train=False)
    >>> m.apply(v, jnp.ones((2, 5)), train=False).shape
    (2, 3)
    """

    widths: Sequence[int] = (100, 100)
    num_outputs: int = 10
    activation: str | Callable = "relu"
    dropout_rate: float | jax.Array = 0.0
    norm: str = "none"
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x_BxD: jax.Array, train: bool) -> jax.Array:
        if self.norm not in NORMS:
            raise unknown_name("norm", self.norm, NORMS)
        if any(int(w) <= 0 for w in self.widths) or self.num_outputs <= 0:
            raise ConfigError(f"MLP widths and num_outputs must be positive, got {self.widths}, {self.num_outputs}")
        # Parametric activations (prelu, maxout) are modules with their own weights per layer.
        parametric = isinstance(self.activation, str) and self.activation in PARAMETRIC_ACTIVATIONS
        act = None if parametric else get_activation(self.activation)
        h = x_BxD.reshape((x_BxD.shape[0], -1))
        for i, width in enumerate(self.widths):
            h = nn.Dense(int(width), name=f"dense_{i}")(h)
            if self.norm == "batch":
                h = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum, name=f"bn_{i}")(h)
            elif self.norm == "layer":
                h = nn.LayerNorm(name=f"ln_{i}")(h)
            h = Activation(self.activation, name=f"act_{i}")(h) if parametric else act(h)
            self.sow("intermediates", f"act_{i}", h)  # for dlcore.diagnostics (no-op unless mutable)
            h = Dropout(self.dropout_rate, name=f"dropout_{i}")(h, train)
        return nn.Dense(self.num_outputs, name="head")(h)
