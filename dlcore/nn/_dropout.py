"""Dropout whose rate may be a traced array (so it can be vmapped over in a sweep)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def dropout(key: jax.Array, x: jax.Array, rate) -> jax.Array:
    """Inverted dropout: zero each element with probability ``rate``, scale the rest by 1/(1-rate).

    ``rate`` may be a traced scalar; ``rate=0`` returns ``x`` exactly. The mask is drawn for the
    whole (global) array from one key, so it does not depend on how ``x`` is sharded.

    >>> import jax
    >>> float(dropout(jax.random.PRNGKey(0), jnp.ones(4), 0.0).sum())
    4.0
    """
    keep = 1.0 - jnp.asarray(rate, dtype=x.dtype)
    mask = jax.random.bernoulli(key, keep, x.shape)
    return jnp.where(mask, x / keep, jnp.zeros_like(x))


class Dropout(nn.Module):
    """Linen dropout with an explicit ``train`` flag and an array-valued ``rate``.

    Uses the ``dropout`` RNG stream: ``apply(..., rngs={"dropout": key})``.
    """

    rate: float | jax.Array = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        # A concrete zero rate costs nothing; a traced rate (swept) always draws the mask.
        if not train or (isinstance(self.rate, (int, float)) and self.rate == 0):
            return x
        return dropout(self.make_rng("dropout"), x, self.rate)
