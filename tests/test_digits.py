"""scikit-learn's digits as an offline TFDS dataset: builder, fixed split, training on it."""

import functools

import jax
import numpy as np
import pytest

from dlcore.data import compose, generate_digits, load_dataset, load_tfds_arrays, random_crop, tta_predict


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _rows(x, y):
    # Multiset of (image, label) rows in a canonical order (TFDS may reorder records).
    flat = np.c_[np.asarray(x).reshape(len(x), -1), np.asarray(y)]
    return flat[np.lexsort(flat.T)]


def test_load_dataset_shapes(digits):
    assert digits.name == "digits" and digits.num_classes == 10
    assert digits.x_train.shape[1:] == (8, 8, 1)
    assert len(digits.x_train) + len(digits.x_val) == 1438 and digits.x_test.shape == (359, 8, 8, 1)
    assert set(np.unique(np.asarray(digits.y_test))) == set(range(10))


def test_tfds_records_are_the_fixed_stratified_split():
    from sklearn.datasets import load_digits

    raw = generate_digits()
    arrays, c = load_tfds_arrays("digits")
    assert c == 10
    for split, (xk, yk) in (("train", ("x", "y")), ("test", ("x_test", "y_test"))):
        x, y = arrays[split]
        assert x.dtype == np.float32 and x.shape[1:] == (8, 8, 1)
        np.testing.assert_array_equal(_rows(x, y), _rows(raw[xk], raw[yk]))
    # Train + test is exactly scikit-learn's data set, and every class is split 80/20 (± < 1).
    full = load_digits()
    both = _rows(np.r_[raw["x"], raw["x_test"]], np.r_[raw["y"], raw["y_test"]])
    np.testing.assert_array_equal(both, _rows(full.images[..., None].astype(np.float32), full.target))
    n_c = np.bincount(full.target)
    assert np.all(np.abs(np.bincount(raw["y_test"]) - 0.2 * n_c) < 1)
    again = generate_digits()
    np.testing.assert_array_equal(again["y_test"], raw["y_test"])  # the split is fixed


def test_mlp_trains_on_digits_with_crop_augmentation_and_tta(digits):
    from dlcore.metrics import accuracy
    from dlcore.nn import MLP
    from dlcore.optim import optimizer_fn
    from dlcore.train import Recipe, fit

    recipe = Recipe(
        model=MLP(widths=(64,), num_outputs=10),
        optimizer=optimizer_fn("adam"),
        augment=compose(functools.partial(random_crop, padding=1, mode="edge")),
    )
    res = fit(recipe, digits, 0, hparams={"learning_rate": 3e-3}, num_steps=300, batch_size=64, eval_every=300,
              progress=False)
    assert float(res.final["test/accuracy"]) > 0.85
    variables = {"params": res.state.params, **res.state.model_state}

    def probs(v):
        # The 8×8 model sees 7×7 views padded back by one edge pixel (a fixed crop + resize stand-in).
        v = jax.numpy.pad(v, ((0, 0), (0, 1), (0, 1), (0, 0)), mode="edge")
        return jax.nn.softmax(recipe.model.apply(variables, v, train=False))

    p = tta_predict(probs, digits.x_test, 7, flips=False)
    assert p.shape == (359, 10)
    assert float(accuracy(p, digits.y_test)) > 0.8
