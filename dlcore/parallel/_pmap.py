"""The ``pmap`` idiom: one replica of the state per device, ``lax.pmean``-style gradient averaging.

For users of ``jax.pmap`` (in maintenance mode since JAX 0.8, where it is reimplemented on
``shard_map``; new code should prefer the mesh path of :mod:`dlcore.parallel._data_parallel`).
The step is :func:`dlcore.parallel.make_sharded_train_step` — gradients summed over
``axis_name='data'`` and divided by the global example count (for equal shards this *is*
``lax.pmean`` of the per-device mean gradients) — so it gives the mesh path's results, with the
same dropout masks, augmentations and global batch-norm statistics.

Arrays carry a leading device axis ``[D, ...]``: :func:`replicate_for_pmap` copies a state to
every device, :func:`split_for_pmap` cuts a batch ``[B, ...]`` into ``[D, B/D, ...]``,
:func:`split_uneven_for_pmap` pads unequal shards with a mask, :func:`unreplicate` takes device 0's copy.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.errors import ConfigError
from dlcore.parallel._sharded import make_sharded_train_step
from dlcore.train._state import Recipe


def pmap_train_step(recipe: Recipe, *, axis_name: str = "data", devices: Sequence | None = None,
                    donate: bool = False) -> Callable:
    """``jax.pmap`` of the per-shard train step, ``axis_name='data'``.

    Returns:
      ``step(state_D, batch_D) -> (state_D, metrics_D)`` on replicated states ``[D, ...]`` and split
      batches ``[D, B/D, ...]``; replicas stay identical, metrics are global means (same on each device).

    >>> step = pmap_train_step(recipe)                                       # doctest: +SKIP
    >>> state_D, m = step(replicate_for_pmap(state), split_for_pmap(batch))  # doctest: +SKIP
    >>> state = unreplicate(state_D)                                         # doctest: +SKIP
    """
    return jax.pmap(make_sharded_train_step(recipe, axis_name), axis_name=axis_name, devices=devices,
                    donate_argnums=(0,) if donate else ())


def replicate_for_pmap(tree, num_devices: int | None = None):
    """Stack ``num_devices`` (default: all local devices) copies of every leaf: ``[D, ...]``."""
    n = num_devices or jax.local_device_count()
    return jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (n,) + jnp.shape(x)), tree)


def unreplicate(tree):
    """Device 0's copy of a replicated ``[D, ...]`` pytree."""
    return jax.tree.map(lambda x: x[0], tree)


def split_for_pmap(batch: dict, num_devices: int | None = None) -> dict:
    """``[B, ...]`` -> ``[D, B/D, ...]`` (device ``i`` gets rows ``i·B/D … (i+1)·B/D − 1``).

    Raises:
      ConfigError: ``B`` is not divisible by ``D``.

    >>> split_for_pmap({"x": np.zeros((8, 3))}, 4)["x"].shape
    (4, 2, 3)
    """
    n = num_devices or jax.local_device_count()
    b = int(jax.tree.leaves(batch)[0].shape[0])
    if b % n:
        raise ConfigError(
            f"batch size {b} is not divisible by the data-axis size {n}; use a multiple of {n} or "
            "split_uneven_for_pmap (pads shards and masks the padding)"
        )
    return jax.tree.map(lambda x: jnp.reshape(x, (n, b // n) + tuple(x.shape[1:])), batch)


def split_uneven_for_pmap(batch: dict, sizes: Sequence[int]) -> dict:
    """Cut ``[B, ...]`` into shards of the given ``sizes`` (summing to ``B``), padded to the largest
    with zeros, plus ``mask [D, L]`` (1 = real row). The sharded step skips padding exactly.

    >>> b = split_uneven_for_pmap({"x": np.arange(5.0)}, [3, 2])
    >>> b["x"].tolist(), b["mask"].tolist()
    ([[0.0, 1.0, 2.0], [3.0, 4.0, 0.0]], [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    """
    sizes = [int(s) for s in sizes]
    b = int(jax.tree.leaves(batch)[0].shape[0])
    if sum(sizes) != b or min(sizes) < 0:
        raise ConfigError(f"shard sizes {sizes} must be non-negative and sum to the batch size {b}")
    if "mask" in batch:
        raise ConfigError("the batch already has a mask; split it with split_for_pmap")
    length = max(sizes)
    starts = np.cumsum([0] + sizes[:-1])

    def cut(x):
        x = np.asarray(x)
        out = np.zeros((len(sizes), length) + x.shape[1:], x.dtype)
        for i, (s, n) in enumerate(zip(starts, sizes)):
            out[i, :n] = x[s:s + n]
        return out

    out = jax.tree.map(cut, batch)
    out["mask"] = (np.arange(length)[None, :] < np.asarray(sizes)[:, None]).astype(np.float32)
    return out
