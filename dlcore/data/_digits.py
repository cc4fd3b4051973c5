"""scikit-learn's digits as a TFDS dataset written locally (no download): real data, offline.

The 1,797 8×8 grey-level images (values 0–16) of handwritten digits from the UCI optical
recognition set, which ship inside scikit-learn (``sklearn.datasets.load_digits``). The builder
writes ``array_record`` files into the TFDS data directory, read back with ``tfds.data_source``.

Fixed train/test split (part of the dataset's definition, version 1.0.0): a *stratified* 80/20
split by :func:`dlcore.data.stratified_split_indices` with the key
``dlcore.random.key(SPLIT_SEED, "digits-split")``: 1,438 train / 359 test, every class within one
example of 80/20. Images are stored as ``x`` ``[8, 8, 1]`` float32 (raw 0–16 values; standardize
with the training statistics, as ``load_dataset`` does), labels 0–9.
"""

from __future__ import annotations

import fcntl
import os

import numpy as np
import tensorflow_datasets as tfds

IMAGE_SHAPE = (8, 8, 1)
NUM_CLASSES = 10
TEST_FRACTION = 0.2
SPLIT_SEED = 0
"""Seed of the fixed train/test split: part of the dataset's definition (changing it = new version)."""


def generate_digits() -> dict[str, np.ndarray]:
    """The digits arrays with dlcore's fixed stratified 80/20 split.

    Returns:
      dict with ``x`` [1438, 8, 8, 1] float32, ``y`` [1438] int64, ``x_test`` [359, 8, 8, 1],
      ``y_test`` [359]; rows in scikit-learn's order within each split.
    """
    from sklearn.datasets import load_digits

    from dlcore import random as drandom
    from dlcore.data._splits import stratified_split_indices

    d = load_digits()
    x = d.images.astype(np.float32)[..., None]
    y = d.target.astype(np.int64)
    train, test = stratified_split_indices(
        drandom.key(SPLIT_SEED, "digits-split"), y, (1.0 - TEST_FRACTION, TEST_FRACTION)
    )
    return {"x": x[train], "y": y[train], "x_test": x[test], "y_test": y[test]}


class Digits(tfds.core.GeneratorBasedBuilder):
    """TFDS builder for scikit-learn's 8×8 digits, with dlcore's fixed stratified 80/20 split."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "sklearn.datasets.load_digits; stratified 80/20 split, key(0, 'digits-split')."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="UCI optical recognition of handwritten digits (8x8, 0-16) as shipped by scikit-learn.",
            features=tfds.features.FeaturesDict(
                {
                    "x": tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.float32),
                    "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
                }
            ),
            supervised_keys=("x", "label"),
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
        )

    def _split_generators(self, dl_manager):
        d = generate_digits()
        return {
            "train": self._generate_examples(d["x"], d["y"]),
            "test": self._generate_examples(d["x_test"], d["y_test"]),
        }

    def _generate_examples(self, x, y):
        for i in range(len(y)):
            yield i, {"x": x[i], "label": int(y[i])}


def prepare_digits(data_dir: str) -> None:
    """Write digits into ``data_dir`` unless it is there already.

    Safe to call from several processes at once (a file lock serialises the preparation).
    """
    os.makedirs(data_dir, exist_ok=True)
    builder = Digits(data_dir=data_dir, file_format="array_record")
    if builder.is_prepared():
        return
    with open(os.path.join(data_dir, ".digits.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            builder = Digits(data_dir=data_dir, file_format="array_record")
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
