"""Classification losses (thin, documented wrappers over optax)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits_BxC: jax.Array, labels_B: jax.Array, label_smoothing=0.0) -> jax.Array:
    """Per-example softmax cross-entropy from *logits* (not probabilities) and integer labels.

    ``-log softmax(logits)[y]``, computed stably by optax (log-sum-exp). With ``label_smoothing``
    ε the target is ``(1-ε)·onehot + ε/C``; ε may be a traced scalar.

    Returns:
      ``[B]`` losses.

    >>> import jax.numpy as jnp
    >>> float(cross_entropy(jnp.zeros((1, 10)), jnp.array([3]))[0])  # log(10)
    2.302585...
    """
    if isinstance(label_smoothing, (int, float)) and label_smoothing == 0:
        # No smoothing (a concrete zero): the cheaper integer-label form, same value.
        return optax.softmax_cross_entropy_with_integer_labels(logits_BxC, labels_B)
    num_classes = logits_BxC.shape[-1]
    onehot = jax.nn.one_hot(labels_B, num_classes, dtype=logits_BxC.dtype)
    eps = jnp.asarray(label_smoothing, logits_BxC.dtype)
    targets = onehot * (1.0 - eps) + eps / num_classes
    return optax.softmax_cross_entropy(logits_BxC, targets)


def mean_loss(per_example_B: jax.Array, mask_B: jax.Array | None = None) -> jax.Array:
    """Mean of per-example losses, over the unmasked examples when a mask is given."""
    if mask_B is None:
        return jnp.mean(per_example_B)
    mask_B = mask_B.astype(per_example_B.dtype)
    return jnp.sum(per_example_B * mask_B) / jnp.maximum(jnp.sum(mask_B), 1.0)


def multiclass_hinge(scores_BxC: jax.Array, labels_B: jax.Array, margin=1.0, kind: str = "weston_watkins") -> jax.Array:
    """Per-example multiclass hinge (SVM) loss of class scores and integer labels.

    ``kind="weston_watkins"`` (the lectures' form): ``Σ_{j≠y} max(0, s_j − s_y + margin)``.
    ``kind="crammer_singer"``: ``max(0, max_{j≠y} s_j − s_y + margin)`` (optax's
    ``multiclass_hinge_loss`` for ``margin=1``). Both are exactly 0 once the true class leads every
    other by ``margin``, so the gradient vanishes and training stops pushing those examples —
    unlike cross-entropy, which is never 0. ``margin`` may be a traced scalar.

    Returns:
      ``[B]`` losses.

    >>> import jax.numpy as jnp
    >>> s = jnp.array([[3.2, 5.1, -1.7]])        # the lectures' cat example: label 0
    >>> round(float(multiclass_hinge(s, jnp.array([0]))[0]), 4)  # max(0, 2.9) + max(0, -3.9)
    2.9
    """
    if kind not in ("weston_watkins", "crammer_singer"):
        from dlcore.errors import unknown_name

        raise unknown_name("hinge kind", kind, ("weston_watkins", "crammer_singer"))
    onehot = jax.nn.one_hot(labels_B, scores_BxC.shape[-1], dtype=scores_BxC.dtype)
    s_y = jnp.sum(scores_BxC * onehot, axis=-1, keepdims=True)
    margins = jnp.maximum(0.0, scores_BxC - s_y + jnp.asarray(margin, scores_BxC.dtype)) * (1.0 - onehot)
    if kind == "weston_watkins":
        return jnp.sum(margins, axis=-1)
    return jnp.max(margins, axis=-1)


def binary_hinge(scores_B: jax.Array, labels_B: jax.Array, margin=1.0) -> jax.Array:
    """Per-example binary hinge loss ``max(0, margin − t·s)`` with ``t = 2·label − 1 ∈ {−1, +1}``.

    ``labels_B`` are 0/1 (or ±1: the sign is used); ``scores_B`` the real-valued decision function
    (``[B]`` or ``[B, 1]``). For ``margin=1`` and ±1 targets this is optax's ``hinge_loss``.

    >>> import jax.numpy as jnp
    >>> binary_hinge(jnp.array([2.0, 0.5, -0.5]), jnp.array([1, 1, 1])).tolist()
    [0.0, 0.5, 1.5]
    """
    s = scores_B.reshape(scores_B.shape[0]) if scores_B.ndim == 2 and scores_B.shape[-1] == 1 else scores_B
    y = jnp.asarray(labels_B)
    t = jnp.where(y > 0, 1.0, -1.0).astype(s.dtype)
    return jnp.maximum(0.0, jnp.asarray(margin, s.dtype) - t * s)
