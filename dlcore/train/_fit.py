"""Compiled training loops: ``lax.scan`` chunks of N steps, host work only between chunks."""

from __future__ import annotations

import functools
import math
import time
import warnings
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.data import Dataset, chunk_batch_indices, steps_per_epoch
from dlcore.errors import ConfigError
from dlcore.train._state import Recipe, TrainState
from dlcore.train._step import evaluate, make_train_step


SLOW_STEP_S = 0.5  # the lectures' "timings": a step slower than this deserves a warning


class FitResult(NamedTuple):
    """What a run returns.

    Attributes:
      state: the final :class:`TrainState` (leading seed axis for sweeps).
      history: arrays — ``train/<metric>`` per step ``[(S,) T]``, ``eval_step`` ``[E]`` and
        ``val/<metric>`` per evaluation ``[(S,) E]``.
      final: final ``val/<metric>`` and ``test/<metric>`` (``[(S,)]``; test only if asked).
      timing: ``compile_s``, ``run_s`` (excluding compilation), ``steps_per_s``.
    """

    state: TrainState
    history: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    timing: dict[str, float]


Callback = Callable[[TrainState, dict, int], Any]
"""Called after every chunk with ``(state, history_so_far, step)``; host side (save, log, plot)."""


def _chunk_fn(recipe: Recipe, batch_size: int, num_steps: int, stats_fn=None, stats_every: int = 0):
    train_step = make_train_step(recipe)

    def chunk(state: TrainState, start_step, x_train, y_train):
        idx_NxB = chunk_batch_indices(state.keys["data"], start_step, num_steps, x_train.shape[0], batch_size)

        def body(st, idx_B):
            return train_step(st, {"x": x_train[idx_B], "y": y_train[idx_B]})

        groups = num_steps // stats_every if stats_fn is not None and stats_every else 0
        if not groups:
            return jax.lax.scan(body, state, idx_NxB)

        # Statistics every `stats_every` steps without a per-step branch: scan over groups of steps.
        def group(st, idx_KxB):
            st, m = jax.lax.scan(body, st, idx_KxB)
            last = idx_KxB[-1]
            return st, (m, stats_fn(st, {"x": x_train[last], "y": y_train[last]}))

        n = groups * stats_every
        idx_GxKxB = idx_NxB[:n].reshape((groups, stats_every, batch_size))
        state, (metrics, stats) = jax.lax.scan(group, state, idx_GxKxB)
        metrics = jax.tree.map(lambda a: a.reshape((n,) + a.shape[2:]), metrics)
        if n < num_steps:
            state, rest = jax.lax.scan(body, state, idx_NxB[n:])
            metrics = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), metrics, rest)
        return state, dict(metrics, _stats=stats)

    return chunk


class Loop:
    """A compiled training loop for one run (``batched=False``) or a batch of runs on axis 0.

    Most users call :func:`fit` or :func:`dlcore.sweep.run_seeds`; the class is public for
    callers who drive chunks themselves (checkpointing, custom logging).
    """

    def __init__(
        self,
        recipe: Recipe,
        data: Dataset,
        *,
        batch_size: int,
        chunk_size: int,
        batched: bool,
        eval_batch_size: int | None = None,
        state_sharding=None,
        stats_fn=None,
        stats_every: int = 0,
    ):
        steps_per_epoch(int(data.x_train.shape[0]), batch_size)  # validates batch_size
        if chunk_size <= 0:
            raise ConfigError(f"eval_every (chunk size) must be positive, got {chunk_size}")
        if stats_fn is not None and (stats_every <= 0 or chunk_size % stats_every):
            raise ConfigError(
                f"stats_every={stats_every} must be positive and divide eval_every={chunk_size} "
                "(statistics are taken at the same global steps in every chunk)"
            )
        self.stats_fn, self.stats_every = stats_fn, stats_every
        self.recipe, self.data, self.batch_size = recipe, data, batch_size
        self.chunk_size, self.batched = chunk_size, batched
        self.state_sharding = state_sharding
        self._compiled: dict[int, Any] = {}
        self.compile_s = 0.0
        ev = functools.partial(evaluate, recipe, batch_size=eval_batch_size)
        ev = jax.vmap(ev, in_axes=(0, None, None)) if batched else ev
        self._eval = jax.jit(ev)

    def _compile(self, n: int, state: TrainState):
        if n not in self._compiled:
            fn = _chunk_fn(self.recipe, self.batch_size, n, self.stats_fn, self.stats_every)
            if self.batched:
                fn = jax.vmap(fn, in_axes=(0, None, None, None))
            kw = {}
            if self.state_sharding is not None:
                kw = dict(out_shardings=(self.state_sharding, self.state_sharding))
            jitted = jax.jit(fn, donate_argnums=(0,), **kw)
            t0 = time.perf_counter()
            self._compiled[n] = jitted.lower(
                state, jnp.int32(0), self.data.x_train, self.data.y_train
            ).compile()
            self.compile_s += time.perf_counter() - t0
        return self._compiled[n]

    def run_chunk(self, state: TrainState, start_step: int, n: int):
        """Run steps ``start_step .. start_step+n-1``; returns ``(state, metrics [(S,) n])``."""
        return self._compile(n, state)(state, jnp.int32(start_step), self.data.x_train, self.data.y_train)

    def evaluate(self, state: TrainState, split: str = "val") -> dict:
        x, y = self.data.split(split)
        return self._eval(state, x, y)


def _host_step(state: TrainState) -> int:
    steps = np.unique(np.asarray(jax.device_get(state.step)))
    if steps.size != 1:
        raise ConfigError(f"the runs of a batch are at different steps {steps.tolist()}; cannot continue together")
    return int(steps[0])


def _append(history: dict, key: str, value: np.ndarray, axis: int) -> None:
    history[key] = value if key not in history else np.concatenate([history[key], value], axis=axis)


def run_loop(
    loop: Loop,
    state: TrainState,
    num_steps: int,
    *,
    history: dict | None = None,
    evaluate_test: bool = True,
    progress: bool | str = True,
    callbacks: Sequence[Callback] = (),
) -> FitResult:
    """Drive ``loop`` from ``state.step`` to ``num_steps`` in chunks; evaluate between chunks."""
    if num_steps <= 0:
        raise ConfigError(f"num_steps must be positive, got {num_steps}")
    history = {k: np.asarray(v) for k, v in (history or {}).items()}
    step = _host_step(state)
    if step > num_steps:
        raise ConfigError(f"the state is at step {step}, past num_steps={num_steps}")
    t_axis = 1 if loop.batched else 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        desc = progress if isinstance(progress, str) else ("train" if not loop.batched else "sweep")
        bar = tqdm(total=num_steps, initial=step, desc=desc, unit="step", dynamic_ncols=True, leave=False)
    t_run = 0.0
    steps_run = 0
    warned_slow = False
    try:
        while step < num_steps:
            n = min(loop.chunk_size - step % loop.chunk_size, num_steps - step)
            fn = loop._compile(n, state)  # compile outside the timed region
            t0 = time.perf_counter()
            state, metrics = fn(state, jnp.int32(step), loop.data.x_train, loop.data.y_train)
            val = loop.evaluate(state, "val")
            metrics, val = jax.device_get((metrics, val))
            dt = time.perf_counter() - t0
            t_run += dt
            if dt / n > SLOW_STEP_S and not warned_slow:
                warned_slow = True
                warnings.warn(f"a training step takes {dt / n:.2f} s (> {SLOW_STEP_S} s); estimated total "
                              f"{dt / n * (num_steps - step):.0f} s more", RuntimeWarning, stacklevel=2)
            steps_run += n
            step += n
            stats = metrics.pop("_stats", None)
            for k, v in metrics.items():
                _append(history, f"train/{k}", np.asarray(v), t_axis)
            if stats is not None:
                taken = (np.arange(n // loop.stats_every) + 1) * loop.stats_every + (step - n)
                _append(history, "stats_step", taken, 0)
                for k, v in stats.items():
                    _append(history, f"stats/{k}", np.asarray(v), t_axis)
            _append(history, "eval_step", np.asarray([step]), 0)
            for k, v in val.items():
                _append(history, f"val/{k}", np.asarray(v)[..., None], t_axis)
            if bar is not None:
                bar.update(n)
                post = {"loss": float(np.mean(metrics["loss"][..., -1]))}
                if "accuracy" in val:
                    post["val_acc"] = float(np.mean(val["accuracy"]))
                bar.set_postfix(post)
            for cb in callbacks:
                cb(state, history, step)
    finally:
        if bar is not None:
            bar.close()
    final = {f"val/{k}": np.asarray(v) for k, v in jax.device_get(loop.evaluate(state, "val")).items()}
    if evaluate_test:
        final.update({f"test/{k}": np.asarray(v) for k, v in jax.device_get(loop.evaluate(state, "test")).items()})
    timing = {
        "compile_s": loop.compile_s,
        "run_s": t_run,
        "steps_per_s": steps_run / t_run if t_run > 0 else math.nan,
    }
    return FitResult(state, history, final, timing)


def fit(
    recipe: Recipe,
    data: Dataset,
    seed: int = 0,
    *,
    hparams: dict,
    num_steps: int,
    batch_size: int,
    eval_every: int | None = None,
    eval_batch_size: int | None = None,
    state: TrainState | None = None,
    history: dict | None = None,
    evaluate_test: bool = True,
    progress: bool | str = True,
    callbacks: Sequence[Callback] = (),
    stats_fn: Callable | None = None,
    stats_every: int = 0,
) -> FitResult:
    """Train one seed: jitted ``lax.scan`` chunks of ``eval_every`` steps, evaluation in between.

    Args:
      recipe: model, optimizer function, loss (see :class:`Recipe`).
      data: a :class:`dlcore.data.Dataset` (on device).
      seed: the run's seed; all its randomness derives from it by stream and step.
      hparams: numeric hyperparameters, e.g. ``{"learning_rate": 1e-2}``.
      num_steps: total steps (a resumed run continues from ``state.step``).
      batch_size: examples per step.
      eval_every: steps per compiled chunk (default: ``num_steps``, one chunk).
      state, history: continue a run (e.g. restored from a checkpoint).
      callbacks: host functions called after each chunk with ``(state, history, step)``.
      stats_fn, stats_every: ``stats_fn(state, batch) -> {name: array}`` evaluated inside the
        compiled loop every ``stats_every`` steps (e.g. :func:`dlcore.diagnostics.layer_stats_fn`);
        recorded as ``history["stats/<name>"]`` at ``history["stats_step"]``.
    Returns:
      :class:`FitResult`.

    >>> from dlcore.data import load_dataset            # doctest: +SKIP
    >>> from dlcore.nn import MLP
    >>> from dlcore.optim import optimizer_fn
    >>> r = Recipe(MLP(widths=(100, 100)), optimizer_fn("adam"))
    >>> res = fit(r, load_dataset("mnist1d"), 0, hparams={"learning_rate": 1e-2},
    ...           num_steps=6000, batch_size=100, eval_every=500)   # doctest: +SKIP
    """
    from dlcore.train._state import init_state

    if state is None:
        state = init_state(recipe, seed, hparams, data.x_train[:1])
    loop = Loop(
        recipe, data, batch_size=batch_size, chunk_size=eval_every or num_steps, batched=False,
        eval_batch_size=eval_batch_size, stats_fn=stats_fn, stats_every=stats_every,
    )
    return run_loop(
        loop, state, num_steps, history=history, evaluate_test=evaluate_test, progress=progress, callbacks=callbacks
    )
