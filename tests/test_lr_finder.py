"""Learning-rate finder and the lectures' "drop the loss within 100 iterations" check."""

import math

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.nn import MLP
from dlcore.optim import optimizer_fn
from dlcore.train import lr_drop_check, lr_find
from dlcore.train._lr_finder import _analyse
from dlcore.plots import plot_lr_finder
from dlcore.train import Recipe


def recipe(opt="sgd"):
    return Recipe(MLP(widths=(16,), num_outputs=3), optimizer_fn(opt))


def test_suggestion_on_a_constructed_curve():
    # Flat until 1e-3, falling fastest around 1e-2, blowing up from 1.0.
    lrs = np.logspace(-5, 1, 121)
    x = np.log10(lrs)
    loss = 2.0 - 1.5 / (1 + np.exp(-4 * (x + 2))) + np.where(x > 0, 100 * x**2, 0.0)
    res = _analyse(lrs, loss, beta=0.0, diverge_factor=4.0)
    assert 5e-3 < res.suggestion < 2e-2, res.suggestion
    assert res.lr_at_min < 1.5 and lrs[res.diverged_at] > 1.0
    np.testing.assert_allclose(res.smoothed, loss)  # beta = 0: no smoothing


def test_lr_find_on_tiny_mlp(tiny_data, tmp_path):
    res = lr_find(recipe(), tiny_data, 0, batch_size=32, min_lr=1e-4, max_lr=100.0, num_steps=60)
    # Exponentially spaced rates from min_lr to max_lr.
    np.testing.assert_allclose(res.learning_rates[[0, -1]], [1e-4, 100.0], rtol=1e-6)
    np.testing.assert_allclose(np.diff(np.log(res.learning_rates)), np.log(1e6) / 59, rtol=1e-6)
    # An untrained 3-class classifier starts near log(3); the loss falls as the rate grows.
    assert abs(res.losses[0] - math.log(3)) < 0.5
    assert res.smoothed.min() < 0.5 * res.smoothed[0]
    assert 1e-4 < res.suggestion < res.lr_at_min <= 100.0
    # The suggested rate trains: a short run at it lowers the loss well below log(3).
    check = lr_drop_check(recipe(), tiny_data, 0, batch_size=32, learning_rates=[res.suggestion], num_steps=50)
    assert check.dropped[0]
    fig = plot_lr_finder(res, str(tmp_path / "lr.png"))
    assert (tmp_path / "lr.png").stat().st_size > 1000 and fig is not None


def test_lectures_100_iteration_check(tiny_data):
    res = lr_drop_check(recipe("sgd"), tiny_data, 0, batch_size=32)  # 1e-1 .. 1e-4, 100 iterations
    assert res.losses.shape == (4, 100)
    # Same seed and batches: every rate starts from the same loss, about log(C).
    np.testing.assert_array_equal(res.initial_loss, res.initial_loss[0])
    assert res.expected_initial_loss == pytest.approx(math.log(3))
    assert abs(res.initial_loss[0] - res.expected_initial_loss) < 0.5
    # With SGD on this problem 0.1 and 0.01 drop the loss within 100 steps; 1e-4 does not.
    np.testing.assert_array_equal(res.dropped, [True, True, False, False])
    assert res.best == pytest.approx(0.1)
    assert not res.diverged.any()


def test_bad_input(tiny_data):
    with pytest.raises(ConfigError, match="positive"):
        lr_find(recipe(), tiny_data, batch_size=32, min_lr=-1e-3)
    with pytest.raises(ConfigError, match="larger than min_lr"):
        lr_find(recipe(), tiny_data, batch_size=32, min_lr=1.0, max_lr=0.1)
    with pytest.raises(ConfigError, match="positive"):
        lr_drop_check(recipe(), tiny_data, batch_size=32, learning_rates=[0.1, -0.01])
