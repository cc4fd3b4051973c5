"""Checkpoints of a whole study: one checkpoint directory per unit of work, and the search plan.

A study runs in *units*: one structure's chunk of runs in one search stage, trained by the same
loop as any run (:func:`dlcore.train.run_loop`). Each unit saves into its own directory
``<run_dir>/checkpoints/unitNNNN/`` (a study without axes, i.e. a plain run, saves straight into
``<run_dir>/checkpoints/``), and ``checkpoints/study.json`` records the run's metadata (experiment,
config, seeds) and the search plan so far: the points of each stage and every unit started, with
its seeds and points.

Resuming replays the study: a finished unit is restored from its final checkpoint (not retrained),
the unit that was running continues from its newest valid checkpoint (bit-exact), and the search
therefore chooses the same later stages; :meth:`StudyCheckpoints.record` checks that the replay
agrees with the record and refuses to mix two different studies in one directory.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from dlcore.checkpoint._manager import CHECKPOINT_SUBDIR, CheckpointManager
from dlcore.errors import CheckpointError
from dlcore.manifest import write_json_atomic
from dlcore.parallel import barrier, is_main_process

PLAN_FILE = "study.json"


def plan_path(run_dir: str) -> str:
    """``<run_dir>/checkpoints/study.json``."""
    return os.path.join(os.path.abspath(run_dir), CHECKPOINT_SUBDIR, PLAN_FILE)


def read_plan(run_dir: str) -> dict | None:
    """The study record of ``run_dir`` (``None`` if it has none); a damaged one is a clear error."""
    path = plan_path(run_dir)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            rec = json.load(f)
        if not isinstance(rec, dict):
            raise ValueError("not a JSON object")
        return rec
    except (OSError, ValueError) as e:
        raise CheckpointError(f"the study record {path} is damaged ({e}); start the run again in a new directory") \
            from None


def unit_dirs(run_dir: str) -> list[str]:
    """Every unit checkpoint directory of ``run_dir`` (the top one first, if it holds steps)."""
    root = os.path.join(os.path.abspath(run_dir), CHECKPOINT_SUBDIR)
    if not os.path.isdir(root):
        return []
    subs = sorted(os.path.join(root, n) for n in os.listdir(root) if n.startswith("unit"))
    return [root] + subs


class StudyCheckpoints:
    """A :class:`dlcore.train.CheckpointPlan` writing into ``<run_dir>/checkpoints``.

    Args:
      run_dir: the run directory.
      every, keep, fallback: as for :class:`CheckpointManager` (per unit).
      metadata: JSON-able facts stored in the record and with every checkpoint (experiment,
        config, seeds).

    >>> plan = StudyCheckpoints("/tmp/run", every=500, metadata={"experiment": "x"})   # doctest: +SKIP
    >>> res = run_study(space, build, data, 8, checkpoint=plan)                       # doctest: +SKIP
    """

    def __init__(self, run_dir: str, *, every: int = 0, keep: int = 3, fallback: bool = False,
                 metadata: Mapping[str, Any] | None = None):
        self.run_dir = os.path.abspath(run_dir)
        self.every, self.keep, self.fallback = every, keep, fallback
        self.metadata = dict(metadata or {})
        self.previous = read_plan(self.run_dir)
        barrier("study-record-read")  # every process has read the record before process 0 writes it
        root = os.path.join(self.run_dir, CHECKPOINT_SUBDIR)
        try:
            if is_main_process():
                os.makedirs(root, exist_ok=True)
        except OSError as e:
            raise CheckpointError(f"cannot create the checkpoint directory {root}: {e.strerror or e}; "
                                  "free space or choose a writable place") from None
        if self.previous is None:
            self._write(dict(units=[], stages=[]))

    def unit(self, name: str, metadata: Mapping[str, Any]) -> CheckpointManager:
        """The checkpoint manager of unit ``name`` (``""``: the top directory)."""
        directory = os.path.join(self.run_dir, CHECKPOINT_SUBDIR, name) if name else \
            os.path.join(self.run_dir, CHECKPOINT_SUBDIR)
        meta = dict(self.metadata, **{k: v for k, v in metadata.items() if k != "points"})
        return CheckpointManager(directory, every=self.every, keep=self.keep, metadata=meta, fallback=self.fallback)

    def record(self, plan: Mapping[str, Any]) -> None:
        """Check the replayed plan against the recorded one, then record it."""
        prev = (self.previous or {}).get("plan") or {}
        for key, what in (("units", "unit"), ("stages", "stage")):
            for i, (a, b) in enumerate(zip(prev.get(key, []), _plain(plan.get(key, [])))):
                if a != b:
                    raise CheckpointError(
                        f"resuming {self.run_dir}: {what} {i} of the recorded study was {_short(a)}, the replay "
                        f"gives {_short(b)}; the run directory holds another study (or another version) — "
                        "start it again in a new directory"
                    )
        self._write(plan)

    def _write(self, plan) -> None:
        if not is_main_process():  # multi-host: one writer (every process replays the same plan)
            return
        rec = dict(self.metadata, plan=_plain(plan))
        if self.previous is not None and len(_plain(plan).get("units", [])) < len(
                (self.previous.get("plan") or {}).get("units", [])):
            return  # a replay has not yet caught up with the record: keep the longer record
        write_json_atomic(plan_path(self.run_dir), rec)


def _plain(x):
    return json.loads(json.dumps(x, default=lambda o: o.item() if hasattr(o, "item") else list(o)
                                 if isinstance(o, tuple) else str(o)))


def _short(x) -> str:
    s = json.dumps(x, sort_keys=True)
    return s if len(s) < 160 else s[:157] + "..."
