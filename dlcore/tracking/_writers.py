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
import json
import os
from typing import Mapping, Sequence

import numpy as np

from dlcore.errors import ConfigError, unknown_name


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


def _summary_writer_class():
    """``tensorboardX.SummaryWriter``, imported without PyTorch.

    tensorboardX imports ``torch`` at module level only to accept torch tensors; dlcore hands it
    NumPy values, and where PyTorch is installed that import cost ~4 s of a 20-s ``dlcore run``
    (measured, issue 18). A ``None`` entry in ``sys.modules`` makes that ``import torch`` fail fast.
    """
    import sys

    if "tensorboardX.writer" in sys.modules or "torch" in sys.modules:
        from tensorboardX import SummaryWriter

        return SummaryWriter
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


class TensorBoardWriter(Writer):
    """Event files through tensorboardX (readable by TensorBoard's own EventAccumulator)."""

    def __init__(self, log_dir: str):
        SummaryWriter = _summary_writer_class()
        self.log_dir = log_dir
        self._w = SummaryWriter(logdir=log_dir, flush_secs=3600)

    def scalars(self, step, values):
        for k, v in values.items():
            self._w.add_scalar(k, float(v), int(step))

    def histogram(self, step, name, values):
        self._w.add_histogram(name, np.asarray(values, dtype=np.float64).ravel(), int(step))

    def image(self, step, name, image_HxWxC):
        img = np.asarray(image_HxWxC, dtype=np.float32)
        if img.ndim == 2:
            img = img[..., None]
        self._w.add_image(name, img, int(step), dataformats="HWC")

    def text(self, step, name, text):
        self._w.add_text(name, text, int(step))

    def tags(self, tags):
        self._w.add_text("tags", "  \n".join(f"{k}: {v}" for k, v in tags.items()), 0)
        self._w.add_hparams({k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in tags.items()},
                            {}, name=".", global_step=0)

    def flush(self):
        self._w.flush()

    def close(self):
        self._w.close()


class CSVWriter(Writer):
    """Scalars as a tidy CSV (``step,name,value``) plus ``tags.json``; histograms/images ignored."""

    def __init__(self, log_dir: str, filename: str = "scalars.csv"):
        os.makedirs(log_dir, exist_ok=True)
        self.log_dir = log_dir
        self.path = os.path.join(log_dir, filename)
        new = not os.path.exists(self.path)
        self._f = open(self.path, "a", newline="")
        self._csv = csv.writer(self._f)
        if new:
            self._csv.writerow(["step", "name", "value"])

    def scalars(self, step, values):
        for k, v in values.items():
            self._csv.writerow([int(step), k, repr(float(v))])

    def tags(self, tags):
        with open(os.path.join(self.log_dir, "tags.json"), "w") as f:
            json.dump({k: str(v) if not isinstance(v, (int, float, str, bool)) else v for k, v in tags.items()}, f)

    def flush(self):
        self._f.flush()

    def close(self):
        if not self._f.closed:
            self._f.close()


class WandbWriter(Writer):
    """Weights & Biases in offline mode (no network; sync later with ``wandb sync``).

    Needs the optional ``wandb`` package.
    """

    def __init__(self, log_dir: str, project: str = "dlcore", name: str | None = None):
        try:
            import wandb
        except ImportError:
            raise ConfigError("the wandb writer needs the optional package: pip install wandb") from None
        self._wandb = wandb
        self._run = wandb.init(project=project, name=name, dir=log_dir, mode="offline", reinit=True)

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
    for s in seeds:
        d = os.path.join(root, *( [point] if point else []), f"seed_{int(s)}")
        w = open_writer(d, kinds)
        w.tags({"seed": int(s), **dict(axes or {})})
        out.append(w)
    return out


def write_history(writers: Sequence[Writer], history: Mapping[str, np.ndarray], *, train_every: int = 10) -> None:
    """Write a batched history (``train/*`` ``[S, T]``, ``val/*`` ``[S, E]``) through per-seed writers."""
    eval_steps = np.asarray(history.get("eval_step", []))
    for i, w in enumerate(writers):
        for key, arr in history.items():
            a = np.asarray(arr)
            if key.startswith("train/") and a.ndim == 2:
                for t in range(train_every - 1, a.shape[1], train_every):
                    w.scalars(t + 1, {key: a[i, t]})
            elif key.startswith("val/") and a.ndim == 2:
                for j, s in enumerate(eval_steps):
                    w.scalars(int(s), {key: a[i, j]})
        w.flush()
