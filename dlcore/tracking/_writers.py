"""One writer interface for experiment tracking: TensorBoard, CSV, Weights & Biases (offline).

A writer takes scalars, histograms, images and text at a step::

    >>> import tempfile
    >>> with CSVWriter(tempfile.mkdtemp()) as w:
    ...     w.scalars(10, {"train/loss": 0.5})

Use :func:`open_writer` to get several at once (``kinds=("tensorboard", "csv")``) behind one object,
and :func:`run_writers` for one writer per seed of a sweep (a run directory per seed, the sweep's
axes attached as tags).
"""

from __future__ import annotations

import csv
import os
import time
from typing import Mapping, Sequence

import numpy as np

from dlcore.errors import ConfigError, DlcoreError, StorageError, remove_quietly, storage_error, unknown_name


class Writer:
    """Base class: every method is optional for a backend (default: ignore)."""

    def scalars(self, step: int, values: Mapping[str, float]) -> None: ...

    def histogram(self, step: int, name: str, values) -> None: ...

    def image(self, step: int, name: str, image_HxWxC) -> None: ...

    def text(self, step: int, name: str, text: str) -> None: ...

    def tags(self, tags: Mapping[str, object]) -> None:
        """Attach run-level tags (e.g. the seed and the sweep point's axes)."""

    def flush(self) -> None: ...

    def close(self) -> None:
        self.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _tensorflow_bins() -> list[float]:
    """TensorBoard's default histogram buckets (exponential, ratio 1.1, from 1e-12 to 1e20, both signs)."""
    pos = 1e-12 * 1.1 ** np.arange(int(np.ceil(np.log(1e32) / np.log(1.1))))
    pos = pos[pos < 1e20].tolist()
    return [-v for v in pos[::-1]] + [0.0] + pos


def _import_tensorboardx() -> None:
    """Import tensorboardX without PyTorch.

    tensorboardX imports ``torch`` at module level only to accept torch tensors; dlcore hands it
    NumPy values, and where PyTorch is installed that import cost ~4 s of a 20-s ``dlcore run``
    (measured, issue 18). A ``None`` entry in ``sys.modules`` makes that ``import torch`` fail fast.
    """
    import sys

    if "tensorboardX" in sys.modules or "torch" in sys.modules:
        return
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        import tensorboardX  # noqa: F401
    finally:
        del sys.modules["torch"]


class TensorBoardWriter(Writer):
    """Event files (tensorboardX's protobufs and record format), written synchronously.

    No background thread: tensorboardX's ``SummaryWriter`` queues events for a writer thread, and
    when that thread dies on a full disk the queue blocks the process forever. Here every event is
    written by the calling thread, so a failed write raises :class:`dlcore.errors.StorageError`
    naming the event file at once (the incomplete file is removed). Readable by TensorBoard's own
    ``EventAccumulator``.
    """

    def __init__(self, log_dir: str):
        _import_tensorboardx()
        from tensorboardX.event_file_writer import EventsWriter

        self.log_dir = str(log_dir)
        self.path = self.log_dir
        self._ev = None
        try:
            os.makedirs(self.log_dir, exist_ok=True)
            self._ev = EventsWriter(os.path.join(self.log_dir, "events"))
        except OSError as e:
            self._fail(e)
        self.path = self._ev._file_name

    def _fail(self, err):
        ev, self._ev = self._ev, None
        if ev is not None:
            try:
                ev._py_recordio_writer.close()
            except OSError:
                pass
            remove_quietly(ev._file_name)  # incomplete: do not leave it behind
        raise storage_error(self.path, err) from None

    def _write(self, summary, step):
        from tensorboardX.proto.event_pb2 import Event

        if self._ev is None:
            raise StorageError(f"the TensorBoard writer of {self.log_dir} is closed", self.log_dir)
        try:
            self._ev.write_event(Event(wall_time=time.time(), step=int(step), summary=summary))
        except OSError as e:
            self._fail(e)

    def scalars(self, step, values):
        from tensorboardX.proto.summary_pb2 import Summary

        # One event per step holding every tag (tensorboardX's scalar() makes one event per value:
        # the same records TensorBoard reads, 3x the events, each with two pure-Python CRCs).
        self._write(Summary(value=[Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()]), step)

    def histogram(self, step, name, values):
        from tensorboardX.summary import histogram

        self._write(histogram(name, np.asarray(values, dtype=np.float64).ravel(), _tensorflow_bins()), step)

    def image(self, step, name, image_HxWxC):
        from tensorboardX.summary import image

        img = np.asarray(image_HxWxC, dtype=np.float32)
        if img.ndim == 2:
            img = img[..., None]
        self._write(image(name, img, dataformats="HWC"), step)

    def text(self, step, name, text):
        from tensorboardX.summary import text as text_summary

        self._write(text_summary(name, text), step)

    def tags(self, tags):
        from tensorboardX.summary import hparams

        self.text(0, "tags", "  \n".join(f"{k}: {v}" for k, v in tags.items()))
        for summary in hparams({k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in tags.items()}, {}):
            self._write(summary, 0)

    def flush(self):
        if self._ev is not None:
            try:
                self._ev.flush()
            except OSError as e:
                self._fail(e)

    def close(self):
        if self._ev is not None:
            try:
                self._ev.close()
            except OSError as e:
                self._fail(e)
            self._ev = None


class CSVWriter(Writer):
    """Scalars as a tidy CSV (``step,name,value``) plus ``tags.json``; histograms/images ignored."""

    def __init__(self, log_dir: str, filename: str = "scalars.csv"):
        self.log_dir = log_dir
        self.path = os.path.join(log_dir, filename)
        try:
            os.makedirs(log_dir, exist_ok=True)
            new = not os.path.exists(self.path)
            self._f = open(self.path, "a", newline="")
            self._csv = csv.writer(self._f)
            if new:
                self._csv.writerow(["step", "name", "value"])
        except OSError as e:
            raise storage_error(self.path, e) from None

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except OSError as e:
            try:
                self._f.close()
            except OSError:
                pass
            raise storage_error(self.path, e) from None

    def scalars(self, step, values):
        for k, v in values.items():
            self._guard(self._csv.writerow, [int(step), k, repr(float(v))])

    def tags(self, tags):
        from dlcore.manifest import write_json_atomic

        write_json_atomic(os.path.join(self.log_dir, "tags.json"),
                          {k: str(v) if not isinstance(v, (int, float, str, bool)) else v for k, v in tags.items()})

    def flush(self):
        if not self._f.closed:
            self._guard(self._f.flush)

    def close(self):
        if not self._f.closed:
            self._guard(self._f.close)


class WandbWriter(Writer):
    """Weights & Biases in offline mode (no network; sync later with ``wandb sync``).

    Needs the optional extra: ``pip install 'dlcore[wandb]'``. The run is written under
    ``log_dir/wandb/offline-run-*``; several writers (one per seed) may be open at once.
    """

    def __init__(self, log_dir: str, project: str = "dlcore", name: str | None = None):
        try:
            import wandb
        except ImportError:
            raise ConfigError("the wandb writer needs the optional extra: pip install 'dlcore[wandb]'") from None
        self._wandb = wandb
        os.makedirs(log_dir, exist_ok=True)  # wandb falls back to a temporary directory otherwise
        # "create_new": one run per seed open side by side (reinit=True would finish the other seeds' runs)
        self._run = wandb.init(project=project, name=name, dir=log_dir, mode="offline", reinit="create_new")

    def scalars(self, step, values):
        self._run.log({k: float(v) for k, v in values.items()}, step=int(step))

    def histogram(self, step, name, values):
        self._run.log({name: self._wandb.Histogram(np.asarray(values).ravel())}, step=int(step))

    def image(self, step, name, image_HxWxC):
        self._run.log({name: self._wandb.Image(np.asarray(image_HxWxC))}, step=int(step))

    def tags(self, tags):
        self._run.config.update(dict(tags), allow_val_change=True)

    def close(self):
        self._run.finish()


class MultiWriter(Writer):
    """Fans every call out to several writers."""

    def __init__(self, writers: Sequence[Writer]):
        self.writers = list(writers)

    def scalars(self, step, values):
        for w in self.writers:
            w.scalars(step, values)

    def histogram(self, step, name, values):
        for w in self.writers:
            w.histogram(step, name, values)

    def image(self, step, name, image_HxWxC):
        for w in self.writers:
            w.image(step, name, image_HxWxC)

    def text(self, step, name, text):
        for w in self.writers:
            w.text(step, name, text)

    def tags(self, tags):
        for w in self.writers:
            w.tags(tags)

    def flush(self):
        for w in self.writers:
            w.flush()

    def close(self):
        for w in self.writers:
            w.close()


WRITERS = {"tensorboard": TensorBoardWriter, "csv": CSVWriter, "wandb": WandbWriter}


def open_writer(log_dir: str, kinds: Sequence[str] = ("tensorboard",)) -> Writer:
    """Open one writer per kind in ``log_dir`` behind a :class:`MultiWriter`."""
    for k in kinds:
        if k not in WRITERS:
            raise unknown_name("writer", k, WRITERS)
    return MultiWriter([WRITERS[k](log_dir) for k in kinds])


def run_writers(root: str, seeds: Sequence[int], axes: Mapping[str, object] | None = None,
                kinds: Sequence[str] = ("tensorboard",), point: str | None = None) -> list[Writer]:
    """One writer per seed in ``root/[point/]seed_<k>``, tagged with the seed and the sweep axes."""
    out = []
    try:
        for s in seeds:
            d = os.path.join(root, *( [point] if point else []), f"seed_{int(s)}")
            out.append(open_writer(d, kinds))
            out[-1].tags({"seed": int(s), **dict(axes or {})})
    except BaseException:
        for w in out:  # a failed open or write: release the files already open
            try:
                w.close()
            except DlcoreError:
                pass
        raise
    return out


def write_history(writers: Sequence[Writer], history: Mapping[str, np.ndarray], *, train_every: int = 10) -> None:
    """Write a batched history (``train/*`` ``[S, T]``, ``val/*`` ``[S, E]``) through per-seed writers."""
    eval_steps = [int(s) for s in np.asarray(history.get("eval_step", []))]
    arrays = {k: np.asarray(a) for k, a in history.items() if k.startswith(("train/", "val/"))}
    train = {k: a for k, a in arrays.items() if k.startswith("train/") and a.ndim == 2}
    val = {k: a for k, a in arrays.items() if k.startswith("val/") and a.ndim == 2}
    for i, w in enumerate(writers):
        # One event per step with every tag of that step (not one per tag): a third of the records.
        by_step: dict[int, dict] = {}
        for key, a in train.items():
            for t in range(train_every - 1, a.shape[1], train_every):
                by_step.setdefault(t + 1, {})[key] = a[i, t]
        for step, values in by_step.items():
            w.scalars(step, values)
        for j, step in enumerate(eval_steps):
            values = {key: a[i, j] for key, a in val.items() if j < a.shape[1]}
            if values:
                w.scalars(step, values)
        w.flush()
