"""Data parallelism on the ``(seed, data)`` mesh: ``jit`` with named shardings, or ``shard_map``.

Two equivalent ways to train one run (or a stack of runs) with its batch split over ``data``:

* :func:`data_parallel_train_step` — the ordinary :func:`dlcore.train.make_train_step` under ``jit``
  with parameters replicated over ``data`` (split over ``seed`` when batched) and the batch split
  over ``data``. The code is written for the global batch; XLA partitions it and inserts the
  all-reduce of the gradients (the mean over the global batch). Random draws are made for the global
  batch shape, so they are bit-identical on any number of devices.
* :func:`shard_map_train_step` — the per-shard step of :mod:`dlcore.parallel._sharded` under
  ``shard_map``, with the collectives written out (``psum`` of gradient sums and counts).

On CPU host devices, keep at most ~50 dispatched steps with an all-reduce in flight (block on
the result): more aborted XLA's rendezvous here (``Termination timeout ... 40 seconds``).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
from jax.sharding import Mesh, PartitionSpec as P

from dlcore.errors import ConfigError
from dlcore.parallel._distributed import put_global
from dlcore.parallel._mesh import DATA_AXIS, SEED_AXIS, batch_sharding, placement_of, state_sharding
from dlcore.parallel._sharded import make_sharded_train_step
from dlcore.train._state import Recipe
from dlcore.train._step import make_train_step


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """Raise :class:`ConfigError` unless ``batch_size`` splits evenly over the mesh's data axis."""
    d = placement_of(mesh).data
    if batch_size % d:
        raise ConfigError(
            f"batch size {batch_size} is not divisible by the data-axis size {d}; use a batch size that is a "
            f"multiple of {d} (e.g. {max(d, batch_size - batch_size % d)}) or fewer data devices"
        )


def _batch_size(batch: dict, batched: bool) -> int:
    return int(jax.tree.leaves(batch)[0].shape[1 if batched else 0])


def shard_batch(batch: dict, mesh: Mesh, batched: bool = False) -> dict:
    """Put a host batch on the mesh, examples split over ``data`` (``[S, B, ...]`` runs over ``seed`` too).

    Raises:
      ConfigError: ``B`` is not divisible by the data-axis size.
    """
    check_batch_size(_batch_size(batch, batched), mesh)
    return put_global(batch, batch_sharding(mesh, batched))


def replicate(tree, mesh: Mesh):
    """A full copy of ``tree`` on every device of ``mesh`` (a single run's state, a dataset)."""
    return put_global(tree, state_sharding(mesh, batched=False))


def shard_states(state, mesh: Mesh):
    """Stacked states ``[S, ...]`` split over ``seed`` and replicated over ``data``."""
    return put_global(state, state_sharding(mesh, batched=True))


class _CheckedStep:
    """A jitted step that validates the batch size first (and still offers ``lower``)."""

    def __init__(self, jitted, mesh: Mesh, batched: bool):
        self.jitted, self.mesh, self.batched = jitted, mesh, batched
        functools.update_wrapper(self, jitted)

    def __call__(self, state, batch):
        check_batch_size(_batch_size(batch, self.batched), self.mesh)
        return self.jitted(state, batch)

    def lower(self, state, batch):
        check_batch_size(_batch_size(batch, self.batched), self.mesh)
        return self.jitted.lower(state, batch)


def data_parallel_train_step(recipe: Recipe, mesh: Mesh, *, batched: bool = False, donate: bool = False) -> Callable:
    """``(state, batch) -> (state, metrics)`` jitted on ``mesh``: parameters replicated over ``data``,
    the batch ``[B, ...]`` split over ``data``; XLA all-reduces the gradient (mean over the global batch).

    Args:
      recipe: the training recipe.
      mesh: a ``(seed, data)`` mesh (:func:`dlcore.parallel.make_mesh`).
      batched: the state is a stack of runs ``[S, ...]`` (split over ``seed``) and the batch is
        ``[S, B, ...]``.
      donate: donate the input state's buffers.
    Returns:
      the step; it raises :class:`ConfigError` when ``B`` is not divisible by the data-axis size.

    >>> mesh = make_mesh(1, 2)                                     # doctest: +SKIP
    >>> step = data_parallel_train_step(recipe, mesh)             # doctest: +SKIP
    >>> state, metrics = step(replicate(state, mesh), shard_batch(batch, mesh))  # doctest: +SKIP
    """
    train_step = make_train_step(recipe)
    per_run = batch_sharding(mesh, batched=False)

    def step(state, batch):
        # Pins the examples to the data axis even if the caller passed a replicated batch.
        return train_step(state, jax.lax.with_sharding_constraint(batch, per_run))

    if batched:
        step = jax.vmap(step, spmd_axis_name=SEED_AXIS)  # the run axis lives on the seed mesh axis
    ss = state_sharding(mesh, batched)
    jitted = jax.jit(step, in_shardings=(ss, batch_sharding(mesh, batched)), out_shardings=(ss, ss),
                     donate_argnums=(0,) if donate else ())
    return _CheckedStep(jitted, mesh, batched)


def shard_map_train_step(recipe: Recipe, mesh: Mesh, *, batched: bool = False, donate: bool = False) -> Callable:
    """The same step with explicit collectives: :func:`make_sharded_train_step` under ``shard_map``.

    Each device computes loss *sums* on its rows; ``psum`` over ``data`` of the sums, the example
    counts and the gradients gives the global-batch mean. Batches may carry a ``mask`` ``[B]``
    (padding rows 0), so shards may hold different numbers of real examples. Dropout masks,
    augmentations and batch-norm statistics are those of the global batch.

    Args/Returns: as :func:`data_parallel_train_step`.
    """
    step = make_sharded_train_step(recipe, DATA_AXIS)
    if batched:
        step = jax.vmap(step)  # this device's runs; the collectives are over `data` only
    sspec = P(SEED_AXIS) if batched else P()
    bspec = P(SEED_AXIS, DATA_AXIS) if batched else P(DATA_AXIS)
    # check_vma=False: gradients are psum-ed by hand (as under pmap), not implicitly.
    mapped = jax.shard_map(step, mesh=mesh, in_specs=(sspec, bspec), out_specs=(sspec, sspec), check_vma=False)
    ss = state_sharding(mesh, batched)
    jitted = jax.jit(mapped, in_shardings=(ss, batch_sharding(mesh, batched)), out_shardings=(ss, ss),
                     donate_argnums=(0,) if donate else ())
    return _CheckedStep(jitted, mesh, batched)
