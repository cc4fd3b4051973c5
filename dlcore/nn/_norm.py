"""Normalization layers by name (batch, layer, group) and their position around the nonlinearity.

Batch norm (lecture 8): in training, normalize each feature with the mini-batch mean and variance,
``x̂ = (x − μ_B) / √(σ²_B + ε)``, then ``y = γ·x̂ + β``; keep running averages

    ``μ_running ← β_m·μ_running + (1 − β_m)·μ_B``,  ``Var_running ← β_m·Var_running + (1 − β_m)·σ²_B``

(``β_m``: the momentum hyperparameter, ``bn_momentum`` here) and use them in evaluation. By default
the batch variance is the biased one (divide by ``n``, the number of values per feature: ``B`` times
the spatial positions), for normalizing and for the running average (flax's convention).
``Norm(..., bn_unbiased_var=True)`` keeps PyTorch's convention instead: normalizing still uses the
biased ``σ²_B``, but the running average takes the unbiased ``σ²_B · n/(n − 1)``,

    ``Var_running ← β_m·Var_running + (1 − β_m)·σ²_B·n/(n − 1)``,

which is ``torch.nn.BatchNorm*d`` with ``momentum = 1 − β_m`` — use it to port a PyTorch model and
get its evaluation outputs (at batch 16 the two conventions differ by ~6% in the running variance).

Layer norm is the "transpose": statistics over the features of each example (no train/eval
difference). Group norm: over groups of channels (and all spatial positions) per example.
"""

from __future__ import annotations

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.errors import ConfigError, ShapeError, unknown_name
from dlcore.nn._activations import Activation, check_activation

NORM_NAMES = ("none", "batch", "layer", "group")
"""Valid ``norm`` names."""

POSITIONS = ("before", "after")
"""Where the norm goes relative to the nonlinearity: ``before`` (Ioffe & Szegedy; the lectures'
"after FC/conv, before the activation") or ``after`` it."""


def bn_running_update(running: jax.Array, batch_stat: jax.Array, momentum) -> jax.Array:
    """The lectures' running-average update ``β_m·running + (1 − β_m)·batch``.

    >>> round(float(bn_running_update(jnp.array(0.0), jnp.array(1.0), 0.9)), 6)
    0.1
    """
    return momentum * running + (1.0 - momentum) * batch_stat


def batch_stats(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-feature mean and biased variance over all axes but the last (batch and positions).

    Args:
      x: ``[B, ..., C]``.
    Returns:
      ``(mean_C, var_C)``.
    """
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes)
    return mean.reshape(x.shape[-1:]), var


def check_norm(name: str, features: int | None = None, num_groups: int = 8) -> None:
    """Raise a :class:`ConfigError` for an unknown name or a group count that does not divide ``features``."""
    if name not in NORM_NAMES:
        raise unknown_name("norm", name, NORM_NAMES)
    if name == "group" and features is not None and (num_groups <= 0 or features % num_groups):
        raise ConfigError(
            f"group norm with num_groups={num_groups} needs a channel count divisible by it, got {features} "
            f"channels; choose num_groups among {[g for g in range(1, features + 1) if features % g == 0]}"
        )


class Norm(nn.Module):
    """A normalization layer chosen by name.

    Attributes:
      kind: ``"none"``, ``"batch"``, ``"layer"`` or ``"group"``.
      bn_momentum: ``β_m`` of the batch-norm running averages.
      epsilon: added to the variance.
      num_groups: groups of group norm (must divide the channel count).
      bn_unbiased_var: batch norm's running variance averages the unbiased batch variance
        ``σ²_B·n/(n − 1)`` (PyTorch's convention) instead of the biased ``σ²_B`` (flax's, the default);
        normalization in training uses ``σ²_B`` either way.

    Call: ``norm(x_Bx...xC, train)`` → same shape. Batch norm keeps ``mean``/``var`` in the
    ``batch_stats`` collection: apply with ``mutable=["batch_stats"]`` when ``train=True``.

    >>> import jax
    >>> m = Norm("batch")
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((4, 3)), train=False)
    >>> sorted(v), v["batch_stats"]["bn"]["var"].tolist()
    (['batch_stats', 'params'], [1.0, 1.0, 1.0])
    """

    kind: str = "batch"
    bn_momentum: float = 0.9
    epsilon: float = 1e-5
    num_groups: int = 8
    bn_unbiased_var: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        check_norm(self.kind, x.shape[-1], self.num_groups)
        if self.kind == "none":
            return x
        if self.kind == "batch":
            bn = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=self.epsilon, name="bn")
            update = (self.bn_unbiased_var and train and not self.is_initializing()
                      and self.is_mutable_collection("batch_stats"))
            old_var = self.variables["batch_stats"]["bn"]["var"] if update else None
            y = bn(x)
            if update:
                n = math.prod(x.shape[:-1])
                if n < 2:
                    raise ShapeError(
                        f"bn_unbiased_var needs at least 2 values per feature to correct by n/(n-1), got input "
                        f"shape {tuple(x.shape)}; use a larger batch or bn_unbiased_var=False"
                    )
                _, var = batch_stats(x)
                unbiased = var * (n / (n - 1))
                bn.put_variable("batch_stats", "var", bn_running_update(old_var, unbiased, self.bn_momentum))
            return y
        if self.kind == "layer":
            return nn.LayerNorm(epsilon=self.epsilon, name="ln")(x)
        return nn.GroupNorm(num_groups=self.num_groups, epsilon=self.epsilon, name="gn")(x)


class NormAct(nn.Module):
    """Normalization and nonlinearity in a configurable order.

    Attributes:
      norm: a name in :data:`NORM_NAMES`.
      activation: a name (see :data:`dlcore.nn.ACTIVATIONS`, or ``"prelu"``) or callable.
      position: ``"before"`` — ``act(norm(z))`` — or ``"after"`` — ``norm(act(z))``.
      bn_momentum, num_groups, epsilon, bn_unbiased_var: passed to :class:`Norm`.

    >>> import jax
    >>> m = NormAct("layer", "relu", position="after")
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((2, 4)), train=False)
    >>> m.apply(v, jnp.array([[1.0, -1.0, 1.0, -1.0]]), train=False).round(3).tolist()
    [[1.0, -1.0, 1.0, -1.0]]
    """

    norm: str = "batch"
    activation: str | Callable = "relu"
    position: str = "before"
    bn_momentum: float = 0.9
    num_groups: int = 8
    epsilon: float = 1e-5
    bn_unbiased_var: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.position not in POSITIONS:
            raise unknown_name("norm position", self.position, POSITIONS)
        check_activation(self.activation)
        norm = Norm(self.norm, self.bn_momentum, self.epsilon, self.num_groups, self.bn_unbiased_var, name="norm")
        act = Activation(self.activation, name="act")
        if self.position == "before":
            return act(norm(x, train))
        return norm(act(x), train)
