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
