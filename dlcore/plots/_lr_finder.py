"""The learning-rate finder's loss vs learning-rate curve and optimisation trajectories."""

from __future__ import annotations

from dlcore.plots._save import pyplot, save_figure

import numpy as np


def plot_lr_finder(result, path: str | None = None, *, title: str = "learning-rate finder"):
    """Loss (raw and smoothed) vs learning rate on a log axis, with the suggested rate marked.

    Args:
      result: a :class:`dlcore.optim.LRFinderResult`.
      path: where to save a PNG (optional).
    Returns:
      the matplotlib Figure.
    """
    plt = pyplot()

    lrs = np.asarray(result.learning_rates)
    cut = max(int(result.diverged_at), 2)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(lrs, result.losses, alpha=0.3, lw=1, label="loss")
    ax.plot(lrs[:cut], result.smoothed[:cut], lw=2, label="smoothed")
    ax.axvline(result.suggestion, color="C3", ls="--", label=f"suggested {result.suggestion:.2g}")
    ax.set_xscale("log")
    finite = np.asarray(result.smoothed[:cut])[np.isfinite(result.smoothed[:cut])]
    if finite.size:
        lo, hi = finite.min(), finite.max()
        ax.set_ylim(lo - 0.05 * (hi - lo + 1e-12), hi + 0.25 * (hi - lo + 1e-12))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    if path:
        save_figure(fig, path)
        plt.close(fig)
    return fig


def plot_trajectories(fun, results, path: str | None = None, *, bounds=None, levels: int = 30,
                      title: str = ""):
    """Iterates of 2-D :func:`dlcore.optim.minimize` results over the contours of ``fun``.

    Args:
      fun: the objective, ``x[2] -> scalar`` (evaluated on a grid with NumPy-compatible ops).
      results: ``{label: MinimizeResult}`` (``xs`` of shape ``[T+1, 2]``).
      bounds: ``((xmin, xmax), (ymin, ymax))``; default: the iterates' range with a margin.
    Returns:
      the matplotlib Figure (left: paths on contours; right: loss vs iteration, log scale).
    """
    import jax
    import jax.numpy as jnp
    plt = pyplot()

    paths = {k: np.asarray(r.xs) for k, r in results.items()}
    if bounds is None:
        allp = np.concatenate(list(paths.values()))
        lo, hi = allp.min(0), allp.max(0)
        pad = 0.15 * (hi - lo + 1e-3)
        bounds = ((lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1]))
    gx, gy = np.meshgrid(np.linspace(*bounds[0], 200), np.linspace(*bounds[1], 200))
    grid = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], 1), jnp.float32)
    z = np.asarray(jax.vmap(fun)(grid)).reshape(gx.shape)
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(10, 4))
    a0.contour(gx, gy, np.log1p(z - z.min()), levels=levels, cmap="viridis", linewidths=0.7)
    for k, p in paths.items():
        a0.plot(p[:, 0], p[:, 1], marker=".", ms=3, lw=1, label=k)
        a1.semilogy(np.maximum(np.asarray(results[k].losses) - z.min(), 1e-12), label=k)
    a0.set_title(title or "trajectories")
    a0.legend(fontsize=8)
    a1.set_xlabel("iteration")
    a1.set_ylabel("loss − grid min")
    a1.grid(alpha=0.3)
    a1.legend(fontsize=8)
    fig.tight_layout()
    if path:
        save_figure(fig, path)
        plt.close(fig)
    return fig
