"""Weight penalties on chosen parameter groups, and label smoothing.

The lectures' regularizers: ``R_L2(W) = Σ W²`` (prefers the spread-out ``[¼, ¼, ¼, ¼]`` over
``[1, 0, 0, 0]``: 0.25 vs 1), ``R_L1(W) = Σ |W|`` (indifferent there: 1 vs 1; drives weights to
exactly zero), elastic net ``Σ β·W² + |W|``. They are added to the data loss with a coefficient λ;
usually only kernels are penalised (not biases or normalization scales).
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from dlcore.errors import ConfigError


def _selected(params, group) -> list[jax.Array]:
    from dlcore.nn._transfer import param_mask  # local: dlcore.nn is heavier (flax)

    mask = param_mask(params, group)
    return [p for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask)) if m]


def l2_penalty(params, group="kernels") -> jax.Array:
    """``Σ w²`` over the parameters in ``group`` (see :data:`dlcore.nn.Group`; default kernels).

    Note: this is the squared norm (no ½); its gradient is ``2w``.

    >>> float(l2_penalty({"kernel": jnp.full((1, 4), 0.25)}))
    0.25
    """
    return sum((jnp.sum(jnp.square(p)) for p in _selected(params, group)), jnp.zeros((), jnp.float32))


def l1_penalty(params, group="kernels") -> jax.Array:
    """``Σ |w|`` over the parameters in ``group``.

    >>> float(l1_penalty({"kernel": jnp.full((1, 4), 0.25)}))
    1.0
    """
    return sum((jnp.sum(jnp.abs(p)) for p in _selected(params, group)), jnp.zeros((), jnp.float32))


def elastic_net_penalty(params, l1=1.0, l2=1.0, group="kernels") -> jax.Array:
    """``l1·Σ|w| + l2·Σw²`` over ``group``; the lectures' ``Σ β·W² + |W|`` is ``l1=1, l2=β``.

    >>> float(elastic_net_penalty({"kernel": jnp.array([[1.0, -2.0]])}, l1=1.0, l2=0.5))
    5.5
    """
    return l1 * l1_penalty(params, group) + l2 * l2_penalty(params, group)


def make_penalty(group="kernels", *, l1: float | None = None, l2: float | None = None) -> Callable:
    """A :class:`dlcore.train.Recipe` ``penalty``: ``(params, hparams) -> scalar``.

    The coefficients come from ``hparams["l1"]``/``hparams["l2"]`` when present (so they can be
    swept), else from the ``l1``/``l2`` arguments; a missing coefficient means no such term.

    Args:
      group: which parameters are penalised (see :data:`dlcore.nn.Group`), e.g. ``"kernels"`` or
        ``"^head/"``.
      l1, l2: default coefficients.

    >>> pen = make_penalty("all", l2=0.1)
    >>> float(pen({"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}, {}))
    0.6...
    """

    def penalty(params, hparams: Mapping) -> jax.Array:
        total = jnp.zeros((), jnp.float32)
        c1 = hparams.get("l1", l1)
        c2 = hparams.get("l2", l2)
        if c1 is not None:
            total = total + c1 * l1_penalty(params, group)
        if c2 is not None:
            total = total + c2 * l2_penalty(params, group)
        return total

    return penalty


def smooth_labels(labels_B: jax.Array, num_classes: int, smoothing=0.1) -> jax.Array:
    """Label-smoothed targets ``(1 − ε)·onehot(y) + ε/C`` (rows sum to 1).

    The same targets :func:`dlcore.losses.cross_entropy` builds with ``label_smoothing=ε``.

    Args:
      labels_B: integer labels ``[B]``.
      num_classes: ``C``.
      smoothing: ``ε`` in ``[0, 1]`` (may be traced).
    Returns:
      ``[B, C]`` float32 targets.

    >>> print(smooth_labels(jnp.array([1]), 4, 0.2))
    [[0.05 0.85 0.05 0.05]]
    """
    if isinstance(smoothing, (int, float)) and not 0.0 <= smoothing <= 1.0:
        raise ConfigError(f"label smoothing must be in [0, 1], got {smoothing}")
    eps = jnp.asarray(smoothing, jnp.float32)
    return jax.nn.one_hot(labels_B, num_classes, dtype=jnp.float32) * (1.0 - eps) + eps / num_classes
