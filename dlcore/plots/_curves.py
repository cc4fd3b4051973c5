"""Learning curves with a 95% confidence band across seeds."""

from __future__ import annotations

import functools
from typing import Mapping

import numpy as np

from dlcore.plots._save import pyplot, save_figure


def _band(a_SxT: np.ndarray, confidence: float = 0.95):
    # scipy.special's t quantile, not scipy.stats.t.ppf: importing scipy.stats cost ~1-3 s of start-up.
    from scipy.special import stdtrit

    a = np.asarray(a_SxT, dtype=np.float64)
    a = np.where(np.isfinite(a), a, np.nan)  # diverged seeds drop out of the band
    n_T = np.sum(~np.isnan(a), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        # A step where every seed diverged stays a gap (NaN) instead of a warning.
        mean = np.where(n_T > 0, np.nansum(a, axis=0) / np.maximum(n_T, 1), np.nan)
        if a.shape[0] < 2:
            return mean, mean, mean
        dev = np.nansum((a - mean) ** 2, axis=0)
        std = np.sqrt(dev / np.maximum(n_T - 1, 1))
        t = stdtrit(np.maximum(n_T - 1, 1), 0.5 + confidence / 2)
        half = np.where(n_T >= 2, t * std / np.sqrt(np.maximum(n_T, 1)), 0.0)
    return mean, mean - half, mean + half


@functools.lru_cache(maxsize=None)
def _plain_log_formatter():
    """A log-axis formatter class that labels the ticks matplotlib's ``LogFormatter`` would, as plain
    numbers ("0.5", "2") — the default 10^k labels go through mathtext (~0.2 s on first use)."""
    from matplotlib import ticker

    class PlainLog(ticker.LogFormatter):
        def __call__(self, x, pos=None):
            return f"{x:.3g}" if super().__call__(x, pos) else ""

    return PlainLog


def smooth(a_SxT: np.ndarray, window: int) -> np.ndarray:
    """Moving average over the last axis (window-sized blocks, for noisy per-step losses)."""
    a = np.asarray(a_SxT, dtype=np.float64)
    if window <= 1 or a.shape[-1] < window:
        return a
    t = a.shape[-1] // window * window
    return a[..., :t].reshape(a.shape[:-1] + (t // window, window)).mean(-1)


def plot_learning_curves(history: Mapping[str, np.ndarray], path: str | None = None, *, title: str = "",
                         confidence: float = 0.95, window: int | None = None):
    """Train loss (per step, block-averaged) and validation metrics vs step, mean ± CI over seeds.

    Args:
      history: batched history (``train/<m>`` ``[S, T]``, ``val/<m>`` ``[S, E]``, ``eval_step``);
        an unbatched one (``[T]``) is treated as one seed.
      path: where to save a PNG (optional).
    Returns:
      the matplotlib Figure.
    """
    plt = pyplot()
    h = {k: (np.asarray(v)[None] if k != "eval_step" and np.asarray(v).ndim == 1 else np.asarray(v))
         for k, v in history.items()}
    metrics = sorted({k.split("/", 1)[1] for k in h if k.startswith(("train/", "val/"))} - {"grad_norm"})
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        if f"train/{m}" in h:
            a = h[f"train/{m}"]
            w = window or max(1, a.shape[1] // 100)
            s = smooth(a, w)
            steps = (np.arange(s.shape[1]) + 1) * w
            mean, lo, hi = _band(s, confidence)
            ax.plot(steps, mean, label=f"train {m}")
            ax.fill_between(steps, lo, hi, alpha=0.25)
        if f"val/{m}" in h and "eval_step" in h:
            mean, lo, hi = _band(h[f"val/{m}"], confidence)
            ax.plot(h["eval_step"], mean, marker="o", ms=3, label=f"val {m}")
            ax.fill_between(h["eval_step"], lo, hi, alpha=0.25)
        ax.set_xlabel("step")
        ax.set_ylabel(m)
        if m == "loss":
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(_plain_log_formatter()())
            ax.yaxis.set_minor_formatter(_plain_log_formatter()(labelOnlyBase=False))
        ax.grid(alpha=0.3)
        ax.legend()
    # Seeds are the leading axis of the per-seed curves; eval_step is one row of steps, not a seed axis.
    per_seed = [v for k, v in h.items() if k.startswith(("train/", "val/"))]
    n = per_seed[0].shape[0] if per_seed else 0
    fig.suptitle(f"{title} (mean ± {int(confidence * 100)}% CI over {n} seed{'s' * (n != 1)})".strip())
    # Fixed margins for the fixed 5 × 3.6 in panels (tight_layout measured every label: ~0.25 s).
    fig.subplots_adjust(left=0.8 / fig.get_figwidth(), right=1 - 0.2 / fig.get_figwidth(), bottom=0.14,
                        top=0.86, wspace=0.3)
    if path:
        save_figure(fig, path)
        plt.close(fig)
    return fig
