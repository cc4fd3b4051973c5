"""A run directory's files: results.csv, history.npz, TensorBoard events, curves.png, manifest.json."""

from __future__ import annotations

import csv
import datetime
import os
from typing import Mapping, Sequence

import numpy as np

from dlcore.errors import DlcoreError, atomic_path, remove_quietly, storage_error


def make_run_dir(root: str, experiment: str) -> str:
    """Create ``root/<experiment>/<timestamp>`` (unique) and check that it is writable.

    The name is claimed with ``os.mkdir``, which fails if it exists, so runs started at the same
    instant (several processes) get distinct directories: ``<stamp>``, ``<stamp>-1``, ... Fails
    *before* any training with a clear error when the disk is full or not writable, and then
    leaves no empty run directory behind.
    """
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    parent = os.path.join(root, experiment)
    base = os.path.join(parent, stamp)
    fix = "free space or choose another place with --out DIR"
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise storage_error(parent, e, "write the run directory", "; or choose another place with --out DIR") from None
    for i in range(100000):
        path = base if i == 0 else f"{base}-{i}"
        try:
            os.mkdir(path)
            break
        except FileExistsError:
            continue  # taken (by an earlier run or one started at the same instant): next suffix
        except OSError as e:
            raise storage_error(path, e, "write the run directory", "; or choose another place with --out DIR") from None
    else:  # pragma: no cover
        raise DlcoreError(f"cannot create a run directory under {parent}: every name is taken; {fix}")
    try:
        check_writable(path, "choose another place with --out DIR")
    except DlcoreError:
        remove_quietly(path)  # it is empty: do not leave it behind
        raise
    return path


def check_writable(path: str, fix: str = "make it writable") -> None:
    """Write and remove a 64 KiB probe in ``path``; a :class:`DlcoreError` if that fails.

    Catches a full disk or a permission problem before any training, not after an hour of it.
    """
    probe = os.path.join(path, f".write_probe{os.getpid()}")
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())  # a full disk may only say so when the data reaches it
        os.remove(probe)
    except OSError as e:
        try:
            os.remove(probe)
        except OSError:
            pass
        raise DlcoreError(f"cannot write the run directory {path}: {e.strerror or e}; free space or {fix}") from None


def results_rows(seeds: Sequence[int], final: Mapping[str, np.ndarray], state, hashes: Sequence[str],
                 history: Mapping[str, np.ndarray], axes: Mapping[str, object] | None = None) -> list[dict]:
    """One row per seed: axes, seed, status, final metrics, last training loss, parameter hash."""
    from dlcore.train import STATUS_NAMES

    status = np.asarray(state.status)
    stop = np.asarray(state.stop_step)
    rows = []
    for i, s in enumerate(seeds):
        row = dict(axes or {})
        row.update(seed=int(s), status=STATUS_NAMES.get(int(status[i]), str(int(status[i]))),
                   stop_step=int(stop[i]))
        for k in sorted(final):
            row[k] = float(np.asarray(final[k])[i])
        if "train/loss" in history:
            row["train/loss_last"] = float(np.asarray(history["train/loss"])[i, -1])
        row["params_sha256"] = hashes[i]
        rows.append(row)
    return rows


def write_csv(path: str, rows: Sequence[Mapping]) -> None:
    """Write dict rows as CSV (columns: union of keys in first-seen order), atomically."""
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)


def write_history(path: str, history: Mapping[str, np.ndarray], seeds: Sequence[int]) -> None:
    """``history.npz``: every history array plus ``seeds``."""
    with atomic_path(path, ".npz") as tmp:
        np.savez_compressed(tmp, seeds=np.asarray(seeds), **{k: np.asarray(v) for k, v in history.items()})


def summary_table(final: Mapping[str, np.ndarray], confidence: float = 0.95, ok_mask=None) -> str:
    """Text table: mean, std, CI, min, max across seeds of each final metric."""
    from dlcore.stats import summarize

    lines = [f"{'metric':<16}{'mean':>9}{'std':>9}   {int(confidence * 100)}% CI{'':<13}{'min':>9}{'max':>9}"]
    for k in sorted(final, key=lambda k: (not k.startswith("test/"), k)):
        x = np.asarray(final[k], dtype=np.float64).ravel()
        if ok_mask is not None:
            x = x[np.asarray(ok_mask).ravel()]
        s = summarize(x, confidence)
        ci = f"[{s['ci_low']:.4f}, {s['ci_high']:.4f}]"
        lines.append(f"{k:<16}{s['mean']:>9.4f}{s['std']:>9.4f}   {ci:<19}{s['min']:>9.4f}{s['max']:>9.4f}")
    return "\n".join(lines)
