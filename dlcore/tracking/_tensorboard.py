"""TensorBoard event files (tensorboardX): one run directory per seed."""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np


def write_scalars(
    log_dir: str,
    history: Mapping[str, np.ndarray],
    seeds: Sequence[int],
    *,
    train_every: int = 10,
    tags: Mapping[str, str] | None = None,
) -> list[str]:
    """Write a (batched) history as scalars, one event directory per seed: ``log_dir/seed_<k>``.

    Args:
      history: ``train/<m>`` ``[S, T]`` per step and ``val/<m>`` ``[S, E]`` at ``eval_step`` ``[E]``.
      seeds: the S seeds (axis 0 of the arrays).
      train_every: write per-step training scalars every this many steps (TensorBoard smooths).
      tags: text shown with each run (e.g. the sweep point's axes).
    Returns:
      the event directories written.
    """
    from tensorboardX import SummaryWriter

    dirs = []
    eval_steps = np.asarray(history.get("eval_step", []))
    for i, seed in enumerate(seeds):
        d = os.path.join(log_dir, f"seed_{int(seed)}")
        with SummaryWriter(logdir=d, flush_secs=3600) as w:
            if tags:
                w.add_text("config", "  \n".join(f"{k}: {v}" for k, v in tags.items()), 0)
            for key, arr in history.items():
                a = np.asarray(arr)
                if key.startswith("train/") and a.ndim == 2:
                    for t in range(train_every - 1, a.shape[1], train_every):
                        w.add_scalar(key, float(a[i, t]), t + 1)
                elif key.startswith("val/") and a.ndim == 2:
                    for j, s in enumerate(eval_steps):
                        w.add_scalar(key, float(a[i, j]), int(s))
        dirs.append(d)
    return dirs
