"""Losses, metrics and recipes for sequence tasks (per-example values, as :class:`dlcore.train.Recipe` wants).

Label convention: integer targets ``y [B, T]``; a negative label marks a position that does not
count (padding), so variable-length targets need no extra mask array.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.errors import ConfigError, ShapeError, unknown_name
from dlcore.losses import cross_entropy
from dlcore.optim import optimizer_fn
from dlcore.train import Recipe, classification_loss, classification_metrics

TASK_KINDS = ("sequence", "classify", "regress")


def _check_seq(logits_BxTxV, labels_BxT) -> None:
    if logits_BxTxV.ndim != 3 or labels_BxT.shape != logits_BxTxV.shape[:2]:
        raise ShapeError(
            f"sequence loss needs logits [B, T, V] and labels [B, T]; got {logits_BxTxV.shape} and {labels_BxT.shape}"
        )


def token_cross_entropy(logits_BxTxV, labels_BxT, label_smoothing=0.0) -> jax.Array:
    """Per-example mean cross-entropy over the valid positions (``label >= 0``).

    Args:
      logits_BxTxV: per-position logits.
      labels_BxT: integer targets; negative = ignored.
      label_smoothing: ε of :func:`dlcore.losses.cross_entropy` (may be traced).
    Returns:
      ``[B]`` losses (0 for an example with no valid position).

    >>> float(token_cross_entropy(jnp.zeros((1, 2, 4)), jnp.array([[1, -1]]))[0])  # log 4
    1.386...
    """
    _check_seq(logits_BxTxV, labels_BxT)
    B, T, V = logits_BxTxV.shape
    valid = labels_BxT >= 0
    ce = cross_entropy(logits_BxTxV.reshape((B * T, V)), jnp.maximum(labels_BxT, 0).reshape(B * T), label_smoothing)
    ce = ce.reshape((B, T)) * valid
    return jnp.sum(ce, axis=1) / jnp.maximum(jnp.sum(valid, axis=1), 1)


def sequence_loss(outputs_BxTxV, batch, hparams) -> jax.Array:
    """Recipe loss for per-step outputs: :func:`token_cross_entropy` with ``hparams["label_smoothing"]``."""
    return token_cross_entropy(outputs_BxTxV, batch["y"], hparams.get("label_smoothing", 0.0))


def sequence_metrics(outputs_BxTxV, batch) -> dict[str, jax.Array]:
    """Per-example ``accuracy`` (fraction of valid positions right) and ``exact`` (all right).

    >>> m = sequence_metrics(jnp.eye(3)[None], {"y": jnp.array([[0, 1, 0]])})
    >>> round(float(m["accuracy"][0]), 3), float(m["exact"][0])
    (0.667, 0.0)
    """
    y = batch["y"]
    _check_seq(outputs_BxTxV, y)
    valid = y >= 0
    hit = (jnp.argmax(outputs_BxTxV, axis=-1) == y) & valid
    n = jnp.maximum(jnp.sum(valid, axis=1), 1)
    return {
        "accuracy": jnp.sum(hit, axis=1) / n,
        "exact": jnp.all(hit | ~valid, axis=1).astype(jnp.float32),
    }


def regression_loss(outputs_Bx1, batch, hparams) -> jax.Array:
    """Per-example squared error ``(ŷ − y)²`` for scalar targets ``y [B]`` (e.g. the adding problem)."""
    del hparams
    y = batch["y"]
    pred = outputs_Bx1.reshape(y.shape[0])
    return jnp.square(pred - y.astype(pred.dtype))


def regression_metrics(outputs_Bx1, batch) -> dict[str, jax.Array]:
    """Per-example ``mse`` (the same squared error as the loss; kept so eval reports it by name)."""
    return {"mse": regression_loss(outputs_Bx1, batch, {})}


def sequence_recipe(
    model: nn.Module,
    kind: str = "sequence",
    *,
    optimizer: str = "adam",
    clip_norm: float | None = 1.0,
    schedule=None,
    **optimizer_options,
) -> Recipe:
    """A :class:`dlcore.train.Recipe` for a sequence model, with gradient clipping on by default.

    Args:
      model: e.g. :class:`dlcore.nn.RNNModel` or :class:`dlcore.nn.TransformerLM`.
      kind: ``"sequence"`` (per-step labels ``[B, T]``: LM, copy task, translation),
        ``"classify"`` (one label per sequence) or ``"regress"`` (a scalar per sequence).
      optimizer: name for :func:`dlcore.optim.optimizer_fn`.
      clip_norm: clip gradients by global norm (the lectures' fix for exploding RNN gradients);
        ``None`` turns clipping off. A ``clip_norm`` hyperparameter overrides it per run.
      schedule: learning-rate schedule (e.g. ``get_schedule("transformer", d_model=64,
        warmup_steps=400)`` with ``learning_rate=1.0``).
      **optimizer_options: further static optimizer options.

    >>> from dlcore.nn import RNNModel
    >>> r = sequence_recipe(RNNModel(hidden_size=8, num_outputs=4, head="many_to_many", vocab_size=4))
    >>> r.loss is sequence_loss
    True
    """
    if kind not in TASK_KINDS:
        raise unknown_name("task kind", kind, TASK_KINDS)
    if clip_norm is not None:
        if not clip_norm > 0:
            raise ConfigError(f"clip_norm must be positive (or None for no clipping), got {clip_norm}")
        optimizer_options["clip_norm"] = clip_norm
    opt = optimizer_fn(optimizer, schedule, **optimizer_options)
    loss: Callable
    if kind == "sequence":
        loss, metrics = sequence_loss, sequence_metrics
    elif kind == "classify":
        loss, metrics = classification_loss, classification_metrics
    else:
        loss, metrics = regression_loss, regression_metrics
    return Recipe(model, opt, loss=loss, metrics=metrics)
