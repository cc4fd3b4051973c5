"""dlcore.data splits, cross-validation folds and encoding helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.data import (
    fit_channel_standardizer,
    kfold_indices,
    one_hot,
    split_indices,
    stratified_kfold_indices,
    stratified_split_indices,
    train_val_test_split,
)
from dlcore.errors import ConfigError, DataError, ShapeError


def _imbalanced_labels(seed=0, n=517):
    rng = np.random.default_rng(seed)
    return rng.choice(7, size=n, p=[0.3, 0.2, 0.15, 0.15, 0.1, 0.07, 0.03])


def _assert_partition(parts, n):
    allidx = np.concatenate(parts)
    assert len(allidx) == n and np.array_equal(np.sort(allidx), np.arange(n))


@pytest.mark.parametrize("fractions", [(0.6, 0.2, 0.2), (0.8, 0.1, 0.1), (0.5, 0.5), (0.7, 0.1, 0.15, 0.05)])
def test_split_sizes_and_partition(key, fractions):
    n = 103
    parts = split_indices(key, n, fractions)
    _assert_partition(parts, n)
    for part, f in zip(parts, fractions):
        assert abs(len(part) - f * n) < 1
        assert np.all(np.diff(part) > 0)  # sorted, no repeats


def test_splits_are_keyed(key):
    a = split_indices(key, 50)
    b = split_indices(key, 50)
    c = split_indices(jax.random.fold_in(key, 1), 50)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("fractions", [(0.6, 0.2, 0.2), (0.8, 0.1, 0.1), (0.75, 0.25)])
def test_stratified_split_keeps_class_proportions(key, fractions):
    y = _imbalanced_labels()
    parts = stratified_split_indices(key, y, fractions)
    _assert_partition(parts, len(y))
    n_c = np.bincount(y)
    for part, f in zip(parts, fractions):
        per_class = np.bincount(y[part], minlength=len(n_c))
        assert np.all(np.abs(per_class - f * n_c) < 1), (f, per_class, f * n_c)
        assert abs(len(part) - f * len(y)) < len(n_c)
    again = stratified_split_indices(key, y, fractions)
    for a, b in zip(parts, again):
        np.testing.assert_array_equal(a, b)


def test_kfold_partitions(key):
    n, k = 53, 5
    folds = kfold_indices(key, n, k)
    assert len(folds) == k
    _assert_partition([f.val for f in folds], n)
    for f in folds:
        _assert_partition([f.train, f.val], n)
    sizes = [len(f.val) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    assert not np.array_equal(folds[0].val, kfold_indices(jax.random.fold_in(key, 1), n, k)[0].val)


def test_stratified_kfold_partitions_and_keeps_proportions(key):
    y = _imbalanced_labels(1)
    k = 5
    folds = stratified_kfold_indices(key, y, k)
    _assert_partition([f.val for f in folds], len(y))
    n_c = np.bincount(y)
    for f in folds:
        _assert_partition([f.train, f.val], len(y))
        per_class = np.bincount(y[f.val], minlength=len(n_c))
        assert np.all(np.abs(per_class - n_c / k) < 1)
    sizes = [len(f.val) for f in folds]
    assert max(sizes) - min(sizes) <= 1


def test_train_val_test_split_arrays(key):
    x = np.arange(40)[:, None] * np.ones((1, 3))
    y = np.arange(40) % 4
    (xtr, ytr), (xva, yva), (xte, yte) = train_val_test_split(key, x, y, (0.6, 0.2, 0.2), stratify=True)
    assert (len(xtr), len(xva), len(xte)) == (24, 8, 8)
    np.testing.assert_array_equal(xtr[:, 0] % 4, ytr)  # rows and labels stay paired
    assert np.bincount(yte).tolist() == [2, 2, 2, 2]


def test_bad_split_input(key):
    with pytest.raises(ConfigError, match="sum to 1"):
        split_indices(key, 10, (0.6, 0.2, 0.1))
    with pytest.raises(ConfigError, match="sum to 1"):
        stratified_split_indices(key, np.arange(10) % 2, (0.8, 0.3))
    with pytest.raises(ConfigError, match="non-negative"):
        split_indices(key, 10, (1.2, -0.2))
    y = np.array([0] * 20 + [1] * 2)
    with pytest.raises(DataError, match="class 1 has 2 example.*3 splits"):
        stratified_split_indices(key, y, (0.6, 0.2, 0.2))
    with pytest.raises(DataError, match="class 1 has 2 example.*num_folds=3"):
        stratified_kfold_indices(key, y, 3)
    with pytest.raises(ConfigError, match="exceeds the number of examples"):
        kfold_indices(key, 4, 5)
    with pytest.raises(ConfigError, match=">= 2"):
        kfold_indices(key, 4, 1)
    with pytest.raises(ShapeError, match="10 examples but y has 9"):
        train_val_test_split(key, np.zeros((10, 2)), np.zeros(9, int))


def test_one_hot():
    labels = np.array([2, 0, 1, 2])
    np.testing.assert_array_equal(one_hot(labels, 3), np.eye(3)[labels])
    np.testing.assert_array_equal(jax.jit(one_hot, static_argnums=1)(jnp.asarray(labels), 3), np.eye(3)[labels])
    with pytest.raises(DataError, match=r"labels must lie in \[0, 2\)"):
        one_hot(labels, 2)


def test_channel_standardizer_fitted_on_train_only():
    rng = np.random.default_rng(0)
    x_train = jnp.asarray(rng.normal(size=(20, 4, 4, 3)) * np.array([1.0, 5.0, 0.1]) + 2.0, jnp.float32)
    s = fit_channel_standardizer(np.asarray(x_train))
    assert s.mean.shape == (1, 1, 1, 3)
    xs = np.asarray(s(x_train))  # a jnp batch under strict rank promotion
    np.testing.assert_allclose(xs.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(xs.std(axis=(0, 1, 2)), 1.0, atol=1e-4)
    x_test = rng.normal(size=(5, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(s(x_test), (x_test - s.mean) / s.std)  # train statistics, not test's
