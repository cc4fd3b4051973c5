"""Datasets (MNIST-1D generated offline, any prepared TFDS classification set) and sampling."""

from dlcore.data._dataset import (
    Dataset,
    Standardizer,
    carve_indices,
    carve_validation,
    fit_standardizer,
    from_arrays,
    load_dataset,
    permute_positions,
    position_permutation,
)
from dlcore.data._lazy import RowSource
from dlcore.data._mnist1d import Mnist1d, generate_mnist1d, prepare_mnist1d
from dlcore.data._sampler import (
    batch_indices,
    chunk_batch_indices,
    epoch_permutation,
    steps_per_epoch,
)
from dlcore.data._tfds import Records, default_data_dir, load_tfds_arrays

__all__ = [
    "Dataset",
    "Mnist1d",
    "Records",
    "RowSource",
    "Standardizer",
    "batch_indices",
    "carve_indices",
    "carve_validation",
    "chunk_batch_indices",
    "default_data_dir",
    "epoch_permutation",
    "fit_standardizer",
    "from_arrays",
    "generate_mnist1d",
    "load_dataset",
    "load_tfds_arrays",
    "permute_positions",
    "position_permutation",
    "prepare_mnist1d",
    "steps_per_epoch",
]

# Classic-ML data handling: splits, cross-validation, augmentation, encoding, digits.
from dlcore.data._augment import (  # noqa: E402
    brightness_contrast,
    compose,
    fixed_crops,
    random_brightness,
    random_contrast,
    random_crop,
    random_flip,
    tta_predict,
)
from dlcore.data._digits import Digits, generate_digits, prepare_digits  # noqa: E402
from dlcore.data._encoding import fit_channel_standardizer, one_hot  # noqa: E402
from dlcore.data._splits import (  # noqa: E402
    Fold,
    kfold_indices,
    split_indices,
    stratified_kfold_indices,
    stratified_split_indices,
    train_val_test_split,
)

__all__ += [
    "Digits",
    "Fold",
    "brightness_contrast",
    "compose",
    "fit_channel_standardizer",
    "fixed_crops",
    "generate_digits",
    "kfold_indices",
    "one_hot",
    "prepare_digits",
    "random_brightness",
    "random_contrast",
    "random_crop",
    "random_flip",
    "split_indices",
    "stratified_kfold_indices",
    "stratified_split_indices",
    "train_val_test_split",
    "tta_predict",
]
