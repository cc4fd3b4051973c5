"""Datasets (MNIST-1D generated offline, any prepared TFDS classification set) and sampling."""

from dlcore.data._dataset import (
    Dataset,
    Standardizer,
    carve_validation,
    fit_standardizer,
    from_arrays,
    load_dataset,
)
from dlcore.data._mnist1d import Mnist1d, generate_mnist1d, prepare_mnist1d
from dlcore.data._sampler import (
    batch_indices,
    chunk_batch_indices,
    epoch_permutation,
    steps_per_epoch,
)
from dlcore.data._tfds import default_data_dir, load_tfds_arrays

__all__ = [
    "Dataset",
    "Mnist1d",
    "Standardizer",
    "batch_indices",
    "carve_validation",
    "chunk_batch_indices",
    "default_data_dir",
    "epoch_permutation",
    "fit_standardizer",
    "from_arrays",
    "generate_mnist1d",
    "load_dataset",
    "load_tfds_arrays",
    "prepare_mnist1d",
    "steps_per_epoch",
]
