"""2-D projections (PCA, t-SNE) drawn as a scatter plot coloured by label."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dlcore.plots._save import pyplot, save_figure

from dlcore.errors import ShapeError


def plot_projection(z_Nx2, labels_N, path: str | None = None, *, class_names: Sequence[str] | None = None,
                    title: str = "", point_size: float = 8.0, alpha: float = 0.8):
    """Scatter a 2-D embedding, one colour per class, with a legend (matplotlib, Agg backend).

    Args:
      z_Nx2: coordinates, e.g. ``pca_transform(fit_pca(x, 2), x)`` or ``tsne(x, seed=0)``.
      labels_N: integer class of each point.
      path: where to save a PNG (optional; the figure is closed after saving).
      class_names: legend names (default: the label values).
    Returns:
      the matplotlib Figure.

    >>> import numpy as np
    >>> fig = plot_projection(np.zeros((4, 2)), np.array([0, 1, 0, 1]))
    >>> len(fig.axes[0].collections)
    2
    """
    plt = pyplot()

    z = np.asarray(z_Nx2, dtype=np.float64)
    y = np.asarray(labels_N)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ShapeError(f"plot_projection needs [N, 2] coordinates, got shape {z.shape}; project to 2-D first")
    if y.shape != z.shape[:1]:
        raise ShapeError(f"{len(z)} points but labels have shape {y.shape}; pass one label per point")
    classes = np.unique(y)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for i, c in enumerate(classes):
        sel = y == c
        name = class_names[int(c)] if class_names is not None else str(c)
        ax.scatter(z[sel, 0], z[sel, 1], s=point_size, alpha=alpha, color=cmap(i % cmap.N), label=name)
    ax.legend(markerscale=2, fontsize=8, loc="best", ncol=1 + len(classes) // 12)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    if path:
        save_figure(fig, path)
        plt.close(fig)
    return fig
