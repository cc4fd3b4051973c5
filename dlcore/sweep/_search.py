"""Search strategies (the lectures' recipe): grid, random, coarse-to-fine refinement, and budgets.

* **grid** — every combination of the axes' grids (log-spaced for log axes);
* **random** — ``num_points`` points, log-uniform / uniform / uniform choice per axis, drawn from
  the *study seed* with :mod:`dlcore.random` (stream ``search/<axis name>``, step = the search
  stage): the same seed gives the same points on any machine, and adding an axis does not move
  the values drawn for the others;
* **refine** — "pick the best models found with the coarse grid, refine the grid around them":
  after a coarse stage (grid or random), each round takes the ``top_k`` best points (validation
  metric) and tries ``num`` values per numeric axis between each best value and halfway to its
  nearest tried neighbours (in log space for log axes), choices fixed at the best points' values;
* **budget** — ``max_points`` (points, not counting seeds) and ``max_steps`` (training steps
  summed over every run, i.e. points × seeds × steps). A first stage that does not fit is an
  error; refinement rounds stop when the budget is spent.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable, Mapping, NamedTuple, Sequence

import jax
import numpy as np

from dlcore import random as drandom
from dlcore.errors import ConfigError
from dlcore.sweep._space import Space, _clean

STRATEGIES = ("grid", "random", "refine")


class Budget(NamedTuple):
    """Study budget; 0 means unlimited.

    Attributes:
      max_points: most points (hyperparameter combinations) over all stages.
      max_steps: most training steps summed over all runs (points × seeds × steps per run).
    """

    max_points: int = 0
    max_steps: int = 0

    def check_first_stage(self, n_points: int, steps: int, what: str) -> None:
        """Raise :class:`ConfigError` if the first stage (``what``: ``n_points`` needing ``steps``
        training steps over all runs) does not fit."""
        if self.max_points and n_points > self.max_points:
            raise ConfigError(
                f"sweep.budget.max_points={self.max_points} is smaller than the {what} ({n_points} points); "
                f"raise sweep.budget.max_points to at least {n_points} or shrink sweep.axes"
            )
        if self.max_steps and steps > self.max_steps:
            raise ConfigError(
                f"sweep.budget.max_steps={self.max_steps} is smaller than the {what}, which needs {steps} "
                f"training steps ({n_points} points × seeds × steps); raise sweep.budget.max_steps, use fewer "
                "seeds or steps, or shrink sweep.axes"
            )

    def fitting(self, costs: Sequence[int], used_points: int, used_steps: int) -> int:
        """How many of the next points (with these step ``costs``, in order) still fit."""
        n = 0
        for c in costs:
            if self.max_points and used_points + n + 1 > self.max_points:
                break
            if self.max_steps and used_steps + c > self.max_steps:
                break
            used_steps += c
            n += 1
        return n


def grid_points(space: Space) -> list[dict]:
    """Every combination of the axes' grid values (see :meth:`Space.grid_points`).

    >>> from dlcore.sweep import space_from_spec
    >>> grid_points(space_from_spec({"lr": {"scale": "log", "low": 1e-3, "high": 1e-2, "steps": "1-3"}}))
    [{'lr': 0.001}, {'lr': 0.003}, {'lr': 0.01}]
    """
    return space.grid_points()


def random_points(space: Space, num_points: int, study_seed: int, stage: int = 0) -> list[dict]:
    """``num_points`` random points keyed by ``study_seed`` (deterministic on any machine).

    Axis ``a``'s draws are ``uniform(key(study_seed, "search/a", stage), [num_points])`` mapped by
    :meth:`Axis.sample` (log-uniform, uniform or choice).

    >>> from dlcore.sweep import space_from_spec
    >>> s = space_from_spec({"lr": {"scale": "log", "low": 1e-4, "high": 1e-1}})
    >>> random_points(s, 3, study_seed=0) == random_points(s, 3, study_seed=0)
    True
    """
    if not isinstance(num_points, (int, np.integer)) or num_points < 1:
        raise ConfigError(f"sweep.num_points must be a positive integer for random search, got {num_points!r}")
    cols = {}
    for a in space.axes:
        k = drandom.key(int(study_seed), f"search/{a.name}", int(stage))
        u = np.asarray(jax.random.uniform(k, (int(num_points),)), dtype=np.float64)
        cols[a.name] = a.sample(u)
    return [{n: cols[n][i] for n in space.names} for i in range(int(num_points))]


def _point_key(point: Mapping, names: Sequence[str]) -> tuple:
    # Two points are the same run when their values agree after float32 rounding (the train state
    # holds float32 hyperparameters).
    out = []
    for n in names:
        v = point[n]
        out.append(float(np.float32(v)) if isinstance(v, float) else repr(v))
    return tuple(out)


def _neighbour_values(axis, best: float, tried: Sequence[float], num: int) -> list[float]:
    """``num`` values from halfway-to-the-lower-neighbour to halfway-to-the-upper-neighbour of ``best``."""
    f = (lambda v: math.log(v)) if axis.log else (lambda v: v)
    g = (lambda t: math.exp(t)) if axis.log else (lambda t: t)
    c = f(best)
    others = sorted({f(float(t)) for t in tried if float(t) != best and (not axis.log or float(t) > 0)})
    below = [t for t in others if t < c]
    above = [t for t in others if t > c]
    half_lo = (c - below[-1]) / 2 if below else None
    half_hi = (above[0] - c) / 2 if above else None
    if half_lo is None and half_hi is None:
        return [best]
    half_lo = half_hi if half_lo is None else half_lo
    half_hi = half_lo if half_hi is None else half_hi
    ts = np.linspace(c - half_lo, c + half_hi, num) if num > 1 else np.asarray([c])
    vals = []
    for t in ts:
        v = g(float(t))
        if axis.low is not None:
            v = min(max(v, axis.low), axis.high)  # stay inside the declared range
        vals.append(int(round(v)) if axis.integer else _clean(v))
    return list(dict.fromkeys(vals))


def refine_points(
    space: Space,
    tried: Sequence[Mapping],
    scores: Sequence[float],
    *,
    top_k: int = 1,
    num: int = 3,
    higher_is_better: bool = True,
) -> list[dict]:
    """New points around the ``top_k`` best of ``tried`` (by ``scores``, one per tried point).

    For each best point and each numeric axis, ``num`` values spanning from halfway to the nearest
    tried value below to halfway to the nearest tried value above (log space for log axes; clipped
    to the axis' bounds); choice axes keep the best point's value. Points already tried are left
    out; the order is best-centre first, so a budget cut keeps the most promising.

    >>> from dlcore.sweep import space_from_spec
    >>> s = space_from_spec({"lr": {"scale": "log", "low": 1e-3, "high": 1e-1, "num": 3}})
    >>> refine_points(s, [{"lr": 1e-3}, {"lr": 1e-2}, {"lr": 1e-1}], [0.5, 0.9, 0.2], num=3)
    [{'lr': 0.00316227766017}, {'lr': 0.0316227766017}]
    """
    if len(tried) != len(scores):
        raise ValueError(f"{len(tried)} tried points but {len(scores)} scores")
    if not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"sweep.refine.top_k must be a positive integer, got {top_k!r}")
    if not isinstance(num, int) or num < 2:
        raise ConfigError(f"sweep.refine.num must be an integer ≥ 2 (values per axis around the best), got {num!r}")
    s = np.asarray(scores, dtype=np.float64)
    s = np.where(np.isfinite(s), s, -np.inf if higher_is_better else np.inf)
    order = np.argsort(-s if higher_is_better else s, kind="stable")[:top_k]
    seen = {_point_key(p, space.names) for p in tried}
    out = []
    for i in order:
        best = tried[int(i)]
        per_axis = []
        for a in space.axes:
            if a.numeric and a.scale != "choice":
                per_axis.append(_neighbour_values(a, float(best[a.name]), [p[a.name] for p in tried], num))
            else:
                per_axis.append([best[a.name]])
        for combo in itertools.product(*per_axis):
            p = dict(zip(space.names, combo))
            k = _point_key(p, space.names)
            if k not in seen:
                seen.add(k)
                out.append(p)
    return out


class SearchPlan(NamedTuple):
    """A validated search: strategy, its options and the budget (see :func:`search_plan`)."""

    strategy: str
    space: Space
    study_seed: int
    num_points: int
    rounds: int
    top_k: int
    num: int
    budget: Budget
    start: str


def search_plan(
    space: Space,
    strategy: str = "grid",
    *,
    study_seed: int = 0,
    num_points: int = 0,
    rounds: int = 1,
    top_k: int = 1,
    num: int = 3,
    start: str = "grid",
    budget: Budget = Budget(),
) -> SearchPlan:
    """Validate a search's options (errors name the ``sweep.*`` field) and return the plan."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"sweep.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    for name, v in (("budget.max_points", budget.max_points), ("budget.max_steps", budget.max_steps),
                    ("study_seed", study_seed), ("num_points", num_points)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise ConfigError(f"sweep.{name} must be a non-negative integer (0 = unlimited/default), got {v!r}")
    first = start if strategy == "refine" else strategy
    if first not in ("grid", "random"):
        raise ConfigError(f"sweep.refine.start must be 'grid' or 'random', got {start!r}")
    if first == "random" and not num_points:
        if not budget.max_points:
            raise ConfigError("random search needs sweep.num_points (or sweep.budget.max_points) > 0")
        num_points = budget.max_points if strategy == "random" else max(1, budget.max_points // 2)
    if strategy == "refine":
        if not isinstance(rounds, int) or rounds < 1:
            raise ConfigError(f"sweep.refine.rounds must be a positive integer, got {rounds!r}")
        if not isinstance(top_k, int) or top_k < 1:
            raise ConfigError(f"sweep.refine.top_k must be a positive integer, got {top_k!r}")
        if not isinstance(num, int) or num < 2:
            raise ConfigError(f"sweep.refine.num must be an integer ≥ 2, got {num!r}")
    return SearchPlan(strategy, space, int(study_seed), int(num_points), int(rounds), int(top_k), int(num),
                      budget, first)


def first_stage(plan: SearchPlan, cost: Callable[[dict], int]) -> list[dict]:
    """The first stage's points (grid or random), checked against the budget."""
    if plan.start == "grid":
        pts = grid_points(plan.space)
        shape = " × ".join(f"{a.name} {n}" for a, n in zip(plan.space.axes, plan.space.grid_shape()))
        what = f"grid ({shape})"
    else:
        pts = random_points(plan.space, plan.num_points, plan.study_seed, stage=0)
        what = f"random search (sweep.num_points={plan.num_points})"
    plan.budget.check_first_stage(len(pts), sum(cost(p) for p in pts), what)
    return pts


def run_search(
    plan: SearchPlan,
    evaluate: Callable[[list[dict], int], Sequence[float]],
    *,
    cost: Callable[[dict], int],
    higher_is_better: bool = True,
) -> list[tuple[int, dict]]:
    """Drive a search: ``evaluate(points, stage) -> scores`` runs a stage and scores its points.

    Args:
      plan: from :func:`search_plan`.
      evaluate: runs the points (all seeds) and returns one selection score per point.
      cost: training steps of one point over all its seeds (for ``budget.max_steps``).
      higher_is_better: direction of the scores.
    Returns:
      ``[(stage, point), …]`` for every point run, in order.
    """
    pts = first_stage(plan, cost)
    done: list[tuple[int, dict]] = [(0, p) for p in pts]
    scores = list(evaluate(pts, 0))
    used_steps = sum(cost(p) for p in pts)
    if plan.strategy != "refine":
        return done
    for stage in range(1, plan.rounds + 1):
        tried = [p for _, p in done]
        new = refine_points(plan.space, tried, scores, top_k=plan.top_k, num=plan.num,
                            higher_is_better=higher_is_better)
        costs = [cost(p) for p in new]
        n = plan.budget.fitting(costs, len(done), used_steps)
        new = new[:n]
        if not new:
            break  # the budget is spent or nothing new is left to try around the best points
        done.extend((stage, p) for p in new)
        scores.extend(evaluate(new, stage))
        used_steps += sum(costs[:n])
    return done
