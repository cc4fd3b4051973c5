"""MNIST-1D as a TFDS dataset that is *generated* locally by the ``mnist1d`` package (no download).

The builder writes ``array_record`` files into the TFDS data directory; they are read back with
``tfds.data_source`` (no TensorFlow needed). 4000 train / 1000 test examples of 40 features,
10 classes, exactly the arrays of ``mnist1d.data.make_dataset`` with its default arguments.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from random import getstate as _py_getstate, setstate as _py_setstate

import numpy as np
import tensorflow_datasets as tfds

NUM_FEATURES = 40
NUM_CLASSES = 10


@contextlib.contextmanager
def _preserve_global_rngs():
    # mnist1d seeds Python's and NumPy's *global* generators; put the caller's state back.
    py_state, np_state = _py_getstate(), np.random.get_state()
    try:
        yield
    finally:
        _py_setstate(py_state)
        np.random.set_state(np_state)


def generate_mnist1d() -> dict[str, np.ndarray]:
    """The MNIST-1D arrays from the ``mnist1d`` package's default generator (seed 42).

    Returns:
      dict with ``x`` [4000, 40] float32, ``y`` [4000] int64, ``x_test`` [1000, 40], ``y_test`` [1000].
    """
    from mnist1d.data import get_dataset_args, make_dataset

    with _preserve_global_rngs():
        d = make_dataset(get_dataset_args())
    return {
        "x": d["x"].astype(np.float32),
        "y": d["y"].astype(np.int64),
        "x_test": d["x_test"].astype(np.float32),
        "y_test": d["y_test"].astype(np.int64),
    }


def array_examples(x, y):
    """TFDS examples ``(key, {"x", "label"})`` from arrays ``x`` [N, ...] and ``y`` [N]."""
    for i in range(len(y)):
        yield i, {"x": x[i], "label": int(y[i])}


def array_splits(d: dict[str, np.ndarray]) -> dict:
    """TFDS split generators for ``train``/``test`` from ``x``, ``y``, ``x_test``, ``y_test`` arrays."""
    return {"train": array_examples(d["x"], d["y"]), "test": array_examples(d["x_test"], d["y_test"])}


class Mnist1d(tfds.core.GeneratorBasedBuilder):
    """TFDS builder for MNIST-1D (Greydanus 2020), generated offline."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Generated with mnist1d.make_dataset(get_dataset_args())."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="MNIST-1D: 1-D procedurally generated digits, 40 features, 10 classes.",
            features=tfds.features.FeaturesDict(
                {
                    "x": tfds.features.Tensor(shape=(NUM_FEATURES,), dtype=np.float32),
                    "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
                }
            ),
            supervised_keys=("x", "label"),
            homepage="https://github.com/greydanus/mnist1d",
        )

    def _split_generators(self, dl_manager):
        return array_splits(generate_mnist1d())

    _generate_examples = staticmethod(array_examples)


def prepare_builder(builder_cls: type, data_dir: str) -> None:
    """Write the locally generated dataset of ``builder_cls`` into ``data_dir`` unless it is there.

    Safe to call from several processes at once (a file lock serialises the preparation).
    """
    os.makedirs(data_dir, exist_ok=True)
    builder = builder_cls(data_dir=data_dir, file_format="array_record")
    if builder.is_prepared():
        return
    with open(os.path.join(data_dir, f".{builder.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            builder = builder_cls(data_dir=data_dir, file_format="array_record")
            if not builder.is_prepared():
                from tensorflow_datasets.core.utils import tqdm_utils

                was_active = tqdm_utils._active  # one-second job: no bars; restore the user's setting
                tfds.display_progress_bar(False)
                try:
                    builder.download_and_prepare()
                finally:
                    tfds.display_progress_bar(was_active)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prepare_mnist1d(data_dir: str) -> None:
    """Generate and write MNIST-1D into ``data_dir`` unless it is there already (process-safe)."""
    prepare_builder(Mnist1d, data_dir)
