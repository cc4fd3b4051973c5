"""Classification metrics (jittable; masks for padded batches)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def correct(logits_BxC: jax.Array, labels_B: jax.Array) -> jax.Array:
    """``[B]`` float 1.0 where ``argmax(logits) == label``."""
    return (jnp.argmax(logits_BxC, axis=-1) == labels_B).astype(jnp.float32)


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
