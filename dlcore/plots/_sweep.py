"""Study plots: a metric against a hyperparameter with CI bands, 2-D heatmaps, per-point curves."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from dlcore.plots._save import pyplot, save_figure

from dlcore.plots._curves import _band, smooth


def _mean_ci(v_S: np.ndarray, confidence: float):
    v = np.asarray(v_S, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.nan, np.nan, np.nan
    m, lo, hi = _band(v[:, None], confidence)
    return float(m[0]), float(lo[0]), float(hi[0])


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) else str(v)


def _save(fig, path):
    if path:
        save_figure(fig, path, metadata={"Software": None})  # no version string: re-plots are identical
        pyplot().close(fig)
    return fig


def plot_metric_vs_axis(
    points: Sequence[Mapping],
    values_PxS: np.ndarray,
    axis: str,
    *,
    metric: str = "val/accuracy",
    log_x: bool = False,
    confidence: float = 0.95,
    selected: Sequence[int] = (),
    path: str | None = None,
    title: str = "",
):
    """Mean ± CI (over seeds) of a metric against one axis; one line per combination of the others.

    Args:
      points: ``P`` dicts axis -> value.
      values_PxS: the metric per point and seed.
      axis: the x axis; numeric values are placed on a (log, if ``log_x``) scale, others as
        categories.
      selected: points to mark (the chosen ones).
      path: where to save a PNG.
    Returns:
      the matplotlib Figure.

    >>> pts = [{"lr": 0.01, "norm": "none"}, {"lr": 0.1, "norm": "none"}, {"lr": 0.01, "norm": "batch"}]
    >>> fig = plot_metric_vs_axis(pts, np.array([[0.6, 0.62], [0.5, 0.55], [0.64, 0.66]]), "lr", log_x=True)
    >>> fig.axes[0].get_xscale()
    'log'
    """
    plt = pyplot()
    vals = np.asarray(values_PxS, np.float64)
    others = [k for k in points[0] if k != axis] if points else []
    numeric = all(isinstance(p[axis], (int, float)) and not isinstance(p[axis], bool) for p in points)
    cats = list(dict.fromkeys(p[axis] for p in points)) if not numeric else []
    xpos = (lambda v: float(v)) if numeric else (lambda v: float(cats.index(v)))
    series: dict[tuple, list[int]] = {}
    for i, p in enumerate(points):
        series.setdefault(tuple(p[o] for o in others), []).append(i)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    lone = all(len(ix) == 1 for ix in series.values()) and len(series) > 8  # random search: a scatter
    for key, idx in series.items():
        idx = sorted(idx, key=lambda i: xpos(points[i][axis]))
        x = np.asarray([xpos(points[i][axis]) for i in idx])
        st = np.asarray([_mean_ci(vals[i], confidence) for i in idx])
        label = None if lone or not others else " ".join(f"{o}={_fmt(v)}" for o, v in zip(others, key))
        color = "C0" if lone else None
        if len(idx) > 1 and not lone:
            (line,) = ax.plot(x, st[:, 0], marker="o", ms=4, label=label, color=color)
            ax.fill_between(x, st[:, 1], st[:, 2], alpha=0.2, color=line.get_color())
        else:
            err = np.abs(st[:, 1:] - st[:, :1]).T
            err = np.where(np.isfinite(err), err, 0.0)
            ax.errorbar(x, st[:, 0], yerr=err, fmt="o", ms=4, capsize=3, label=label, color=color)
    for i in selected:
        m, _, _ = _mean_ci(vals[i], confidence)
        ax.plot([xpos(points[i][axis])], [m], marker="*", ms=14, color="k", ls="none",
                label="selected" if i == selected[0] else None)
    if numeric and log_x and all(float(p[axis]) > 0 for p in points):
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(cats)), [str(c) for c in cats])
    ax.set_xlabel(axis)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    n = vals.shape[1] if vals.ndim == 2 else 0
    ax.set_title(f"{title} (mean ± {int(round(confidence * 100))}% CI over {n} seeds)".strip(), fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_heatmap(
    points: Sequence[Mapping],
    values_PxS: np.ndarray,
    x_axis: str,
    y_axis: str,
    *,
    metric: str = "val/accuracy",
    selected: Sequence[int] = (),
    path: str | None = None,
    title: str = "",
):
    """Heatmap of the mean metric over a 2-D grid (``x_axis`` × ``y_axis``), values annotated.

    Cells without a point are blank; the selected point(s) are outlined.

    >>> pts = [{"lr": a, "wd": b} for a in (0.01, 0.1) for b in (0.0, 1e-4)]
    >>> fig = plot_heatmap(pts, np.arange(8.0).reshape(4, 2), "lr", "wd")
    >>> fig.axes[0].get_images()[0].get_array().shape
    (2, 2)
    """
    plt = pyplot()
    vals = np.asarray(values_PxS, np.float64)
    xs = sorted({p[x_axis] for p in points}, key=_sort_key)
    ys = sorted({p[y_axis] for p in points}, key=_sort_key)
    grid = np.full((len(ys), len(xs)), np.nan)
    for i, p in enumerate(points):
        v = vals[i][np.isfinite(vals[i])]
        grid[ys.index(p[y_axis]), xs.index(p[x_axis])] = v.mean() if v.size else np.nan
    fig, ax = plt.subplots(figsize=(1.1 * len(xs) + 2.5, 0.6 * len(ys) + 2.2))
    im = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    for r in range(len(ys)):
        for c in range(len(xs)):
            if np.isfinite(grid[r, c]):
                ax.text(c, r, f"{grid[r, c]:.3f}", ha="center", va="center", fontsize=8,
                        color="w" if grid[r, c] < np.nanmean(grid) else "k")
    for i in selected:
        p = points[i]
        ax.add_patch(plt.Rectangle((xs.index(p[x_axis]) - 0.5, ys.index(p[y_axis]) - 0.5), 1, 1, fill=False,
                                   ec="r", lw=2))
    ax.set_xticks(range(len(xs)), [_fmt(v) for v in xs], rotation=45)
    ax.set_yticks(range(len(ys)), [_fmt(v) for v in ys])
    ax.set_xlabel(x_axis)
    ax.set_ylabel(y_axis)
    fig.colorbar(im, ax=ax, label=f"mean {metric}")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _sort_key(v):
    return (0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0.0, str(v))


def plot_point_curves(
    histories: Sequence[Mapping[str, np.ndarray]],
    labels: Sequence[str],
    *,
    metric: str = "val/accuracy",
    confidence: float = 0.95,
    path: str | None = None,
    title: str = "",
):
    """Per-point learning curves: training loss and ``metric`` vs step, mean ± CI band over seeds.

    Args:
      histories: one history per point (``train/loss`` ``[S, T]``, ``metric`` ``[S, E]``,
        ``eval_step`` ``[E]``).
      labels: one label per point.

    >>> h = {"train/loss": np.ones((2, 10)), "val/accuracy": np.ones((2, 2)) / 2, "eval_step": np.array([5, 10])}
    >>> len(plot_point_curves([h, h], ["a", "b"]).axes)
    2
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    cmap = plt.get_cmap("viridis" if len(histories) > 10 else "tab10")
    for k, (h, lab) in enumerate(zip(histories, labels)):
        color = cmap(k / max(1, len(histories) - 1)) if len(histories) > 10 else cmap(k % 10)
        if "train/loss" in h:
            a = np.asarray(h["train/loss"], np.float64)
            w = max(1, a.shape[1] // 100)
            s = smooth(a, w)
            steps = (np.arange(s.shape[1]) + 1) * w
            m, lo, hi = _band(s, confidence)
            axes[0].plot(steps, m, color=color, lw=1.2, label=lab)
            axes[0].fill_between(steps, lo, hi, color=color, alpha=0.15)
        if metric in h and "eval_step" in h:
            m, lo, hi = _band(np.asarray(h[metric], np.float64), confidence)
            axes[1].plot(h["eval_step"], m, color=color, marker="o", ms=3, lw=1.2, label=lab)
            axes[1].fill_between(h["eval_step"], lo, hi, color=color, alpha=0.15)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("train loss")
    axes[1].set_ylabel(metric)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{title} (mean ± {int(round(confidence * 100))}% CI over seeds)".strip(), fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
