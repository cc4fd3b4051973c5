"""Plots: files written with the expected panels; the CI band is the t interval."""

import numpy as np
import pytest
import scipy.stats

from dlcore.plots import plot_confusion_matrix, plot_examples, plot_histograms, plot_layer_stats, plot_learning_curves, smooth
from dlcore.plots._curves import _band


def test_band_is_t_interval():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(8, 5))
    mean, lo, hi = _band(a)
    for t in range(5):
        ci = scipy.stats.t.interval(0.95, 7, loc=a[:, t].mean(), scale=scipy.stats.sem(a[:, t]))
        np.testing.assert_allclose([lo[t], hi[t]], ci, rtol=1e-10)


def test_band_drops_diverged_seeds_without_warnings(recwarn):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 3))
    a[0, 1:] = np.nan  # seed 0 diverged after step 0
    a[:, 2] = np.inf  # every seed diverged at step 2
    mean, lo, hi = _band(a)
    ci = scipy.stats.t.interval(0.95, 2, loc=a[1:, 1].mean(), scale=scipy.stats.sem(a[1:, 1]))
    np.testing.assert_allclose([mean[1], lo[1], hi[1]], [a[1:, 1].mean(), *ci], rtol=1e-10)
    np.testing.assert_allclose(mean[0], a[:, 0].mean(), rtol=1e-12)
    assert np.isnan(mean[2]) and np.isnan(lo[2])
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_smooth_block_means():
    np.testing.assert_allclose(smooth(np.arange(10.0)[None], 5), [[2.0, 7.0]])


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_learning_curves(tmp_path):
    h = {"train/loss": np.random.default_rng(0).random((3, 100)) + 1, "train/accuracy": np.ones((3, 100)) * 0.5,
         "val/loss": np.ones((3, 4)), "val/accuracy": np.ones((3, 4)), "eval_step": np.array([25, 50, 75, 100])}
    fig = plot_learning_curves(h, title="t")
    assert [ax.get_ylabel() for ax in fig.axes] == ["accuracy", "loss"]
    assert "3 seeds" in fig._suptitle.get_text()
    plot_learning_curves(h, str(tmp_path / "c.png"))
    _png(tmp_path / "c.png")


@pytest.mark.parametrize("num_seeds", [2, 8])
def test_learning_curve_title_counts_seeds_not_evaluations(num_seeds):
    """eval_step comes first in a fit history and has 12 entries: the title must count the seeds."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(num_seeds)
    h = {"eval_step": np.arange(1, 13) * 10, "train/loss": rng.random((num_seeds, 120)) + 1,
         "val/loss": rng.random((num_seeds, 12)) + 1}
    fig = plot_learning_curves(h, title="t")
    assert f"over {num_seeds} seeds" in fig._suptitle.get_text(), fig._suptitle.get_text()
    plt.close(fig)


def test_diagnostic_plots(tmp_path):
    cm = np.array([[5, 1], [0, 4]])
    fig = plot_confusion_matrix(cm)
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["0", "1", "4", "5"]
    plot_confusion_matrix(cm, str(tmp_path / "cm.png"))
    _png(tmp_path / "cm.png")
    fig = plot_histograms({"w0": np.arange(10.0), "w1": np.ones(5)})
    assert len(fig.axes) == 2 and "w0" in fig.axes[0].get_title()
    fig = plot_examples(np.zeros((5, 40)), np.arange(5), predictions=np.array([0, 1, 0, 3, 4]))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[2] == "y=2 ŷ=0" and fig.axes[2].title.get_color() == "red"
    plot_examples(np.zeros((4, 8, 8, 1)), np.arange(4), str(tmp_path / "ex.png"))
    _png(tmp_path / "ex.png")
    h = {"stats_step": np.array([10, 20]), "stats/act_0/mean": np.zeros(2), "stats/head/grad_norm": np.ones(2)}
    fig = plot_layer_stats(h)
    assert [ax.get_title() for ax in fig.axes] == ["grad_norm", "mean"]
