"""The pure train and eval steps: ``(state, batch) -> (state, metrics)``."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from dlcore import random as drandom
from dlcore.losses import mean_loss
from dlcore.nn import conv_as_matmul
from dlcore.train._state import DIVERGED, RUNNING, Recipe, TrainState


def _apply(recipe: Recipe, state: TrainState, params, x, train: bool, dropout_key=None):
    if recipe.conv_impl == "matmul":
        with conv_as_matmul():
            return _apply_model(recipe, state, params, x, train, dropout_key)
    return _apply_model(recipe, state, params, x, train, dropout_key)


def _apply_model(recipe: Recipe, state: TrainState, params, x, train: bool, dropout_key=None):
    model = recipe.bind(state.hparams)
    variables = {"params": params, **state.model_state}
    if train and state.model_state:
        out, new_model_state = model.apply(
            variables, x, train=True, rngs={"dropout": dropout_key}, mutable=list(state.model_state)
        )
        return out, dict(new_model_state)
    rngs = {"dropout": dropout_key} if train else {}
    return model.apply(variables, x, train=train, rngs=rngs), state.model_state


def _select(pred, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def apply_gradients(recipe: Recipe, state: TrainState, hp, grads, total, new_model_state):
    """One optimizer update with the NaN guard: the shared tail of every train step.

    A non-finite ``total`` loss or gradient norm leaves the parameters and the model state as they
    were and marks the run ``DIVERGED`` at this step; a run that is not ``RUNNING`` keeps its
    parameters and model state from then on. The optimizer state is not frozen: it no longer
    affects a stopped run, and selecting it every step cost 12% of the MNIST-1D MLP's step time
    (``benchmarks/train_step.py``); after a divergence it may hold non-finite values.

    Returns:
      ``(new_state, grad_norm)``; ``new_state.step`` is ``state.step + 1`` either way.
    """
    grad_norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(grads)))
    updates, opt_state = recipe.optimizer(hp).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)

    finite = jnp.isfinite(total) & jnp.isfinite(grad_norm)
    running = state.status == RUNNING
    ok = finite & running
    diverging = running & ~finite
    new_state = state.replace(
        step=state.step + 1,
        params=_select(ok, params, state.params),
        opt_state=opt_state,
        model_state=_select(ok, new_model_state, state.model_state),
        status=jnp.where(diverging, DIVERGED, state.status),
        stop_step=jnp.where(diverging, state.step, state.stop_step),
    )
    return new_state, grad_norm


def make_train_step(recipe: Recipe) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """Build the pure train step of a recipe.

    The step draws its dropout and augmentation keys as ``fold_in(keys[stream], state.step)``,
    computes loss and gradients, applies the optimizer built from ``state.hparams``, and guards
    against divergence: if the loss or the gradient norm is not finite the update is *not* applied,
    ``status`` becomes ``DIVERGED`` and ``stop_step`` records the step. A state whose status is not
    ``RUNNING`` keeps its parameters (only ``step`` advances, so vmapped seeds stay in lock-step).

    Returns:
      ``train_step(state, batch) -> (state, metrics)`` with ``batch = {"x": [B, ...], "y": [B]}``
      (optional ``"mask": [B]``) and scalar metrics ``loss`` (data loss, without penalty),
      ``grad_norm`` and the recipe's metrics.
    """

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        hp = state.hparams
        dropout_key = drandom.step_key(state.keys["dropout"], state.step)
        x = batch["x"]
        if recipe.augment is not None:
            x = recipe.augment(drandom.step_key(state.keys["augment"], state.step), x)
        mask = batch.get("mask")

        def loss_fn(params):
            out, new_ms = _apply(recipe, state, params, x, True, dropout_key)
            loss = mean_loss(recipe.loss(out, batch, hp), mask)
            total = loss if recipe.penalty is None else loss + recipe.penalty(params, hp)
            return total, (loss, out, new_ms)

        (total, (loss, out, new_ms)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        new_state, grad_norm = apply_gradients(recipe, state, hp, grads, total, new_ms)
        metrics = {"loss": loss, "grad_norm": grad_norm}
        if recipe.metrics is not None:
            for name, per_ex in recipe.metrics(out, batch).items():
                metrics[name] = mean_loss(per_ex, mask)
        return new_state, metrics

    return train_step


def make_eval_step(recipe: Recipe) -> Callable[[TrainState, dict], dict]:
    """Build the pure eval step: sums (not means) of loss and metrics over a batch, and a count.

    Sums let padded batches be combined exactly: ``batch["mask"]`` (``[B]``, 1 = real example)
    excludes padding. The model runs with ``train=False`` (no dropout, running BN averages).
    """

    def eval_step(state: TrainState, batch: dict) -> dict:
        out, _ = _apply(recipe, state, state.params, batch["x"], False)
        mask = batch.get("mask")
        m = jnp.ones(batch["x"].shape[:1], jnp.float32) if mask is None else mask.astype(jnp.float32)
        sums = {"loss": jnp.sum(recipe.loss(out, batch, state.hparams) * m), "count": jnp.sum(m)}
        if recipe.metrics is not None:
            for name, per_ex in recipe.metrics(out, batch).items():
                sums[name] = jnp.sum(per_ex * m)
        return sums

    return eval_step


def evaluate(recipe: Recipe, state: TrainState, x, y, batch_size: int | None = None) -> dict:
    """Mean loss and metrics of ``state`` on ``(x, y)``; jittable and vmappable over states.

    With ``batch_size`` the data is padded to a multiple of it and scanned in batches (for
    datasets whose activations do not fit at once); padding is masked out exactly. An empty split
    (no validation set, ``load_dataset(..., val_fraction=0.0)``) gives NaN for every metric.
    """
    eval_step = make_eval_step(recipe)
    n = x.shape[0]
    if n == 0:
        # An empty split (e.g. ``val_fraction=0.0``): NaN metrics, as a mean over no examples is undefined.
        one = {"x": jnp.zeros((1,) + x.shape[1:], x.dtype), "y": jnp.zeros((1,) + y.shape[1:], y.dtype)}
        shapes = jax.eval_shape(eval_step, state, one)
        return {k: jnp.full(s.shape, jnp.nan, jnp.float32) for k, s in shapes.items() if k != "count"}
    if batch_size is None or batch_size >= n:
        sums = eval_step(state, {"x": x, "y": y})
    else:
        nb = -(-n // batch_size)
        pad = nb * batch_size - n
        xp = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]).reshape((nb, batch_size) + x.shape[1:])
        yp = jnp.concatenate([y, jnp.zeros((pad,) + y.shape[1:], y.dtype)]).reshape((nb, batch_size) + y.shape[1:])
        mp = (jnp.arange(nb * batch_size) < n).astype(jnp.float32).reshape(nb, batch_size)
        per = jax.lax.map(lambda b: eval_step(state, {"x": b[0], "y": b[1], "mask": b[2]}), (xp, yp, mp))
        sums = jax.tree.map(lambda a: jnp.sum(a, axis=0), per)
    count = sums.pop("count")
    return {k: v / count for k, v in sums.items()}
