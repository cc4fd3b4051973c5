"""Diagnostic plots: confusion matrix, weight/activation histograms, a grid of input examples."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from dlcore.plots._save import pyplot, save_figure


def _save(fig, path):
    if path:
        save_figure(fig, path)
        pyplot().close(fig)
    return fig


def plot_confusion_matrix(cm_CxC, path: str | None = None, *, class_names: Sequence[str] | None = None,
                          normalize: bool = True, title: str = "confusion matrix"):
    """Heat map of a confusion matrix (rows: true class, columns: predicted), counts annotated.

    Args:
      cm_CxC: ``[C, C]`` counts, e.g. from :func:`dlcore.metrics.confusion_matrix`.
      normalize: colour by row-normalised rates (recall per class) instead of counts.
    """
    plt = pyplot()
    cm = np.asarray(cm_CxC, dtype=np.float64)
    C = cm.shape[0]
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * C, 0.8 + 0.5 * C))
    im = ax.imshow(shown, cmap="Blues", vmin=0)
    names = list(class_names) if class_names is not None else [str(i) for i in range(C)]
    ax.set_xticks(range(C), names, rotation=45 if C > 10 else 0)
    ax.set_yticks(range(C), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if C <= 20:
        for i in range(C):
            for j in range(C):
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > 0.5 * shown.max() else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_histograms(values: Mapping[str, np.ndarray], path: str | None = None, *, bins: int = 50,
                    title: str = "", log: bool = False):
    """One histogram per named array (weights per layer, or activations per layer).

    The lectures' initialization experiment (10 tanh layers × 500 units): with N(0, 0.01²) weights
    the activations collapse to 0 layer by layer; with N(0, 1) they saturate at ±1; Xavier keeps
    them spread — these histograms show it.
    """
    plt = pyplot()
    names = list(values)
    fig, axes = plt.subplots(1, len(names), figsize=(2.4 * len(names), 2.4), squeeze=False, sharey=False)
    for ax, name in zip(axes[0], names):
        v = np.asarray(values[name], dtype=np.float64).ravel()
        ax.hist(v, bins=bins, color="tab:blue", log=log)
        ax.set_title(f"{name}\nμ={v.mean():.2g} σ={v.std():.2g}", fontsize=8)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_examples(x, y, path: str | None = None, *, predictions=None, class_names: Sequence[str] | None = None,
                  ncols: int = 8, max_examples: int = 32, title: str = "examples from the loader"):
    """A grid of input examples with their labels (and predictions): "visualize your data".

    1-D inputs ``[N, T]`` are drawn as line plots, images ``[N, H, W(, C)]`` with ``imshow``. A wrong
    prediction is titled in red.
    """
    plt = pyplot()
    x = np.asarray(x)[:max_examples]
    y = np.asarray(y)[:max_examples]
    n = len(x)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.6 * ncols, 1.5 * nrows), squeeze=False)
    name = (lambda c: class_names[int(c)]) if class_names is not None else (lambda c: str(int(c)))
    for k, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= n:
            ax.axis("off")
            continue
        xi = x[k]
        if xi.ndim == 1:
            ax.plot(xi, lw=1)
        else:
            img = xi[..., 0] if xi.ndim == 3 and xi.shape[-1] == 1 else xi
            img = (img - img.min()) / max(float(img.max() - img.min()), 1e-12)
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        label = f"y={name(y[k])}"
        color = "black"
        if predictions is not None:
            p = np.asarray(predictions)[k]
            label += f" ŷ={name(p)}"
            color = "black" if int(p) == int(y[k]) else "red"
        ax.set_title(label, fontsize=8, color=color)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_layer_stats(history: Mapping[str, np.ndarray], path: str | None = None, *, seed_index: int = 0):
    """Activation mean/std/saturation/dead fraction and gradient norm per layer over training."""
    plt = pyplot()
    steps = np.asarray(history["stats_step"])
    keys = [k for k in history if k.startswith("stats/")]
    stats = sorted({k.rsplit("/", 1)[1] for k in keys})
    fig, axes = plt.subplots(1, len(stats), figsize=(3.2 * len(stats), 2.8), squeeze=False)
    for ax, stat in zip(axes[0], stats):
        for k in sorted(k for k in keys if k.endswith("/" + stat)):
            a = np.asarray(history[k])
            a = a[seed_index] if a.ndim == 2 else a
            ax.plot(steps, a, label=k[len("stats/"):-len(stat) - 1])
        ax.set_title(stat)
        ax.set_xlabel("step")
        if stat == "grad_norm":
            ax.set_yscale("log")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)
