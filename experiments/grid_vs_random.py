"""Grid vs random search at equal budget: random finds better points when few hyperparameters matter.

The lectures (Bergstra & Bengio 2012): with a budget of 9 trials over two hyperparameters, a 3 × 3
grid tries only 3 distinct values of each; 9 random points try 9 distinct values of each. When only
one of the two matters, the grid wastes 6 of its 9 trials repeating the same 3 values of the one
that counts, so random search gets closer to the optimum. When both matter the advantage shrinks.

Each seed is one search problem: two hyperparameters ``u1, u2`` in [0, 1] (the search space is a
``dlcore.sweep`` space of two linear axes; the grid is ``dlcore.sweep.grid_points`` with ``num = √budget``
values per axis — ``np.linspace``, bounds included — and the random points are
``dlcore.sweep.random_points`` with the seed as the study seed, exactly what ``sweep.strategy``
grid/random would run), and a score with its optimum ``c`` drawn uniformly from the box
(``dlcore.random.key(seed, "objective")``): score = exp(−Σ_{i important} (u_i − c_i)² / (2·0.1²)),
1 at the optimum. ``important`` = 1: only ``u1`` matters (``u2`` has no effect); 2: both do.
Per (strategy, important): ``val/best`` (the best score the search found), ``test/regret`` (1 − best)
and ``test/distance_u1`` (how close the nearest tried ``u1`` came to ``c1``). The score is a known
function, not a trained network, so that thousands of searches cost nothing and the geometry of the
claim is isolated; what it does not show is how often real problems have few important
hyperparameters. A measured study (``measure`` below). Run:

    dlcore run grid_vs_random
    dlcore report runs/grid_vs_random/<timestamp>

Larger budget: dlcore run grid_vs_random --config.budget=25 (a square: the grid is √budget per axis);
sharper optimum: --config.width=0.03; more problems: --config.sweep.seeds=256
"""

import math

import ml_collections
import numpy as np

from _base import study


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict(dict(strategy="grid", important=1, budget=9, width=0.1))
    c.sweep = study(
        dict(strategy=dict(path="strategy", values=("grid", "random")),
             important=dict(path="important", values=(1, 2), integer=True)),
        seeds=64,  # 64 search problems: a measurement costs milliseconds
        select=dict(metric="val/best", mode="max", group_by=("strategy", "important")),  # every point is reported
    )
    c.claim = dict(
        text="At an equal budget of 9 trials, random search finds a better point than a 3 × 3 grid when only one "
             "of two hyperparameters matters",
        checks=("test/regret: strategy=random important=1 < strategy=grid important=1",),
    )
    return c


def measure(config, seeds):
    import jax

    from dlcore import random as drandom
    from dlcore.errors import ConfigError
    from dlcore.sweep import grid_points, random_points, space_from_spec

    budget, important, width = int(config.budget), int(config.important), float(config.width)
    side = math.isqrt(budget)
    if side * side != budget or budget < 1:
        raise ConfigError(f"config.budget={budget} must be a square (9, 16, 25, …): the grid has √budget values "
                          "per hyperparameter")
    if important not in (1, 2):
        raise ConfigError(f"config.important must be 1 or 2, got {important!r}")
    space = space_from_spec({n: dict(path=n, scale="linear", low=0.0, high=1.0, num=side) for n in ("u1", "u2")})
    out = {"val/best": [], "test/regret": [], "test/distance_u1": []}
    for s in seeds:
        if config.strategy == "grid":
            pts = grid_points(space)
        elif config.strategy == "random":
            pts = random_points(space, budget, study_seed=int(s))
        else:
            raise ConfigError(f"config.strategy must be 'grid' or 'random', got {config.strategy!r}")
        u = np.asarray([[p["u1"], p["u2"]] for p in pts], np.float64)  # [budget, 2]
        c = np.asarray(jax.random.uniform(drandom.key(int(s), "objective"), (2,)), np.float64)
        score = np.exp(-np.sum((u[:, :important] - c[:important]) ** 2, axis=1) / (2 * width**2))
        out["val/best"].append(score.max())
        out["test/regret"].append(1.0 - score.max())
        out["test/distance_u1"].append(np.abs(u[:, 0] - c[0]).min())
    return {k: np.asarray(v, np.float64) for k, v in out.items()}
