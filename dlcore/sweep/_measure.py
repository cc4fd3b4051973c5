"""Measured studies: points × seeds where a run is a function returning metrics, not a training loop.

Some claims need no train step: a least-squares fit (bias–variance), kNN with cross-validation, a
search on a known objective, or an analysis that trains inside with :func:`dlcore.sweep.run_seeds`.
Such a study gives ``measure(point, seeds) -> {"val/<m>": [S], "test/<m>": [S], …}`` and runs on
the same search strategies, selection (validation only; the test metrics are kept for the selected
points only) and outputs as a trained study: :func:`run_measured_study` returns a
:class:`dlcore.sweep.StudyResult` (no histories, no parameters), so ``results.csv``, the report, its
plots and the catalog are the same. :func:`measure_seeds` runs a pure ``fn(key) -> metrics`` for
every seed as one vmapped program.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlcore import random as drandom
from dlcore.errors import ConfigError
from dlcore.status import DIVERGED, RUNNING
from dlcore.sweep._search import Budget, run_search
from dlcore.sweep._space import Space
from dlcore.sweep._study import Selection, StudyResult, _score, _select, study_plan

Measure = Callable[[Mapping[str, Any], Sequence[int]], Mapping[str, Any]]
"""``measure(point, seeds) -> {metric: [S]}``; metric names start with ``val/`` or ``test/``."""


def measure_seeds(fn: Callable[[jax.Array], Mapping[str, jax.Array]], seeds: Sequence[int]) -> dict[str, np.ndarray]:
    """``fn(root_key(seed)) -> {name: scalar}`` for every seed, as one jitted ``vmap``; ``[S]`` float64.

    >>> import jax
    >>> out = measure_seeds(lambda k: {"val/u": jax.random.uniform(k)}, [0, 1, 0])
    >>> out["val/u"].shape, bool(out["val/u"][0] == out["val/u"][2])
    ((3,), True)
    """
    keys = jnp.stack([drandom.root_key(int(s)) for s in seeds])
    out = jax.jit(jax.vmap(fn))(keys)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def _check_output(out, n_seeds: int, point) -> dict[str, np.ndarray]:
    if not isinstance(out, Mapping) or not out:
        raise ConfigError(f"measure(point={point}) returned {type(out).__name__}, not a dict of metrics; "
                          "return {'val/<metric>': [S] values, 'test/<metric>': …}")
    res = {}
    for k, v in out.items():
        if not isinstance(k, str) or not k.startswith(("val/", "test/")):
            raise ConfigError(f"measure returned metric {k!r}; name metrics 'val/<name>' (used for selection) "
                              "or 'test/<name>' (reported for the selected points)")
        a = np.asarray(v, np.float64)
        if a.shape != (n_seeds,):
            raise ConfigError(f"measure returned {k!r} with shape {a.shape}; give one value per seed ({n_seeds},)")
        res[k] = a
    return res


def run_measured_study(
    space: Space,
    measure: Measure,
    seeds: Sequence[int] | int | str,
    *,
    strategy: str = "grid",
    study_seed: int = 0,
    num_points: int = 0,
    refine: Mapping[str, Any] | None = None,
    budget: Budget = Budget(),
    selection: Selection = Selection(),
) -> StudyResult:
    """Run ``measure`` for every point of the search over ``space`` and every seed.

    Args:
      space: the axes (all of them are passed to ``measure``; none is vectorized by the engine).
      measure: ``measure(point, seeds) -> {"val/<m>": [S], "test/<m>": [S]}``.
      seeds: seeds of every point (points are compared paired by seed).
      strategy, study_seed, num_points, refine, budget: the search (as :func:`dlcore.sweep.run_study`;
        a point costs one step per seed in ``budget.max_steps``).
      selection: the validation metric that chooses the point(s); ``test/*`` is kept for those only.
    Returns:
      a :class:`StudyResult` with status ``diverged`` for runs whose validation metrics are not
      finite, empty histories and parameter hashes, and ``timing["programs"] = 0``.

    >>> from dlcore.sweep import Selection, space_from_spec
    >>> space = space_from_spec({"a": {"values": (1, 2, 3)}})
    >>> measure = lambda p, s: {"val/score": np.full(len(s), -abs(p["a"] - 2)), "test/a": np.full(len(s), p["a"])}
    >>> res = run_measured_study(space, measure, 3, selection=Selection(metric="val/score"))
    >>> res.selected, res.metrics["test/a"][1].tolist(), bool(np.isnan(res.metrics["test/a"][0]).all())
    ([1], [2.0, 2.0, 2.0], True)
    """
    t_start = time.perf_counter()
    seeds, selection, plan = study_plan(space, seeds, strategy, study_seed, num_points, refine, budget, selection)
    S = len(seeds)
    points: list[dict] = []
    stages: list[int] = []
    outs: list[dict[str, np.ndarray]] = []

    def evaluate(new_points: list[dict], stage: int) -> list[float]:
        scores = []
        for p in new_points:
            out = _check_output(measure(dict(p), list(seeds)), S, p)
            if selection.metric not in out:
                raise ConfigError(f"sweep.select.metric={selection.metric!r} is not measured; measured: "
                                  f"{', '.join(sorted(out))}")
            points.append(dict(p))
            stages.append(stage)
            outs.append(out)
            scores.append(_score(out[selection.metric], selection.statistic))
        return scores

    run_search(plan, evaluate, cost=lambda p: S, higher_is_better=selection.higher_is_better)
    P = len(points)
    keys = sorted({k for o in outs for k in o})
    metrics = {k: np.stack([o.get(k, np.full(S, np.nan)) for o in outs]) for k in keys}
    scores = np.asarray([_score(metrics[selection.metric][i], selection.statistic) for i in range(P)])
    selected = _select(scores, points, selection)
    for k in keys:  # the test split counts for the chosen point(s) only, as in a trained study
        if k.startswith("test/"):
            metrics[k][[i for i in range(P) if i not in selected]] = np.nan
    val = np.stack([metrics[k] for k in keys if k.startswith("val/")])
    status = np.where(np.isfinite(val).all(axis=0), RUNNING, DIVERGED).astype(np.int32)
    wall = time.perf_counter() - t_start
    timing = dict(wall_s=wall, compile_s=0.0, run_s=wall, steps_per_s=math.nan, programs=0)
    groups = [dict(structure={a.path: p[a.name] for a in space.axes}, points=[i], runs=S, chunks=1, chunk_size=S)
              for i, p in enumerate(points)]
    return StudyResult(space, seeds, selection, points, stages, metrics, status, np.full((P, S), -1, np.int32),
                       np.full((P, S), np.nan), [{} for _ in points], [[""] * S for _ in points], scores, selected,
                       groups, timing, None)
