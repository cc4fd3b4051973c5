"""In-memory (device) datasets: train/validation/test arrays, carved validation, standardization."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dlcore import random as drandom
from dlcore.errors import DataError, ShapeError
from dlcore.host import jit_once


@struct.dataclass
class Dataset:
    """A classification dataset held in (device) memory; a pytree, so it can be passed to ``jit``.

    Attributes:
      x_train, y_train: ``[N_train, ...]`` inputs and ``[N_train]`` int32 labels.
      x_val, y_val: validation split (carved from train; used for model selection).
      x_test, y_test: test split (evaluated once per run, never used for selection).
      num_classes: number of classes (static).
      name: dataset name (static).
    """

    x_train: jax.Array
    y_train: jax.Array
    x_val: jax.Array
    y_val: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    num_classes: int = struct.field(pytree_node=False, default=0)
    name: str = struct.field(pytree_node=False, default="")

    def split(self, which: str) -> tuple[jax.Array, jax.Array]:
        """``(x, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if which not in ("train", "val", "test"):
            raise ValueError(f"unknown split {which!r}; use 'train', 'val' or 'test'")
        return getattr(self, f"x_{which}"), getattr(self, f"y_{which}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def nbytes(self) -> int:
        return sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in jax.tree.leaves(self))


class Standardizer(NamedTuple):
    """Per-feature (or per-channel) affine standardization ``(x - mean) / std`` fitted on train."""

    mean: np.ndarray
    std: np.ndarray

    def __call__(self, x):
        return (x - self.mean) / self.std


def fit_standardizer(x_train, axis=0, eps: float = 1e-8) -> Standardizer:
    """Fit mean/std over ``axis`` of the training inputs only (never on validation or test).

    Args:
      x_train: ``[N, ...]`` training inputs.
      axis: axes reduced; ``0`` gives per-feature statistics, ``(0, 1, 2)`` per-channel for NHWC.
    Returns:
      a :class:`Standardizer` whose statistics broadcast against ``x``.

    >>> s = fit_standardizer(np.array([[0.0, 10.0], [2.0, 30.0]]))
    >>> s(np.array([[1.0, 20.0]])).tolist()
    [[0.0, 0.0]]
    """
    x = np.asarray(x_train, dtype=np.float64)
    mean = x.mean(axis=axis, keepdims=True)[0]
    std = x.std(axis=axis, keepdims=True)[0]
    std = np.where(std < eps, 1.0, std)  # constant features stay finite
    return Standardizer(mean.astype(np.float32), std.astype(np.float32))


def carve_validation(x, y, fraction: float, seed: int = 0):
    """Split ``fraction`` of (x, y) off as a validation set, keyed by ``seed`` (default 0).

    The split belongs to the dataset, not to the run: every seed of a study sees the same split.

    Returns:
      ``(x_train, y_train, x_val, y_val)``.
    """
    train, val = carve_indices(len(y), fraction, seed)
    return x[train], y[train], x[val], y[val]


def carve_indices(n: int, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` example indices (each ascending) of :func:`carve_validation` for ``n`` examples.

    >>> [len(a) for a in carve_indices(10, 0.2)]
    [8, 2]
    """
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {fraction}")
    n_val = int(round(n * fraction))
    if fraction > 0 and n_val == 0:
        raise DataError(f"val_fraction={fraction} leaves no validation example out of {n}")
    perm = _keyed_permutation(int(seed), "split", n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def position_permutation(seed: int, length: int) -> np.ndarray:
    """A fixed permutation of ``length`` input positions, keyed by ``seed`` (stream ``"permute"``).

    The MNIST-1D paper's "shuffled" experiment: one permutation of the 40 positions applied to every
    example of every split destroys spatial structure while keeping all the information, so a model
    without a locality prior (logistic regression, MLP) is unaffected and a CNN or RNN is hurt.

    >>> p = position_permutation(0, 40)
    >>> sorted(p.tolist()) == list(range(40)), bool((p == position_permutation(0, 40)).all())
    (True, True)
    """
    if int(length) <= 0:
        raise DataError(f"cannot permute {length} positions; the inputs need a position axis of length ≥ 1")
    return _keyed_permutation(int(seed), "permute", int(length)).copy()


@functools.lru_cache(maxsize=64)
def _keyed_permutation(seed: int, stream: str, n: int) -> np.ndarray:
    """``permutation(key(seed, stream), n)`` as one program compiled for a single run (the eager ops
    compiled one by one cost ~0.5 s of every process's start-up); the same integers."""
    perm = np.asarray(jit_once(lambda: jax.random.permutation(drandom.key(seed, stream), n))())
    perm.setflags(write=False)  # cached: shared by every caller
    return perm


def permute_positions(x, perm) -> np.ndarray:
    """``x[:, perm]``: the positions (axis 1) of every example reordered by ``perm`` ``[L]``.

    >>> permute_positions(np.array([[1.0, 2.0, 3.0]]), np.array([2, 0, 1])).tolist()
    [[3.0, 1.0, 2.0]]
    """
    x = np.asarray(x)
    perm = np.asarray(perm)
    if x.ndim < 2 or x.shape[1] != perm.shape[0]:
        raise ShapeError(f"a permutation of {perm.shape[0]} positions cannot reorder inputs of shape {x.shape} "
                         "(positions are axis 1)")
    return x[:, perm]


def from_arrays(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    x_val=None,
    y_val=None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    standardize: bool | str = True,
    num_classes: int | None = None,
    name: str = "arrays",
    permute_seed: int | None = None,
    device=None,
) -> Dataset:
    """Build a :class:`Dataset` from NumPy arrays: carve validation, standardize, move to device.

    Args:
      x_train, y_train, x_test, y_test: ``[N, ...]`` inputs and ``[N]`` integer labels.
      x_val, y_val: an explicit validation split (otherwise carved from train).
      val_fraction: fraction of train carved off as validation when none is given.
      split_seed: key of the validation split.
      standardize: ``True``/``"feature"`` per feature, ``"channel"`` per last axis, ``False`` none.
      num_classes: default ``max(label) + 1``.
      permute_seed: if given, reorder the positions (axis 1) of every split by
        :func:`position_permutation` ``(permute_seed, L)`` — the same permutation for all splits.
      device: where to put the arrays (default: JAX's default device).
    """
    for xa, ya, which in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(xa) != len(ya):
            raise ShapeError(f"{which}: x has {len(xa)} examples but y has {len(ya)}")
    x_train = np.asarray(x_train, np.float32)
    x_test = np.asarray(x_test, np.float32)
    if x_val is None:
        x_train, y_train, x_val, y_val = carve_validation(x_train, y_train, val_fraction, split_seed)
    x_val = np.asarray(x_val, np.float32)
    if permute_seed is not None:
        perm = position_permutation(permute_seed, x_train.shape[1] if x_train.ndim > 1 else 0)
        x_train, x_val, x_test = (permute_positions(a, perm) for a in (x_train, x_val, x_test))
    if standardize:
        axis = tuple(range(x_train.ndim - 1)) if standardize == "channel" else 0
        s = fit_standardizer(x_train, axis=axis)
        x_train, x_val, x_test = s(x_train), s(x_val), s(x_test)
    if num_classes is None:
        num_classes = int(max(np.max(y_train), np.max(y_test))) + 1
    for ya, which in ((y_train, "train"), (y_val, "validation"), (y_test, "test")):
        ya = np.asarray(ya)
        if ya.size and (not np.issubdtype(ya.dtype, np.integer) or ya.min() < 0 or ya.max() >= num_classes):
            raise DataError(f"{which} labels must be integers in [0, {num_classes}) (num_classes={num_classes}), "
                            f"got {ya.dtype} values in [{ya.min()}, {ya.max()}]; fix the labels or num_classes")
    for xa, which in ((x_train, "train"), (x_val, "validation"), (x_test, "test")):
        if not np.isfinite(xa).all():
            raise DataError(f"{which} inputs contain NaN or infinity ({int((~np.isfinite(xa)).sum())} values); "
                            "clean or impute them before training")
    put = (lambda a: jax.device_put(a, device)) if device is not None else jnp.asarray
    return Dataset(
        x_train=put(x_train),
        y_train=put(np.asarray(y_train, np.int32)),
        x_val=put(x_val),
        y_val=put(np.asarray(y_val, np.int32)),
        x_test=put(x_test),
        y_test=put(np.asarray(y_test, np.int32)),
        num_classes=num_classes,
        name=name,
    )


def load_dataset(
    name: str = "mnist1d",
    *,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    standardize: bool | str = True,
    data_dir: str | None = None,
    permute_seed: int | None = None,
    device=None,
    lazy_train: bool = False,
) -> Dataset:
    """Load a TFDS classification dataset into device memory.

    ``lazy_train=True`` leaves the training split on disk: ``x_train``/``y_train`` are
    :class:`RowSource` objects that read (and standardize) only the rows asked for, so a multi-host
    process materializes just its shard (:func:`dlcore.parallel.distribute_dataset` with
    ``shard_train``). The standardization statistics are then streamed over the training split in
    chunks (float64 sums; equal to the in-memory ones up to float32 rounding).

    ``val_fraction=0.0`` keeps every training example (no validation split; validation metrics are
    NaN). ``permute_seed`` reorders the input positions of every split by one fixed permutation
    (:func:`position_permutation`). The MNIST-1D paper's setup: ``val_fraction=0.0,
    standardize=False`` (all 4,000 training examples, raw inputs).

    ``mnist1d`` is generated locally on first use (into ``data_dir``/``$TFDS_DATA_DIR``); other
    names are read with ``tfds.data_source`` if prepared.

    >>> data = load_dataset("mnist1d")                      # doctest: +SKIP
    >>> data.x_train.shape, data.x_val.shape, data.x_test.shape  # doctest: +SKIP
    ((3600, 40), (400, 40), (1000, 40))
    """
    from dlcore.data._tfds import load_tfds_arrays

    if lazy_train:
        from dlcore.data._lazy import lazy_dataset

        return lazy_dataset(name, data_dir, val_fraction=val_fraction, split_seed=split_seed,
                            standardize=standardize, permute_seed=permute_seed)
    arrays, num_classes = load_tfds_arrays(name, data_dir)
    (x_tr, y_tr), (x_te, y_te) = arrays["train"], arrays["test"]
    return from_arrays(
        x_tr,
        y_tr,
        x_te,
        y_te,
        val_fraction=val_fraction,
        split_seed=split_seed,
        standardize=standardize,
        num_classes=num_classes,
        name=name,
        permute_seed=permute_seed,
        device=device,
    )
