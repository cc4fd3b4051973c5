"""Timings: consistent figures and the slow-step warning."""

import numpy as np
import pytest

import dlcore.train._fit as fit_mod
from dlcore.diagnostics import time_recipe
from dlcore.nn import MLP
from dlcore.optim import optimizer_fn
from dlcore.train import Recipe, fit

R = Recipe(MLP(widths=(8,), num_outputs=3), optimizer_fn("adam"))


def test_report_is_consistent(tiny_data):
    rep = time_recipe(R, tiny_data, hparams={"learning_rate": 1e-2}, batch_size=32, num_steps=1000, probe_steps=20)
    assert rep.compile_s > 0 and rep.step_s > 0 and 0 < rep.data_s
    assert rep.compute_s == pytest.approx(max(rep.step_s - rep.data_s, 0))
    assert rep.steps_per_s == pytest.approx(1 / rep.step_s)
    assert rep.examples_per_s == pytest.approx(32 / rep.step_s)
    assert rep.estimated_total_s == pytest.approx(rep.compile_s + 1000 * rep.step_s)
    assert "steps/s" in str(rep)


def test_fit_timing_and_slow_step_warning(tiny_data, monkeypatch):
    monkeypatch.setattr(fit_mod, "SLOW_STEP_S", 0.0)
    with pytest.warns(RuntimeWarning, match="a training step takes"):
        res = fit(R, tiny_data, 0, hparams={"learning_rate": 1e-2}, num_steps=20, batch_size=32, eval_every=10,
                  progress=False)
    t = res.timing
    assert t["compile_s"] > 0 and t["run_s"] > 0 and t["steps_per_s"] == pytest.approx(20 / t["run_s"])


def test_step_seconds_one_compile_one_figure_per_seed(tiny_data):
    from dlcore.diagnostics import step_seconds

    s = step_seconds(R, tiny_data, hparams={"learning_rate": 1e-2}, batch_size=32, seeds=[0, 1, 2], probe_steps=5)
    assert s.shape == (3,) and np.all((s > 0) & (s < 1.0))
