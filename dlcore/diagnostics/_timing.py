"""Where the time goes: compilation vs steps, data vs compute, and an estimate for the whole run."""

from __future__ import annotations

import time
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.data import Dataset, chunk_batch_indices
from dlcore.train import Loop, Recipe, init_state
from dlcore.train._fit import SLOW_STEP_S




class TimingReport(NamedTuple):
    """Seconds and rates measured on a probe chunk of the real compiled loop."""

    compile_s: float
    step_s: float
    data_s: float
    compute_s: float
    steps_per_s: float
    examples_per_s: float
    estimated_total_s: float

    def __str__(self) -> str:
        frac = self.data_s / self.step_s if self.step_s > 0 else 0.0
        return (
            f"compile {self.compile_s:.2f} s · step {1e3 * self.step_s:.3f} ms "
            f"(data {1e3 * self.data_s:.3f} ms = {100 * frac:.0f}%, compute {1e3 * self.compute_s:.3f} ms) · "
            f"{self.steps_per_s:,.0f} steps/s · {self.examples_per_s:,.0f} examples/s · "
            f"estimated total {self.estimated_total_s:.1f} s"
        )


def _best_of(fn, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


def time_recipe(
    recipe: Recipe,
    data: Dataset,
    *,
    hparams: dict,
    batch_size: int,
    num_steps: int,
    probe_steps: int = 50,
    seed: int = 0,
    reps: int = 3,
) -> TimingReport:
    """Time a probe chunk of ``probe_steps`` compiled steps and extrapolate to ``num_steps``.

    Data time is measured by a chunk that only draws and gathers the batches (the same index
    computation and gathers as training); compute time is the rest. Warns when a step takes longer
    than 500 ms (the lectures' "timings" advice: know your step time before launching a sweep).

    Returns:
      :class:`TimingReport`.
    """
    state = init_state(recipe, seed, hparams, data.x_train[:1])
    loop = Loop(recipe, data, num_steps=probe_steps, batch_size=batch_size)
    t0 = time.perf_counter()
    fn = loop._compile(probe_steps, state)
    compile_s = time.perf_counter() - t0
    x, y = data.x_train, data.y_train

    @jax.jit
    def data_only(key):
        idx = chunk_batch_indices(key, 0, probe_steps, x.shape[0], batch_size)

        def body(acc, i):
            return acc + jnp.sum(x[i]) + jnp.sum(y[i]), None  # consumed, so not optimised away

        return jax.lax.scan(body, jnp.zeros((), x.dtype), idx)[0]

    jax.block_until_ready(data_only(state.keys["data"]))
    step_s = _best_of(lambda: fn(jax.tree.map(jnp.copy, state), jnp.int32(0), x, y)[1]["loss"], reps) / probe_steps
    data_s = _best_of(lambda: data_only(state.keys["data"]), reps) / probe_steps
    if step_s > SLOW_STEP_S:
        warnings.warn(f"one training step takes {step_s:.2f} s (> {SLOW_STEP_S} s): shrink the model or batch, "
                      "or check that the step is compiled", RuntimeWarning, stacklevel=2)
    return TimingReport(
        compile_s=compile_s,
        step_s=step_s,
        data_s=data_s,
        compute_s=max(step_s - data_s, 0.0),
        steps_per_s=1.0 / step_s,
        examples_per_s=batch_size / step_s,
        estimated_total_s=compile_s + num_steps * step_s,
    )


def step_seconds(recipe: Recipe, data: Dataset, *, hparams: dict, batch_size: int, seeds, probe_steps: int = 20,
                 reps: int = 2) -> np.ndarray:
    """Seconds per compiled training step, one measurement per seed (the program compiled once).

    Each seed's probe chunk of ``probe_steps`` steps is timed ``reps`` times (the best counts), so
    the spread over seeds is the timing noise; e.g. the cost of a step as the batch grows.

    >>> from dlcore.data import from_arrays
    >>> from dlcore.nn import MLP
    >>> from dlcore.optim import optimizer_fn
    >>> x = np.zeros((64, 4), np.float32)
    >>> data = from_arrays(x, np.arange(64) % 2, x[:8], np.arange(8) % 2, val_fraction=0.0)
    >>> r = Recipe(MLP(widths=(8,), num_outputs=2), optimizer_fn("sgd"))
    >>> s = step_seconds(r, data, hparams={"learning_rate": 0.1}, batch_size=16, seeds=[0, 1], probe_steps=5)
    >>> s.shape, bool((s > 0).all())
    ((2,), True)
    """
    seeds = [int(s) for s in seeds]
    state = init_state(recipe, seeds[0], hparams, data.x_train[:1])
    loop = Loop(recipe, data, num_steps=probe_steps, batch_size=batch_size)
    fn = loop._compile(probe_steps, state)
    x, y = data.x_train, data.y_train
    out = []
    for s in seeds:
        st = init_state(recipe, s, hparams, data.x_train[:1])
        out.append(_best_of(lambda: fn(jax.tree.map(jnp.copy, st), jnp.int32(0), x, y)[1]["loss"], reps)
                   / probe_steps)
    return np.asarray(out)
