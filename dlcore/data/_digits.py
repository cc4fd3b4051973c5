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

import numpy as np
import tensorflow_datasets as tfds

from dlcore.data._mnist1d import array_examples, array_splits, prepare_builder

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
        return array_splits(generate_digits())

    _generate_examples = staticmethod(array_examples)


def prepare_digits(data_dir: str) -> None:
    """Write digits into ``data_dir`` unless it is there already (process-safe)."""
    prepare_builder(Digits, data_dir)

