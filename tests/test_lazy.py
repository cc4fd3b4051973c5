"""Training rows read on demand (dlcore.data._lazy): the same values as the in-memory load, only the rows asked for."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.data import RowSource, load_dataset


@pytest.mark.parametrize("kwargs", [{}, {"permute_seed": 3, "val_fraction": 0.2, "split_seed": 1},
                                    {"standardize": False}])
def test_lazy_training_split_equals_the_in_memory_one(mnist1d, kwargs):
    eager = load_dataset("mnist1d", **kwargs) if kwargs else mnist1d
    lazy = load_dataset("mnist1d", lazy_train=True, **kwargs)
    assert isinstance(lazy.x_train, RowSource) and lazy.x_train.shape == eager.x_train.shape
    # Streamed standardization statistics give the same float32 values here (bitwise).
    np.testing.assert_array_equal(np.asarray(lazy.x_train), np.asarray(eager.x_train))
    np.testing.assert_array_equal(np.asarray(lazy.y_train), np.asarray(eager.y_train))
    for name in ("x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(np.asarray(getattr(lazy, name)), np.asarray(getattr(eager, name)))
    assert lazy.num_classes == eager.num_classes


def test_row_source_reads_only_the_rows_asked_for(mnist1d):
    lazy = load_dataset("mnist1d", lazy_train=True)
    x = lazy.x_train
    np.testing.assert_array_equal(x[10:13], np.asarray(mnist1d.x_train[10:13]))
    np.testing.assert_array_equal(x[7], np.asarray(mnist1d.x_train[7]))
    np.testing.assert_array_equal(x[5:9, 2], np.asarray(mnist1d.x_train[5:9, 2]))
    assert x.rows_read == [(10, 13), (7, 8), (5, 9)]
    with pytest.raises(TypeError, match="contiguous row slices"):
        x[::2]

# Sharded placement over processes (each reads only its rows): tests/test_multiprocess.py.
