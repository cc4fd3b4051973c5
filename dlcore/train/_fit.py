"""Compiled training loops: ``lax.scan`` chunks of N steps, host work only between chunks."""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.data import Dataset, chunk_batch_indices, steps_per_epoch
from dlcore.errors import ConfigError
from dlcore.host import host_step, to_host, train_compiler_options
from dlcore.status import RUNNING
from dlcore.train._options import RunOptions, options_from
from dlcore.train._state import Recipe, TrainState, init_state
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


def _chunk_fn(recipe: Recipe, batch_size: int, num_steps: int, stats_fn=None, stats_every: int = 0,
              batch_sharding=None):
    train_step = make_train_step(recipe)

    def chunk(state: TrainState, start_step, x_train, y_train):
        idx_NxB = chunk_batch_indices(state.keys["data"], start_step, num_steps, x_train.shape[0], batch_size)

        def body(st, idx_B):
            batch = {"x": x_train[idx_B], "y": y_train[idx_B]}
            if batch_sharding is not None:  # data parallelism: each device computes on its rows
                batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
            return train_step(st, batch)

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

    Most users call :func:`fit`, :func:`dlcore.sweep.run_seeds` or :func:`dlcore.sweep.run_study`;
    the class is public for callers who drive chunks themselves.

    Args:
      recipe, data: what to train on.
      options: :class:`RunOptions` (steps, batch, evaluation, statistics, hooks, checkpoint).
      batched: the state holds a batch of runs on axis 0 (vmapped).
      state_sharding, batch_sharding, spmd_axis_name, block_every: placement, set by
        :func:`dlcore.sweep.run_batch` (the state's sharding, the per-run batch sharding of data
        parallelism, the mesh axis of the run axis, and the most steps dispatched per program).
    """

    def __init__(
        self,
        recipe: Recipe,
        data: Dataset,
        options: RunOptions | None = None,
        *,
        batched: bool = False,
        state_sharding=None,
        batch_sharding=None,
        spmd_axis_name: str | None = None,
        block_every: int | None = None,
        **kwargs,
    ):
        options = options_from(options, kwargs, "Loop")
        steps_per_epoch(int(data.x_train.shape[0]), options.batch_size)  # validates batch_size
        self.options = options
        self.stats_fn, self.stats_every = options.stats_fn, options.stats_every
        self.recipe, self.data, self.batch_size = recipe, data, options.batch_size
        self.chunk_size, self.batched = options.chunk_size, batched
        self.state_sharding = state_sharding
        self._compiled: dict[int, Any] = {}
        self.compile_s = 0.0
        ev = functools.partial(evaluate, recipe, batch_size=options.eval_batch_size)
        ev = jax.vmap(ev, in_axes=(0, None, None)) if batched else ev
        self._eval = jax.jit(ev)
        self._eval_compiled: dict[str, Any] = {}
        # Hooks (early stopping, reduce-on-plateau): init before the first chunk, update after each
        # validation, finalize before the final evaluation; each jitted (and vmapped over runs).
        hooks = options.all_hooks(recipe)
        self.hooks = hooks
        chain = lambda method: lambda s, *a: functools.reduce(lambda st, h: getattr(h, method)(st, *a), hooks, s)  # noqa: E731
        self._on_start = self._hook(chain("init")) if hooks else None
        self._on_eval = self._hook(chain("update")) if hooks else None
        self._on_end = self._hook(chain("finalize")) if hooks else None
        self.halt_when_stopped = any(h.halts for h in hooks)
        # Data parallelism (dlcore.parallel): XLA's CPU all-reduce rendezvous times out when hundreds
        # of steps with an all-reduce queue up; blocking every <= 50 steps avoids it.
        self.batch_sharding, self.spmd_axis_name = batch_sharding, spmd_axis_name
        if block_every is not None and block_every <= 0:
            raise ConfigError(f"block_every must be positive, got {block_every}")
        self.block_every = block_every

    def _hook(self, fn):
        fn = jax.vmap(fn) if self.batched else fn
        kw = {} if self.state_sharding is None else dict(out_shardings=self.state_sharding)
        return jax.jit(fn, **kw)

    def start(self, state: TrainState) -> TrainState:
        """Apply ``on_start`` (e.g. add early-stopping state to ``state.extra``)."""
        return state if self._on_start is None else self._on_start(state)

    def after_eval(self, state: TrainState, val: dict) -> TrainState:
        """Apply the ``on_eval`` hooks to the state after a validation."""
        return state if self._on_eval is None else self._on_eval(state, val)

    def end(self, state: TrainState) -> TrainState:
        """Apply ``on_end`` (e.g. restore the best parameters)."""
        return state if self._on_end is None else self._on_end(state)

    def _compile(self, n: int, state: TrainState):
        piece = self._piece(n)
        if piece < n:  # run n steps as blocking pieces of `piece` steps (same results, bounded queue)
            self._compile(piece, state)
            if n % piece:
                self._compile(n % piece, state)
            return functools.partial(self._run_pieces, n, piece)
        if n not in self._compiled:
            fn = _chunk_fn(self.recipe, self.batch_size, n, self.stats_fn, self.stats_every, self.batch_sharding)
            if self.batched:
                fn = jax.vmap(fn, in_axes=(0, None, None, None), spmd_axis_name=self.spmd_axis_name)
            kw = {}
            if self.state_sharding is not None:
                kw = dict(out_shardings=(self.state_sharding, self.state_sharding))
            jitted = jax.jit(fn, donate_argnums=(0,), **kw)
            t0 = time.perf_counter()
            self._compiled[n] = jitted.lower(
                state, jnp.int32(0), self.data.x_train, self.data.y_train
            ).compile(compiler_options=train_compiler_options())
            self.compile_s += time.perf_counter() - t0
        return self._compiled[n]

    def _piece(self, n: int) -> int:
        if self.block_every is None or n <= self.block_every:
            return n
        if self.stats_fn is not None and self.stats_every:  # pieces keep whole statistics groups
            return max(self.stats_every, self.block_every // self.stats_every * self.stats_every)
        return self.block_every

    def _run_pieces(self, n: int, piece: int, state, start_step, x_train, y_train):
        parts, done = [], 0
        while done < n:
            k = min(piece, n - done)
            state, metrics = self._compiled[k](state, start_step + done, x_train, y_train)
            jax.block_until_ready(state)
            parts.append(metrics)
            done += k
        axis = 1 if self.batched else 0
        cat = {}
        for k in parts[0]:  # a short last piece may have no "_stats" group
            vals = [p[k] for p in parts if k in p]
            cat[k] = jax.tree.map(lambda *a: jnp.concatenate(a, axis=axis), *vals)
        return state, cat

    def run_chunk(self, state: TrainState, start_step: int, n: int):
        """Run steps ``start_step .. start_step+n-1``; returns ``(state, metrics [(S,) n])``."""
        return self._compile(n, state)(state, jnp.int32(start_step), self.data.x_train, self.data.y_train)

    def compile_eval(self, state: TrainState, split: str = "val"):
        """Compile the evaluation of ``split`` ahead of time (so run timings exclude it)."""
        if split not in self._eval_compiled:
            x, y = self.data.split(split)
            t0 = time.perf_counter()
            lowered = self._eval.lower(state, x, y)
            self._eval_compiled[split] = lowered.compile(compiler_options=train_compiler_options())
            self.compile_s += time.perf_counter() - t0
        return self._eval_compiled[split]

    def evaluate(self, state: TrainState, split: str = "val") -> dict:
        x, y = self.data.split(split)
        return self.compile_eval(state, split)(state, x, y)


def _append(history: dict, key: str, value: np.ndarray, axis: int) -> None:
    history[key] = value if key not in history else np.concatenate([history[key], value], axis=axis)


_HOST_FIELDS = ("progress", "callbacks", "checkpoint", "evaluate_test")


def run_loop(loop: Loop, state: TrainState, *, history: dict | None = None,
             options: RunOptions | None = None) -> FitResult:
    """Drive ``loop`` from ``state.step`` to ``loop.options.num_steps``; the one path every run takes.

    With a ``checkpoint`` (a :class:`Checkpointer`), the state first resumes from the newest valid
    checkpoint (bit-exact), is saved when due after each chunk and at the end, and the checkpointer
    is closed. Then: hooks' ``init``, chunks with a validation after each (hooks' ``update``,
    callbacks, progress), hooks' ``finalize``, final validation (and test).

    ``options`` may replace the loop's host-side options (``progress``, ``callbacks``,
    ``checkpoint``, ``evaluate_test``) for this call, so one compiled loop serves many batches of
    runs (a study's chunks); its other fields must equal the loop's.
    """
    if options is None:
        options = loop.options
    elif any(getattr(options, f.name) != getattr(loop.options, f.name)
             for f in dataclasses.fields(RunOptions) if f.name not in _HOST_FIELDS):
        raise ConfigError("run_loop(options=...) may change only progress, callbacks, checkpoint and evaluate_test; "
                          "build a new Loop for other options")
    ckpt = options.checkpoint
    callbacks = list(options.callbacks)
    try:
        if ckpt is not None:
            # The restore target includes what the hooks add at start (e.g. early-stopping state).
            state, history = ckpt.resume(loop.start(state), history)
            callbacks.append(ckpt.callback(loop.options.num_steps))
        result = _drive(loop, state, history, callbacks, options)
        if ckpt is not None:
            ckpt.finish(result.state, result.history)
    finally:
        if ckpt is not None:
            ckpt.close()
    return result


def _all_stopped(state) -> bool:
    return bool(np.all(np.asarray(to_host(state.status)) != RUNNING))


def _drive(loop: Loop, state: TrainState, history: dict | None, callbacks, opts: RunOptions) -> FitResult:
    num_steps = loop.options.num_steps
    history = {k: np.asarray(v) for k, v in (history or {}).items()}
    step = host_step(state)
    if step > num_steps:
        raise ConfigError(f"the state is at step {step}, past num_steps={num_steps}")
    state = loop.start(state)
    t_axis = 1 if loop.batched else 0
    bar = None
    if opts.progress:
        from tqdm.auto import tqdm  # tqdm loads only when a bar is shown

        desc = opts.progress if isinstance(opts.progress, str) else ("train" if not loop.batched else "sweep")
        bar = tqdm(total=num_steps, initial=step, desc=desc, unit="step", dynamic_ncols=True, leave=False)
    t_run = 0.0
    steps_run = 0
    warned_slow = False
    # A run resumed after every run had stopped (early stopping) ends where the original ended.
    halted = loop.halt_when_stopped and step > 0 and _all_stopped(state)
    try:
        while step < num_steps and not halted:
            n = min(loop.chunk_size - step % loop.chunk_size, num_steps - step)
            fn = loop._compile(n, state)  # compile outside the timed region
            loop.compile_eval(state, "val")
            t0 = time.perf_counter()
            state, metrics = fn(state, jnp.int32(step), loop.data.x_train, loop.data.y_train)
            val = loop.evaluate(state, "val")
            state = loop.after_eval(state, val)
            metrics, val = to_host((metrics, val))
            dt = time.perf_counter() - t0
            t_run += dt
            if dt / n > SLOW_STEP_S and not warned_slow:
                warned_slow = True
                warnings.warn(f"a training step takes {dt / n:.2f} s (> {SLOW_STEP_S} s); estimated total "
                              f"{dt / n * (num_steps - step):.0f} s more", RuntimeWarning, stacklevel=3)
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
            # Every run has stopped (early stopping): the remaining steps would change nothing.
            halted = loop.halt_when_stopped and _all_stopped(state)
    finally:
        if bar is not None:
            bar.close()
    state = loop.end(state)
    final = {f"val/{k}": np.asarray(v) for k, v in to_host(loop.evaluate(state, "val")).items()}
    if opts.evaluate_test:
        final.update({f"test/{k}": np.asarray(v) for k, v in to_host(loop.evaluate(state, "test")).items()})
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
    options: RunOptions | None = None,
    state: TrainState | None = None,
    history: dict | None = None,
    **kwargs,
) -> FitResult:
    """Train one seed: jitted ``lax.scan`` chunks of ``eval_every`` steps, evaluation in between.

    Args:
      recipe: model, optimizer function, loss (see :class:`Recipe`).
      data: a :class:`dlcore.data.Dataset` (on device).
      seed: the run's seed; all its randomness derives from it by stream and step.
      hparams: numeric hyperparameters, e.g. ``{"learning_rate": 1e-2}``.
      options: :class:`RunOptions`; or give its fields as keywords (``num_steps``, ``batch_size``,
        ``eval_every``, ``hooks``, ``early_stopping``, ``stats_fn``/``stats_every``, ``callbacks``,
        ``checkpoint``, …), which update ``options`` when both are given.
      state, history: continue a run (e.g. restored from a checkpoint by hand).
    Returns:
      :class:`FitResult`.

    With ``checkpoint=dlcore.checkpoint.CheckpointManager(dir, every=500)`` the run saves there
    and, if the directory already holds a checkpoint, continues from the newest valid one
    (bit-exact). ``callbacks=[dlcore.diagnostics.nan_debugger(recipe, data, batch_size)]`` names the
    op that made the first NaN when a run diverges.

    >>> from dlcore.data import load_dataset            # doctest: +SKIP
    >>> from dlcore.nn import MLP
    >>> from dlcore.optim import optimizer_fn
    >>> r = Recipe(MLP(widths=(100, 100)), optimizer_fn("adam"))
    >>> res = fit(r, load_dataset("mnist1d"), 0, hparams={"learning_rate": 1e-2},
    ...           num_steps=6000, batch_size=100, eval_every=500)   # doctest: +SKIP
    """
    options = options_from(options, kwargs, "fit")
    if state is None:
        state = init_state(recipe, seed, hparams, data.x_train[:1])
    return run_loop(Loop(recipe, data, options, batched=False), state, history=history)
