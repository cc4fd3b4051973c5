"""A keyed, resumable minibatch sampler: the batch of step ``t`` is a pure function of (key, t).

Epoch ``e`` visits the training set in the order ``permutation(fold_in(data_key, e), N)``; each
epoch has ``N // B`` batches (the remainder is dropped), so step ``t`` is batch ``t mod (N // B)``
of epoch ``t // (N // B)``. Nothing about the sampler lives outside the key and the step: a run
resumed at any step, or a seed run inside a sweep of any size, draws exactly the same batches.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlcore import random as drandom
from dlcore.errors import ConfigError


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """``N // B``; raises a clear error when the batch is larger than the dataset."""
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    if batch_size > num_examples:
        raise ConfigError(
            f"batch_size={batch_size} is larger than the training set ({num_examples} examples); "
            "lower batch_size"
        )
    return num_examples // batch_size


def epoch_permutation(data_key: jax.Array, epoch, num_examples: int) -> jax.Array:
    """The visiting order of epoch ``epoch``: ``permutation(fold_in(data_key, epoch), N)``.

    Equal to ``jax.random.permutation``, bit for bit; drawn by :func:`dlcore.random.permutation`,
    whose sort is ~7× faster on the CPU (the MNIST-1D MLP sweep spent ~15% of its steps in JAX's).
    """
    return drandom.permutation(jax.random.fold_in(data_key, epoch), num_examples)


def batch_indices(data_key: jax.Array, step, num_examples: int, batch_size: int) -> jax.Array:
    """Indices ``[B]`` of the examples in the batch of global step ``step`` (reference path).

    >>> import jax
    >>> k = jax.random.PRNGKey(1)
    >>> batch_indices(k, 3, 10, 4).shape
    (4,)
    """
    spe = steps_per_epoch(num_examples, batch_size)
    perm = epoch_permutation(data_key, step // spe, num_examples)
    return jax.lax.dynamic_slice(perm, ((step % spe) * batch_size,), (batch_size,))


def chunk_batch_indices(
    data_key: jax.Array, start_step, num_steps: int, num_examples: int, batch_size: int
) -> jax.Array:
    """Indices ``[num_steps, B]`` for steps ``start_step .. start_step + num_steps - 1``.

    Equal to stacking :func:`batch_indices` for each step, but draws each epoch's permutation once
    per chunk instead of once per step. ``start_step`` may be traced; ``num_steps`` is static.
    """
    spe = steps_per_epoch(num_examples, batch_size)
    steps = start_step + jnp.arange(num_steps)
    first_epoch = start_step // spe
    # A chunk of num_steps consecutive steps touches at most this many epochs.
    n_epochs = (num_steps - 1) // spe + 2
    perms = jax.vmap(lambda e: epoch_permutation(data_key, first_epoch + e, num_examples))(
        jnp.arange(n_epochs)
    )
    rows = steps // spe - first_epoch
    cols = (steps % spe)[:, None] * batch_size + jnp.arange(batch_size)[None, :]
    return perms[rows[:, None], cols]
