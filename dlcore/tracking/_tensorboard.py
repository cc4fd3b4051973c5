"""TensorBoard event files for a whole sweep history: one run directory per seed."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from dlcore.errors import DlcoreError
from dlcore.tracking._writers import run_writers, write_history


def write_scalars(
    log_dir: str,
    history: Mapping[str, np.ndarray],
    seeds: Sequence[int],
    *,
    train_every: int = 10,
    tags: Mapping[str, str] | None = None,
    kinds: Sequence[str] = ("tensorboard",),
) -> list[str]:
    """Write a (batched) history as scalars, one event directory per seed: ``log_dir/seed_<k>``.

    Args:
      history: ``train/<m>`` ``[S, T]`` per step and ``val/<m>`` ``[S, E]`` at ``eval_step`` ``[E]``.
      seeds: the S seeds (axis 0 of the arrays).
      train_every: write per-step training scalars every this many steps (TensorBoard smooths).
      tags: shown with each run (e.g. the experiment and the sweep point's axes).
    Returns:
      the event directories written.
    Raises:
      dlcore.errors.StorageError: an event file could not be written (it names the file); the
      writes are synchronous, so a full disk can never leave the process waiting on a dead thread.
    """
    writers = run_writers(log_dir, seeds, tags, kinds)
    try:
        write_history(writers, history, train_every=train_every)
    except BaseException:
        for w in writers:  # the first error is the one reported; release the other files
            try:
                w.close()
            except DlcoreError:
                pass
        raise
    for w in writers:
        w.close()
    return [f"{log_dir}/seed_{int(s)}" for s in seeds]
