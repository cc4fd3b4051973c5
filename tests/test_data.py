"""dlcore.data: MNIST-1D builder, TFDS loading, validation split, standardization."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from dlcore.data import carve_validation, fit_standardizer, from_arrays, generate_mnist1d, load_tfds_arrays
from dlcore.errors import DataError, ShapeError


def test_mnist1d_shapes_and_split(mnist1d):
    assert mnist1d.x_train.shape == (3600, 40) and mnist1d.x_val.shape == (400, 40)
    assert mnist1d.x_test.shape == (1000, 40)
    assert mnist1d.num_classes == 10
    assert set(np.unique(np.asarray(mnist1d.y_train))) == set(range(10))


def test_mnist1d_matches_generator():
    raw = generate_mnist1d()
    arrays, c = load_tfds_arrays("mnist1d")
    x, y = arrays["train"]
    assert c == 10 and x.shape == (4000, 40)
    # TFDS may reorder records; the multiset of (x, y) rows is the generator's.
    order_a = np.lexsort(np.c_[raw["x"], raw["y"]].T)
    order_b = np.lexsort(np.c_[x, y].T)
    np.testing.assert_array_equal(raw["x"][order_a], x[order_b])
    np.testing.assert_array_equal(raw["y"][order_a], y[order_b])


def test_generation_leaves_global_rng_untouched():
    state = np.random.get_state()[1].copy()
    generate_mnist1d()
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_standardization_fitted_on_train_only(mnist1d):
    x = np.asarray(mnist1d.x_train)
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(0), 1, atol=1e-4)
    # Test statistics are not forced to 0/1: they come from the train fit.
    assert np.abs(np.asarray(mnist1d.x_test).mean(0)).max() > 1e-4


def test_fit_standardizer_constant_feature():
    s = fit_standardizer(np.array([[1.0, 2.0], [1.0, 4.0]]))
    out = s(np.array([[1.0, 3.0]]))
    np.testing.assert_allclose(out, [[0.0, 0.0]])


def test_carve_validation_is_a_partition():
    x = np.arange(100)[:, None].astype(np.float32)
    y = np.arange(100) % 3
    xt, yt, xv, yv = carve_validation(x, y, 0.2, seed=1)
    assert len(xv) == 20 and len(xt) == 80
    assert sorted(np.r_[xt[:, 0], xv[:, 0]].tolist()) == list(range(100))
    xv2 = carve_validation(x, y, 0.2, seed=1)[2]
    np.testing.assert_array_equal(xv, xv2)
    assert not np.array_equal(xv, carve_validation(x, y, 0.2, seed=2)[2])


def test_bad_shapes():
    with pytest.raises(ShapeError, match="train: x has 3 examples but y has 2"):
        from_arrays(np.zeros((3, 2)), np.zeros(2), np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(DataError, match="val_fraction"):
        from_arrays(np.zeros((3, 2)), np.zeros(3), np.zeros((1, 2)), np.zeros(1), val_fraction=1.5)


def test_any_prepared_tfds_dataset_via_mock(tmp_path):
    with tfds.testing.mock_data(num_examples=30, policy=tfds.testing.MockPolicy.USE_CODE):
        arrays, c = load_tfds_arrays("mnist", data_dir=str(tmp_path))
    x, y = arrays["train"]
    assert c == 10 and x.shape == (30, 28, 28, 1) and y.shape == (30,)
    assert y.dtype == np.int32 and y.min() >= 0 and y.max() < 10


def test_unprepared_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not prepared.*tfds build mnist"):
        load_tfds_arrays("mnist", data_dir=str(tmp_path))
    with pytest.raises(DataError, match="unknown dataset 'no_such_set'"):
        load_tfds_arrays("no_such_set", data_dir=str(tmp_path))


def test_position_permutation_is_keyed_and_applied_to_every_split():
    from dlcore.data import permute_positions, position_permutation

    p = position_permutation(3, 40)
    assert sorted(p.tolist()) == list(range(40)) and (p == position_permutation(3, 40)).all()
    assert not (p == position_permutation(4, 40)).all() and not (p == np.arange(40)).all()
    x = np.arange(2 * 40 * 3, dtype=np.float32).reshape(2, 40, 3) + 1  # positions on axis 1, any trailing axes
    assert (permute_positions(x, p)[:, 5] == x[:, p[5]]).all()
    rng = np.random.default_rng(0)
    xtr, xte = rng.normal(size=(50, 40)), rng.normal(size=(20, 40))
    ytr, yte = np.arange(50) % 3, np.arange(20) % 3
    plain = from_arrays(xtr, ytr, xte, yte, val_fraction=0.2, standardize=False)
    shuf = from_arrays(xtr, ytr, xte, yte, val_fraction=0.2, standardize=False, permute_seed=3)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(np.asarray(shuf.split(split)[0]), np.asarray(plain.split(split)[0])[:, p])
    with pytest.raises(ShapeError, match="cannot reorder inputs of shape"):
        permute_positions(np.zeros((2, 39)), p)


def test_no_validation_split_trains_and_reports_nan_validation():
    # The MNIST-1D paper's setup: all training examples, raw inputs; fit used to fail with ZeroDivisionError.
    from dlcore.data import load_dataset
    from dlcore.nn import MLP
    from dlcore.optim import optimizer_fn
    from dlcore.train import Recipe, fit

    data = load_dataset("mnist1d", val_fraction=0.0, standardize=False)
    assert data.x_train.shape == (4000, 40) and data.x_val.shape == (0, 40)
    assert np.asarray(data.x_train).std() > 0.5  # raw, not standardized per feature
    res = fit(Recipe(MLP(widths=(16,), num_outputs=10), optimizer_fn("adam")), data, seed=0,
              hparams=dict(learning_rate=1e-2), num_steps=40, batch_size=100, eval_every=20, progress=False)
    assert np.isnan(res.final["val/accuracy"]) and np.isnan(res.final["val/loss"])
    assert 0.1 < float(res.final["test/accuracy"]) <= 1.0 and np.isfinite(res.final["test/loss"])
