"""Training rows read on demand: a multi-host process loads only the rows its devices hold."""

from __future__ import annotations

from typing import Callable

import numpy as np

from dlcore.errors import DataError

STATS_CHUNK = 256
"""Records decoded at a time (statistics and row reads): bounds the memory beyond the rows kept."""


class RowSource:
    """``[N, ...]`` rows of one split, read (and transformed) only when sliced.

    Has ``shape``, ``dtype``, ``ndim``, ``len``; ``src[a:b]`` reads rows ``a..b-1`` and
    ``np.asarray(src)`` all of them. ``rows_read`` lists the ``(start, stop)`` ranges read so far.

    >>> src = RowSource(lambda a, b: np.arange(a, b, dtype=np.float32)[:, None], (6, 1), np.float32)
    >>> src[2:4].ravel().tolist(), src.rows_read
    ([2.0, 3.0], [(2, 4)])
    """

    def __init__(self, read: Callable[[int, int], np.ndarray], shape, dtype):
        self._read, self.shape, self.dtype = read, tuple(shape), np.dtype(dtype)
        self.rows_read: list[tuple[int, int]] = []

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        rest = ()
        if isinstance(index, tuple):
            index, rest = index[0], index[1:]
        if isinstance(index, (int, np.integer)):
            return self[int(index) : int(index) + 1][(0,) + rest]
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError(f"RowSource reads contiguous row slices, not {index!r}")
        start, stop, _ = index.indices(self.shape[0])
        stop = max(start, stop)
        self.rows_read.append((start, stop))
        out = np.asarray(self._read(start, stop), self.dtype)
        return out[(slice(None),) + rest] if rest else out

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        return f"RowSource(shape={self.shape}, dtype={self.dtype.name})"


def _stream_stats(records, indices, axis_last_only: bool, transform, eps=1e-8):
    """Mean and std of the (transformed) rows ``indices`` read ``STATS_CHUNK`` at a time (float64 sums
    around a shift, which keeps the one-pass variance accurate)."""
    shift = total = total_sq = None
    count = 0
    for a in range(0, len(indices), STATS_CHUNK):
        x = transform(records.take(indices[a : a + STATS_CHUNK])[0]).astype(np.float64)
        axes = tuple(range(x.ndim - 1)) if axis_last_only else (0,)
        if shift is None:
            shift = x.mean(axis=axes, keepdims=True)[0]
            total = np.zeros_like(shift)
            total_sq = np.zeros_like(shift)
        d = x - shift
        total += d.sum(axis=axes, keepdims=True)[0]
        total_sq += (d * d).sum(axis=axes, keepdims=True)[0]
        count += int(np.prod([x.shape[i] for i in axes]))
    mean_d = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean_d * mean_d, 0.0))
    std = np.where(std < eps, 1.0, std)
    return (shift + mean_d).astype(np.float32), std.astype(np.float32)


def lazy_dataset(name, data_dir, *, val_fraction, split_seed, standardize, permute_seed):
    """:func:`dlcore.data.load_dataset` with the training split as :class:`RowSource` objects."""
    from dlcore.data._dataset import (
        Dataset, carve_indices, permute_positions, position_permutation, Standardizer,
    )
    from dlcore.data._tfds import load_tfds_arrays

    arrays, num_classes = load_tfds_arrays(name, data_dir, lazy=("train",))
    records = arrays["train"]
    x_te, y_te = arrays["test"]
    train_idx, val_idx = carve_indices(len(records), val_fraction, split_seed)
    x_val, y_val = records.take(val_idx)
    x_val, x_te = np.asarray(x_val, np.float32), np.asarray(x_te, np.float32)
    perm = None
    if permute_seed is not None:
        perm = position_permutation(permute_seed, x_te.shape[1] if x_te.ndim > 1 else 0)

    def positions(x):
        x = np.asarray(x, np.float32)
        return permute_positions(x, perm) if perm is not None else x

    x_val, x_te = positions(x_val), positions(x_te)
    scale = lambda x: x  # noqa: E731
    if standardize and len(train_idx):
        mean, std = _stream_stats(records, train_idx, standardize == "channel", positions)
        scale = Standardizer(mean, std)
        x_val, x_te = scale(x_val), scale(x_te)

    n = len(train_idx)
    x_shape = (n,) + tuple(x_te.shape[1:])

    labels: dict[tuple[int, int], np.ndarray] = {}  # decoded with the inputs, until asked for

    def read_x(a, b):
        x = np.empty((b - a,) + x_shape[1:], np.float32)  # the rows asked for; records decoded a chunk at a time
        y = np.empty((b - a,), np.int32)
        for c in range(a, b, STATS_CHUNK):
            d = min(b, c + STATS_CHUNK)
            got = records.take(train_idx[c:d])
            x[c - a : d - a], y[c - a : d - a] = scale(positions(got[0])), got[1]
        labels[(a, b)] = y
        if not np.isfinite(x).all():
            raise DataError(f"training rows {a}:{b} contain NaN or infinity; clean or impute them before training")
        return x

    def read_y(a, b):
        y = labels.pop((a, b), None)
        if y is None:
            y = np.empty((b - a,), np.int32)
            for c in range(a, b, STATS_CHUNK):
                d = min(b, c + STATS_CHUNK)
                y[c - a : d - a] = records.take(train_idx[c:d])[1]
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise DataError(f"training labels of rows {a}:{b} must be integers in [0, {num_classes}), got values in "
                            f"[{y.min()}, {y.max()}]; fix the labels or num_classes")
        return y

    return Dataset(
        x_train=RowSource(read_x, x_shape, np.float32),
        y_train=RowSource(read_y, (n,), np.int32),
        x_val=x_val, y_val=np.asarray(y_val, np.int32), x_test=x_te, y_test=np.asarray(y_te, np.int32),
        num_classes=num_classes, name=name,
    )
