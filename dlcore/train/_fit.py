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
from dlcore.train._state import RUNNING, Recipe, TrainState
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
        on_eval: Callable | None = None,
        on_start: Callable | None = None,
        on_end: Callable | None = None,
        halt_when_stopped: bool = False,
        batch_sharding=None,
        spmd_axis_name: str | None = None,
        block_every: int | None = None,
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
        self._eval_compiled: dict[str, Any] = {}
        # State hooks (early stopping, reduce-on-plateau): on_start before the first chunk,
        # on_eval(state, val_metrics) after each validation, on_end before the final evaluation.
        # An optimizer function may carry its own on_eval (dlcore.optim's reduce_on_plateau).
        evals = [h for h in (getattr(recipe.optimizer, "on_eval", None), on_eval) if h is not None]
        self._on_eval = self._hook(lambda s, v: functools.reduce(lambda st, h: h(st, v), evals, s)) if evals else None
        self._on_start = self._hook(on_start) if on_start is not None else None
        self._on_end = self._hook(on_end) if on_end is not None else None
        self.halt_when_stopped = halt_when_stopped
        # Data parallelism (dlcore.parallel): the per-run batch sharding, the mesh axis of the run
        # axis, and the most steps dispatched per program (XLA's CPU all-reduce rendezvous times out
        # when hundreds of steps with an all-reduce queue up; blocking every <= 50 steps avoids it).
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
            ).compile()
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
            self._eval_compiled[split] = self._eval.lower(state, x, y).compile()
            self.compile_s += time.perf_counter() - t0
        return self._eval_compiled[split]

    def evaluate(self, state: TrainState, split: str = "val") -> dict:
        x, y = self.data.split(split)
        return self.compile_eval(state, split)(state, x, y)


def early_stopping_hooks(early_stopping) -> dict:
    """``Loop`` keyword arguments for an early-stopping object (``init``/``update``/``finalize``)."""
    if early_stopping is None:
        return {}
    return dict(on_start=early_stopping.init, on_eval=early_stopping.update, on_end=early_stopping.finalize,
                halt_when_stopped=True)


def _to_host(tree):
    # jax.device_get, plus a gather across processes for arrays split over several hosts.
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from dlcore.parallel import to_host

    return to_host(tree)


def _host_step(state: TrainState) -> int:
    steps = np.unique(np.asarray(_to_host(state.step)))
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
    state = loop.start(state)
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
            loop.compile_eval(state, "val")
            t0 = time.perf_counter()
            state, metrics = fn(state, jnp.int32(step), loop.data.x_train, loop.data.y_train)
            val = loop.evaluate(state, "val")
            state = loop.after_eval(state, val)
            metrics, val = _to_host((metrics, val))
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
            if loop.halt_when_stopped and np.all(np.asarray(_to_host(state.status)) != RUNNING):
                break  # every run has stopped (early stopping): the remaining steps would change nothing
    finally:
        if bar is not None:
            bar.close()
    state = loop.end(state)
    final = {f"val/{k}": np.asarray(v) for k, v in _to_host(loop.evaluate(state, "val")).items()}
    if evaluate_test:
        final.update({f"test/{k}": np.asarray(v) for k, v in _to_host(loop.evaluate(state, "test")).items()})
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
    early_stopping=None,
    checkpoint_dir: str | None = None,
    checkpoint_every: int = 0,
    debug_nans: bool = False,
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
      early_stopping: a :class:`dlcore.optim.EarlyStopping` — stop when the validation metric has
        not improved for ``patience`` evaluations (``state.status == STOPPED``, ``stop_step``), keep
        the best parameters (in ``state.extra["early_stopping"]``) and restore them at the end.
      checkpoint_dir, checkpoint_every: save the train state and history there every
        ``checkpoint_every`` steps (0: only at the end) and at the end; if it already holds a
        checkpoint, continue from the newest valid one (bit-exact). See :mod:`dlcore.checkpoint`.
      debug_nans: when the run diverges, replay the failing step op by op and raise
        :class:`dlcore.errors.DivergedError` naming the operation that made the first NaN/Inf.
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
        **early_stopping_hooks(early_stopping),
    )
    callbacks, ckpt = tuple(callbacks), None
    if checkpoint_dir is not None:
        from dlcore.checkpoint import CheckpointManager

        ckpt = CheckpointManager(checkpoint_dir, every=checkpoint_every, metadata={"seeds": [int(seed)]})
        # The restore target includes what the loop adds at start (e.g. early-stopping state).
        state, history = ckpt.resume(loop.start(state), history)
        callbacks += (ckpt.callback(num_steps),)
    if debug_nans:
        from dlcore.checkpoint import nan_debugger

        callbacks += (nan_debugger(recipe, data, batch_size),)
    try:
        result = run_loop(
            loop, state, num_steps, history=history, evaluate_test=evaluate_test, progress=progress, callbacks=callbacks
        )
        if ckpt is not None:
            ckpt.finish(result.state, result.history)
    finally:
        if ckpt is not None:
            ckpt.close()
    return result
