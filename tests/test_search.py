"""Search spaces and strategies: grids as the lectures specify, keyed random search, refinement,
budgets, chunk planning, and clear errors naming the bad field (no training here)."""

import jax
import numpy as np
import pytest
import scipy.stats

from dlcore import random as drandom
from dlcore.errors import ConfigError
from dlcore.sweep import (
    Budget,
    Selection,
    axis_from_spec,
    check_selection,
    grid_points,
    plan_chunks,
    random_points,
    refine_points,
    run_search,
    search_plan,
    space_from_spec,
)

LR = {"scale": "log", "low": 1e-4, "high": 1e-1}


def test_log_grids_are_the_lectures_values():
    # "to cover [0.001, 0.01]: [0.001, 0.003, 0.01] with three values, [0.001, 0.002, 0.005, 0.01] with four"
    assert axis_from_spec("lr", dict(LR, low=1e-3, high=1e-2, steps="1-3")).grid() == (0.001, 0.003, 0.01)
    assert axis_from_spec("lr", dict(LR, low=1e-3, high=1e-2, steps="1-3-10")).grid() == (0.001, 0.003, 0.01)
    assert axis_from_spec("lr", dict(LR, low=1e-3, high=1e-2, steps="1-2-5")).grid() == (0.001, 0.002, 0.005, 0.01)
    assert axis_from_spec("lr", dict(LR, low=1e-4, high=1e-1, steps="1-3")).grid() == (
        1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    # Bounds between decades keep only the values inside them.
    assert axis_from_spec("lr", dict(LR, low=2e-4, high=0.5, steps="1-3")).grid() == (
        3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)


def test_evenly_log_spaced_grid():
    v = np.asarray(axis_from_spec("lr", dict(LR, low=1e-3, high=1e-1, num=5)).grid())
    assert v[0] == 1e-3 and v[-1] == 1e-1 and v.size == 5
    np.testing.assert_allclose(np.diff(np.log10(v)), 0.5, rtol=1e-9)  # equal steps in log space
    np.testing.assert_allclose(v, np.geomspace(1e-3, 1e-1, 5), rtol=1e-11)
    lin = axis_from_spec("d", {"scale": "linear", "low": 0.0, "high": 0.5, "num": 6}).grid()
    assert lin == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
    ints = axis_from_spec("depth", {"path": "model.depth", "scale": "linear", "low": 1, "high": 4, "num": 4,
                                    "integer": True}).grid()
    assert ints == (1, 2, 3, 4) and all(isinstance(i, int) for i in ints)


def test_grid_is_the_cartesian_product_first_axis_slowest():
    s = space_from_spec({"lr": dict(LR, low=1e-3, high=1e-2, steps="1-3"),
                         "norm": {"path": "model.norm", "values": ("none", "batch")}})
    pts = grid_points(s)
    assert len(pts) == 6 and pts[0] == {"lr": 0.001, "norm": "none"} and pts[1] == {"lr": 0.001, "norm": "batch"}
    assert [a.name for a in s.vectorized()] == ["lr"] and [a.name for a in s.structural()] == ["norm"]
    assert s["lr"].path == "hparams.lr" and s["lr"].log and not s["norm"].log


def test_random_search_deterministic_and_keyed_by_study_seed():
    s = space_from_spec({"learning_rate": LR, "dropout_rate": {"scale": "linear", "low": 0.0, "high": 0.5},
                         "norm": {"path": "model.norm", "values": ("none", "batch", "layer")}})
    a, b, c = random_points(s, 50, 7), random_points(s, 50, 7), random_points(s, 50, 8)
    assert a == b and a != c
    lr = np.asarray([p["learning_rate"] for p in a])
    assert lr.min() >= 1e-4 and lr.max() <= 1e-1
    assert {p["norm"] for p in a} == {"none", "batch", "layer"}
    # The draws are dlcore.random's: key(study_seed, "search/<axis>", stage), uniform, then log-uniform.
    u = np.asarray(jax.random.uniform(drandom.key(7, "search/learning_rate", 0), (50,)), np.float64)
    np.testing.assert_allclose(lr, np.exp(np.log(1e-4) + u * (np.log(1e-1) - np.log(1e-4))), rtol=1e-11)
    # Adding an axis leaves the other axes' draws unchanged (one stream per axis name).
    s2 = space_from_spec({"learning_rate": LR})
    assert [p["learning_rate"] for p in random_points(s2, 50, 7)] == lr.tolist()
    # A later stage draws new values.
    assert random_points(s2, 5, 7, stage=1) != random_points(s2, 5, 7, stage=0)


def test_random_search_log_uniform_and_uniform_distributions():
    s = space_from_spec({"lr": LR, "d": {"scale": "linear", "low": 0.0, "high": 0.5}})
    pts = random_points(s, 2000, 0)
    u_log = (np.log([p["lr"] for p in pts]) - np.log(1e-4)) / (np.log(1e-1) - np.log(1e-4))
    u_lin = np.asarray([p["d"] for p in pts]) / 0.5
    assert scipy.stats.kstest(u_log, "uniform").pvalue > 1e-3  # uniform in log space
    assert scipy.stats.kstest(u_lin, "uniform").pvalue > 1e-3
    assert np.mean(np.asarray([p["lr"] for p in pts]) < 1e-3) == pytest.approx(1 / 3, abs=0.05)  # 1 of 3 decades


def test_refine_zooms_halfway_to_the_neighbours():
    s = space_from_spec({"lr": dict(LR, low=1e-3, high=1e-1, num=3),
                         "norm": {"path": "model.norm", "values": ("none", "batch")}})
    tried = grid_points(s)  # lr 1e-3, 1e-2, 1e-1 × none, batch
    scores = [0.5, 0.4, 0.9, 0.6, 0.2, 0.1]  # best: lr 1e-2, none
    new = refine_points(s, tried, scores, top_k=1, num=3)
    assert [p["norm"] for p in new] == ["none", "none"]  # choices stay at the best point's value
    np.testing.assert_allclose([p["lr"] for p in new], [10 ** -2.5, 10 ** -1.5], rtol=1e-9)  # 1e-2 itself is done
    # Second round: the neighbours are now closer, so the zoom is finer.
    tried2 = tried + new
    new2 = refine_points(s, tried2, scores + [0.95, 0.3], top_k=1, num=3)
    np.testing.assert_allclose([p["lr"] for p in new2], [10 ** -2.75, 10 ** -2.25], rtol=1e-9)
    # top_k=2 refines around the two best; a best point at the edge stays inside the bounds.
    edge = refine_points(s, tried, [0.1, 0.1, 0.2, 0.2, 0.9, 0.3], top_k=1, num=3)
    assert max(p["lr"] for p in edge) <= 1e-1
    assert len(refine_points(s, tried, scores, top_k=2, num=3)) == 4
    # Lower is better: the minimum is refined.
    low = refine_points(s, tried, scores, top_k=1, num=3, higher_is_better=False)
    assert {p["norm"] for p in low} == {"batch"}


def test_run_search_refine_respects_budget():
    s = space_from_spec({"lr": dict(LR, low=1e-3, high=1e-1, num=3)})
    calls = []

    def evaluate(points, stage):
        calls.append((stage, len(points)))
        return [-abs(np.log10(p["lr"]) + 2.2) for p in points]  # best near 10^-2.2

    plan = search_plan(s, "refine", rounds=3, num=3, budget=Budget(max_points=6))
    done = run_search(plan, evaluate, cost=lambda p: 10)
    assert len(done) == 6 and calls[0] == (0, 3)
    assert [st for st, _ in done] == [0, 0, 0, 1, 1, 2]  # the third round was cut by the budget
    # max_steps counts every run's steps: 3 grid points × 10 = 30, then one more point fits in 45.
    done = run_search(search_plan(s, "refine", rounds=2, budget=Budget(max_steps=45)), evaluate, cost=lambda p: 10)
    assert len(done) == 4


def test_budget_smaller_than_grid_is_an_error():
    s = space_from_spec({"lr": dict(LR, steps="1-3")})  # 7 values
    with pytest.raises(ConfigError, match=r"sweep.budget.max_points=4 is smaller than the grid \(lr 7\) \(7 points\)"):
        run_search(search_plan(s, "grid", budget=Budget(max_points=4)), lambda p, st: [0.0] * len(p), cost=lambda p: 1)
    with pytest.raises(ConfigError, match="sweep.budget.max_steps=100 .* needs 700 training steps"):
        run_search(search_plan(s, "grid", budget=Budget(max_steps=100)), lambda p, st: [0.0] * len(p),
                   cost=lambda p: 100)
    with pytest.raises(ConfigError, match="random search needs sweep.num_points"):
        search_plan(s, "random")
    assert search_plan(s, "random", budget=Budget(max_points=5)).num_points == 5


@pytest.mark.parametrize(
    "axes,match",
    [
        ({}, "sweep.axes is empty"),
        (None, "sweep.axes is empty"),
        ({"lr": {"scale": "log", "low": 0.0, "high": 1e-1, "num": 3}}, r"sweep.axes.lr.low must be > 0 on a log axis"),
        ({"lr": {"scale": "log", "low": -1e-3, "high": 1e-1}}, r"sweep.axes.lr.low must be > 0"),
        ({"lr": {"scale": "log", "low": 1e-3, "high": -1.0}}, r"sweep.axes.lr.high must be > 0"),
        ({"lr": {"scale": "log", "low": 1e-1, "high": 1e-3, "num": 3}}, r"sweep.axes.lr: need low < high"),
        ({"lr": {"scale": "log", "low": 1e-3, "high": 1e-1, "num": 0}}, r"sweep.axes.lr.num must be a positive"),
        ({"lr": {"scale": "log", "low": 1e-3, "high": 1e-1, "steps": "2-4"}}, r"sweep.axes.lr.steps"),
        ({"lr": {"scale": "cubic", "low": 1e-3, "high": 1e-1}}, r"sweep.axes.lr.scale must be one of"),
        ({"lr": {"values": ()}}, r"sweep.axes.lr.values is empty"),
        ({"lr": {"values": (0.1, 0.1)}}, r"sweep.axes.lr.values repeats"),
        ({"lr": {"scale": "log", "values": (0.0, 0.1)}}, r"sweep.axes.lr.values must be > 0 on a log axis"),
        ({"lr": {"low": 1e-3, "high": 1e-1}}, r"sweep.axes.lr: give values"),
        ({"lr": {"scale": "log", "low": 1e-3, "hihg": 1e-1}}, r"sweep.axes.lr: unknown field 'hihg'"),
        ({"norm": {"values": ("none", "batch")}}, r"sweep.axes.norm: hyperparameters under hparams are numeric"),
        ({"seed": {"values": (1, 2)}}, r"sweep.axes.seed: 'seed' is a reserved column"),
        ({"a": {"path": "hparams.lr", "values": (1.0,)}, "b": {"path": "hparams.lr", "values": (2.0,)}},
         "two axes set the same config value 'hparams.lr'"),
    ],
)
def test_bad_axes_name_the_field(axes, match):
    with pytest.raises(ConfigError, match=match):
        space_from_spec(axes)


def test_grid_without_num_or_steps_names_the_field():
    with pytest.raises(ConfigError, match=r"sweep.axes.lr: a grid needs num"):
        grid_points(space_from_spec({"lr": LR}))


def test_selection_must_use_validation():
    s = space_from_spec({"lr": dict(LR, num=2)})
    with pytest.raises(ConfigError, match=r"sweep.select.metric='test/accuracy' .*validation.* evaluated once"):
        check_selection(Selection(metric="test/accuracy"), s)
    with pytest.raises(ConfigError, match=r"sweep.select.group_by names 'norm'"):
        check_selection(Selection(group_by=("norm",)), s)
    with pytest.raises(ConfigError, match=r"sweep.select.mode"):
        check_selection(Selection(mode="best"), s)
    assert not Selection(metric="val/loss").higher_is_better and Selection().higher_is_better
    with pytest.raises(ConfigError, match="sweep.strategy must be one of grid, random, refine"):
        search_plan(s, "bayes")


def test_plan_chunks():
    assert plan_chunks(15, 0, 2) == (16, 1)  # padded so both devices work
    assert plan_chunks(32, 8, 2) == (8, 4)
    assert plan_chunks(10, 4, 1) == (4, 3)
    assert plan_chunks(9, 5, 2) == (4, 3)  # 5 would not split over 2 devices: 4 per chunk
    assert plan_chunks(1, 0, 2) == (1, 1)
    for runs, mp, nd in [(7, 3, 2), (100, 16, 4), (5, 0, 1), (33, 10, 2)]:
        size, n = plan_chunks(runs, mp, nd)
        assert size * n >= runs and size * (n - 1) < runs and (mp == 0 or size <= mp)
    with pytest.raises(ConfigError, match="sweep.max_parallel"):
        plan_chunks(4, -1, 1)
