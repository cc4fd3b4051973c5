"""Per-shard training code with global-batch semantics (shared by ``shard_map`` and ``pmap``).

Code that runs once per device sees only its slice of the batch. Three things would then depend on
the number of devices; here each is made a function of the *global* batch instead:

* the loss and gradient: per-shard *sums* over real examples, ``psum``-ed, divided by the global
  count of real examples (equal to the single-device mean; exact for unequal, masked shards);
* random draws: dropout masks are drawn for the global batch shape from the step key and each
  device keeps its rows; the augmentation runs on the all-gathered global batch; so masks and
  augmentations are bit-identical to the single-device run. With threefry-partitionable keys
  (pinned by :mod:`dlcore.random`) the draw for row ``i`` does not depend on the array's length
  (a draw of ``[28, F]`` starts with the draw of ``[16, F]``), so padded, unequal shards work too:
  a shard's real rows sit at their position in the *compacted* global batch (the real rows of
  shard 0, then of shard 1, ...). A mask must therefore mark a prefix of each shard (real rows
  first, padding last), as :func:`dlcore.parallel.split_uneven_for_pmap` builds it;
* batch norm: statistics over the global batch (:mod:`dlcore.parallel._batchnorm`).

The model code is unchanged: :func:`global_batch_semantics` intercepts dropout and batch-norm
layers while the model runs.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from dlcore import random as drandom
from dlcore.nn import Dropout
from dlcore.parallel._batchnorm import batchnorm_interceptor
from dlcore.train._state import Recipe, TrainState
from dlcore.train._step import _apply, apply_gradients


def shard_offset(local_size: int, axis_name: str, mask: jax.Array | None = None) -> jax.Array:
    """Position of this shard's first row in the global batch: ``i·B_local`` for equal shards;
    with a ``mask`` ``[B_local]`` (real rows first), the number of real rows on shards ``< i``."""
    i = lax.axis_index(axis_name)
    if mask is None:
        return i * local_size
    counts = lax.all_gather(jnp.sum(mask).astype(jnp.int32), axis_name)  # [D], one small all-gather
    return jnp.sum(jnp.where(jnp.arange(counts.shape[0]) < i, counts, 0))


def global_index(local_size: int, axis_name: str, mask: jax.Array | None = None) -> jax.Array:
    """Global positions ``[B_local]`` of this shard's rows in the batch (shard ``i`` holds rows
    ``i·B_local … (i+1)·B_local − 1``; with a ``mask``, positions in the compacted batch of real
    rows); feed them to :func:`dlcore.random.example_keys`.

    >>> import jax, jax.numpy as jnp
    >>> jax.vmap(lambda _: global_index(2, "data"), axis_name="data")(jnp.zeros(3)).tolist()
    [[0, 1], [2, 3], [4, 5]]
    """
    return shard_offset(local_size, axis_name, mask) + jnp.arange(local_size)


def _embed_rows(x_local, axis_name, offset):
    # Place this shard's rows at `offset` in a zero array of the (padded) global batch shape.
    n, b = lax.axis_size(axis_name), x_local.shape[0]
    xg = jnp.zeros((n * b,) + x_local.shape[1:], x_local.dtype)
    return lax.dynamic_update_slice_in_dim(xg, x_local, offset, axis=0)


def _local_rows(x_global, local_size, offset):
    return lax.dynamic_slice_in_dim(x_global, offset, local_size, axis=0)


def _gather_compact(x_local, axis_name, mask):
    # The global batch on every device: shards' real rows back to back (padding after the last).
    xs = lax.all_gather(x_local, axis_name, axis=0)  # [D, B_local, ...]
    n, b = xs.shape[0], xs.shape[1]
    if mask is None:
        return xs.reshape((n * b,) + xs.shape[2:])
    counts = lax.all_gather(jnp.sum(mask).astype(jnp.int32), axis_name)
    starts = jnp.cumsum(counts) - counts
    xg = jnp.zeros((n * b,) + xs.shape[2:], xs.dtype)
    for s in range(n):  # in order: each shard's padding is overwritten by the next shard's rows
        xg = lax.dynamic_update_slice_in_dim(xg, xs[s], starts[s], axis=0)
    return xg


def dropout_interceptor(axis_name: str, offset: jax.Array | None = None) -> Callable:
    """A ``flax.linen.intercept_methods`` interceptor: dropout masks drawn for the global batch.

    Each :class:`dlcore.nn.Dropout` / ``flax.linen.Dropout`` call inside a per-shard function runs on
    the global-shape array (this shard's rows in place, zeros elsewhere) and keeps its own rows, so
    its mask equals the mask of the same rows in a single-device run, bit for bit. The price is
    drawing the full mask on every device (cheap next to a matmul; no communication).
    """

    def interceptor(next_fun, args, kwargs, context):
        if context.method_name != "__call__" or not isinstance(context.module, (Dropout, nn.Dropout)):
            return next_fun(*args, **kwargs)
        x = args[0]
        start = lax.axis_index(axis_name) * x.shape[0] if offset is None else offset
        y = next_fun(_embed_rows(x, axis_name, start), *args[1:], **kwargs)
        return _local_rows(y, x.shape[0], start)

    return interceptor


@contextlib.contextmanager
def global_batch_semantics(axis_name: str, example_mask: jax.Array | None = None):
    """Run unchanged model code per shard as if it saw the global batch (dropout masks, batch norm).

    Use inside ``shard_map``/``pmap`` over ``axis_name``, around ``model.apply``.

    Args:
      axis_name: the data axis.
      example_mask: ``[B_local]`` 1 for real rows (first), 0 for padding (last): batch-norm statistics
        skip padding and dropout rows take their place in the compacted global batch.
    """
    offset = None if example_mask is None else shard_offset(example_mask.shape[0], axis_name, example_mask)
    with nn.intercept_methods(dropout_interceptor(axis_name, offset)), \
            nn.intercept_methods(batchnorm_interceptor(axis_name, example_mask)):
        yield


def make_sharded_train_step(recipe: Recipe, axis_name: str = "data") -> Callable[[TrainState, dict], tuple]:
    """The train step for code that runs once per device on a slice of the batch.

    Same contract as :func:`dlcore.train.make_train_step` (NaN guard, status, metrics), computed
    over the global batch: ``batch = {"x": [B_local, ...], "y": [B_local], "mask": [B_local]}``
    (``mask`` optional: shards of unequal size are padded to one length and masked). Gradients are
    ``psum``-ed: every device applies the same update, so replicas stay identical.

    Returns:
      ``step(state, batch) -> (state, metrics)`` to call under ``shard_map``/``pmap`` with
      ``axis_name`` bound; the metrics are global means, the same on every device.
    """

    def step(state: TrainState, batch: dict):
        hp = state.hparams
        x = batch["x"]
        b = x.shape[0]
        mask = batch.get("mask")
        m = jnp.ones((b,), jnp.float32) if mask is None else mask.astype(jnp.float32)
        n_global = jnp.maximum(lax.psum(jnp.sum(m), axis_name), 1.0)
        dropout_key = drandom.step_key(state.keys["dropout"], state.step)
        if recipe.augment is not None:
            # Augment the global batch so per-example draws do not depend on the shard count.
            xg = _gather_compact(x, axis_name, None if mask is None else m)
            xg = recipe.augment(drandom.step_key(state.keys["augment"], state.step), xg)
            x = _local_rows(xg, b, shard_offset(b, axis_name, None if mask is None else m))

        def data_loss(params):
            with global_batch_semantics(axis_name, None if mask is None else m):
                out, new_ms = _apply(recipe, state, params, x, True, dropout_key)
            return jnp.sum(recipe.loss(out, batch, hp) * m) / n_global, (out, new_ms)

        (local_loss, (out, new_ms)), grads = jax.value_and_grad(data_loss, has_aux=True)(state.params)
        loss, grads = lax.psum((local_loss, grads), axis_name)
        total = loss
        if recipe.penalty is not None:
            # The penalty depends on the (replicated) parameters only: computed once, not summed.
            pen, pen_grads = jax.value_and_grad(lambda p: recipe.penalty(p, hp))(state.params)
            total = loss + pen
            grads = jax.tree.map(jnp.add, grads, pen_grads)
        new_state, grad_norm = apply_gradients(recipe, state, hp, grads, total, new_ms)
        metrics = {"loss": loss, "grad_norm": grad_norm}
        if recipe.metrics is not None:
            for name, per_ex in recipe.metrics(out, batch).items():
                metrics[name] = lax.psum(jnp.sum(per_ex * m), axis_name) / n_global
        return new_state, metrics

    return step
