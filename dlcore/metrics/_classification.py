"""Classification metrics (jittable; masks for padded batches)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dlcore.errors import ConfigError


def correct(logits_BxC: jax.Array, labels_B: jax.Array) -> jax.Array:
    """``[B]`` float 1.0 where ``argmax(logits) == label``."""
    return (jnp.argmax(logits_BxC, axis=-1) == labels_B).astype(jnp.float32)


def margin(logits_BxC: jax.Array, labels_B: jax.Array) -> jax.Array:
    """Per-example classification margin ``s_y − max_{j≠y} s_j`` ``[B]`` (> 0 iff correct, ties aside).

    The hinge loss is zero once it reaches 1; cross-entropy keeps increasing it.

    >>> import jax.numpy as jnp
    >>> margin(jnp.array([[3.0, 1.0, 2.5], [0.0, 2.0, 1.0]]), jnp.array([0, 0])).tolist()
    [0.5, -2.0]
    """
    onehot = jax.nn.one_hot(labels_B, logits_BxC.shape[-1], dtype=bool)
    s_y = jnp.sum(jnp.where(onehot, logits_BxC, 0.0), axis=-1)
    return s_y - jnp.max(jnp.where(onehot, -jnp.inf, logits_BxC), axis=-1)


def accuracy(logits_BxC: jax.Array, labels_B: jax.Array, mask_B: jax.Array | None = None) -> jax.Array:
    """Fraction of (unmasked) examples whose arg-max logit is the label.

    >>> import jax.numpy as jnp
    >>> float(accuracy(jnp.array([[0., 1.], [1., 0.]]), jnp.array([1, 1])))
    0.5
    """
    c = correct(logits_BxC, labels_B)
    if mask_B is None:
        return jnp.mean(c)
    m = mask_B.astype(jnp.float32)
    return jnp.sum(c * m) / jnp.maximum(jnp.sum(m), 1.0)


def _weights(mask_B, n: int, dtype=jnp.float32) -> jax.Array:
    return jnp.ones((n,), dtype) if mask_B is None else jnp.asarray(mask_B).astype(dtype)


def top_k_accuracy(
    logits_BxC: jax.Array, labels_B: jax.Array, k: int = 5, mask_B: jax.Array | None = None
) -> jax.Array:
    """Fraction of (unmasked) examples whose label is among the ``k`` highest scores.

    The label counts as a hit when fewer than ``k`` classes score *strictly* higher (ties with the
    label's score are resolved in the label's favour).

    >>> import jax.numpy as jnp
    >>> float(top_k_accuracy(jnp.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1]]), jnp.array([2, 2]), k=2))
    0.5
    """
    s = jnp.asarray(logits_BxC)
    lab = jnp.asarray(labels_B).astype(jnp.int32)
    s_y = jnp.take_along_axis(s, lab[:, None], axis=-1)
    hit = (jnp.sum(s > s_y, axis=-1) < k).astype(jnp.float32)
    w = _weights(mask_B, hit.shape[0])
    return jnp.sum(hit * w) / jnp.maximum(jnp.sum(w), 1.0)


def confusion_matrix(
    labels_B: jax.Array, preds_B: jax.Array, num_classes: int, mask_B: jax.Array | None = None
) -> jax.Array:
    """``[C, C]`` counts: row = true class, column = predicted class (scikit-learn's layout).

    Masked-out examples are not counted; a float mask counts each example with its weight.
    Returns int32 counts without a mask or with a boolean one, float32 with float weights.
    Labels and predictions must lie in ``[0, C)``.

    >>> import jax.numpy as jnp
    >>> confusion_matrix(jnp.array([0, 1, 1]), jnp.array([0, 0, 1]), 2).tolist()
    [[1, 0], [1, 1]]
    """
    lab = jnp.asarray(labels_B).astype(jnp.int32)
    pred = jnp.asarray(preds_B).astype(jnp.int32)
    integer = mask_B is None or jnp.asarray(mask_B).dtype == jnp.bool_
    dtype = jnp.int32 if integer else jnp.float32
    w = _weights(mask_B, lab.shape[0], dtype)
    return jnp.zeros((num_classes, num_classes), dtype).at[lab, pred].add(w)


class PrecisionRecallF1(NamedTuple):
    """Precision, recall and F1: ``[C]`` per class (``average=None``) or scalars."""

    precision: jax.Array
    recall: jax.Array
    f1: jax.Array


AVERAGES = (None, "macro", "micro", "weighted")


def _safe_div(a, b):
    # 0/0 -> 0 (scikit-learn's zero_division default, without the warning).
    return jnp.where(b > 0, a / jnp.where(b > 0, b, 1.0), 0.0)


def precision_recall_f1(
    labels_B: jax.Array,
    preds_B: jax.Array,
    num_classes: int,
    *,
    average: str | None = None,
    mask_B: jax.Array | None = None,
) -> PrecisionRecallF1:
    """Precision ``TP/(TP+FP)``, recall ``TP/(TP+FN)`` and ``F1 = 2·P·R/(P+R)`` from the confusion matrix.

    Args:
      labels_B, preds_B: integer true and predicted classes (``preds = argmax(logits, -1)``).
      num_classes: C (static).
      average: ``None`` (per class ``[C]``), ``"macro"`` (unweighted mean of the per-class values
        over the classes that occur in labels or predictions, as scikit-learn does),
        ``"micro"`` (from pooled counts; equals accuracy for single-label data) or ``"weighted"``
        (mean weighted by each class's support).
      mask_B: which examples count (padded batches).
    Returns:
      :class:`PrecisionRecallF1`. Undefined ratios (0/0) are 0.

    >>> import jax.numpy as jnp
    >>> r = precision_recall_f1(jnp.array([0, 1, 1]), jnp.array([0, 0, 1]), 2)
    >>> r.precision.tolist(), r.recall.tolist()
    ([0.5, 1.0], [1.0, 0.5])
    """
    if average not in AVERAGES:
        raise ConfigError(f"unknown average {average!r}; valid choices: None, 'macro', 'micro', 'weighted'")
    cm = confusion_matrix(labels_B, preds_B, num_classes, mask_B).astype(jnp.float32)
    tp = jnp.diagonal(cm)
    predicted = jnp.sum(cm, axis=0)  # TP + FP
    support = jnp.sum(cm, axis=1)  # TP + FN
    if average == "micro":
        p = _safe_div(jnp.sum(tp), jnp.sum(predicted))
        r = _safe_div(jnp.sum(tp), jnp.sum(support))
        return PrecisionRecallF1(p, r, _safe_div(2 * p * r, p + r))
    p, r = _safe_div(tp, predicted), _safe_div(tp, support)
    f1 = _safe_div(2 * tp, predicted + support)  # = 2PR/(P+R), defined as 0 when TP = 0
    if average is None:
        return PrecisionRecallF1(p, r, f1)
    if average == "macro":
        w = ((predicted + support) > 0).astype(jnp.float32)
    else:
        w = support
    total = jnp.maximum(jnp.sum(w), 1e-30)
    return PrecisionRecallF1(jnp.sum(p * w) / total, jnp.sum(r * w) / total, jnp.sum(f1 * w) / total)


def f1_score(labels_B, preds_B, num_classes: int, *, average: str | None = "macro", mask_B=None) -> jax.Array:
    """F1 only (default: macro average); see :func:`precision_recall_f1`."""
    return precision_recall_f1(labels_B, preds_B, num_classes, average=average, mask_B=mask_B).f1
