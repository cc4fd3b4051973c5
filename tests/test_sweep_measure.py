"""Measured studies (dlcore.sweep._measure): runs that are a function returning metrics."""

import jax
import numpy as np
import pytest

from dlcore import random as drandom
from dlcore.errors import ConfigError
from dlcore.sweep import (
    Budget,
    Selection,
    measure_seeds,
    random_points,
    run_measured_study,
    space_from_spec,
    study_rows,
)


def test_measure_seeds_is_fn_of_each_seeds_root_key():
    fn = lambda k: {"val/u": jax.random.uniform(k), "test/n": jax.random.normal(k)}  # noqa: E731
    out = measure_seeds(fn, [3, 1, 7])
    for i, s in enumerate([3, 1, 7]):
        alone = fn(drandom.root_key(s))
        np.testing.assert_allclose(out["val/u"][i], float(alone["val/u"]), rtol=1e-6)
        np.testing.assert_allclose(out["test/n"][i], float(alone["test/n"]), rtol=1e-6)
    assert out["val/u"].dtype == np.float64 and len(set(out["val/u"].tolist())) == 3


def _quadratic(calls):
    """val/score peaks at x = 0.3; test/x echoes the point; seeds shift the score by a known amount."""
    def measure(point, seeds):
        calls.append((dict(point), list(seeds)))
        s = np.asarray(seeds, np.float64)
        return {"val/score": -(point["x"] - 0.3) ** 2 + 1e-3 * s, "test/x": np.full(len(s), point["x"])}
    return measure


def test_grid_selection_and_test_kept_for_the_chosen_point_only():
    calls = []
    space = space_from_spec({"x": {"values": (0.0, 0.2, 0.4, 0.6)}})
    res = run_measured_study(space, _quadratic(calls), [0, 1, 2], selection=Selection(metric="val/score"))
    assert [c[0]["x"] for c in calls] == [0.0, 0.2, 0.4, 0.6] and all(c[1] == [0, 1, 2] for c in calls)
    assert res.selected == [1]  # 0.2 and 0.4 tie at distance 0.1: the first wins
    np.testing.assert_allclose(res.metrics["val/score"][3], -0.09 + 1e-3 * np.arange(3))
    np.testing.assert_array_equal(res.metrics["test/x"][1], 0.2)
    assert np.isnan(res.metrics["test/x"][[0, 2, 3]]).all()
    np.testing.assert_allclose(res.scores, [-0.089, -0.009, -0.009, -0.089])
    rows = study_rows(res)
    assert len(rows) == 12 and {r["status"] for r in rows} == {"ok"}
    assert [r["test/x"] for r in rows if r["point"] == 1] == [0.2] * 3 and rows[0]["test/x"] == ""


def test_group_by_reports_every_group_and_min_mode():
    space = space_from_spec({"a": {"path": "a", "values": ("p", "q")}, "x": {"values": (0.1, 0.5)}})

    def measure(point, seeds):
        return {"val/loss": np.full(len(seeds), point["x"] + (point["a"] == "q")), "test/loss": np.zeros(len(seeds))}

    res = run_measured_study(space, measure, 2, selection=Selection(metric="val/loss", group_by=("a",)))
    chosen = [res.points[i] for i in res.selected]
    assert chosen == [{"a": "p", "x": 0.1}, {"a": "q", "x": 0.1}]


def test_random_and_refine_strategies_measure_the_planned_points():
    space = space_from_spec({"x": {"scale": "linear", "low": 0.0, "high": 1.0}})
    calls = []
    res = run_measured_study(space, _quadratic(calls), 2, strategy="random", num_points=5, study_seed=4,
                             selection=Selection(metric="val/score"))
    assert res.points == random_points(space, 5, study_seed=4)
    calls = []
    res = run_measured_study(space_from_spec({"x": {"scale": "linear", "low": 0.0, "high": 1.0, "num": 3}}),
                             _quadratic(calls), 2, strategy="refine", refine=dict(rounds=2, num=3),
                             budget=Budget(max_points=7), selection=Selection(metric="val/score"))
    assert set(res.stages) == {0, 1, 2} and len(res.points) == 7
    best = res.points[res.selected[0]]["x"]
    assert abs(best - 0.3) < abs(0.5 - 0.3)  # refinement moved towards the optimum from the grid's 0.5


def test_non_finite_validation_marks_the_run_diverged():
    space = space_from_spec({"x": {"values": (1, 2)}})
    res = run_measured_study(space, lambda p, s: {"val/accuracy": np.asarray([np.nan, 0.5]) * p["x"]}, [0, 1])
    assert res.status.tolist() == [[2, 0], [2, 0]]


@pytest.mark.parametrize("out, match", [
    ({"accuracy": np.zeros(2)}, "name metrics 'val/<name>'"),
    ({"val/accuracy": np.zeros(3)}, r"shape \(3,\); give one value per seed \(2,\)"),
    ([1, 2], "not a dict of metrics"),
    ({"val/other": np.zeros(2)}, "sweep.select.metric='val/accuracy' is not measured; measured: val/other"),
])
def test_bad_measure_output_is_a_config_error(out, match):
    with pytest.raises(ConfigError, match=match):
        run_measured_study(space_from_spec({"x": {"values": (1,)}}), lambda p, s: out, 2)
