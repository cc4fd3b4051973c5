"""dlcore.classic logistic regression: stable losses, GD fits vs scikit-learn, digits accuracy."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.classic import (
    binary_cross_entropy, fit_binary_logistic, fit_softmax_regression, logistic_logits, predict_logistic, predict_proba,
    softmax_cross_entropy
)
from dlcore.data import fit_standardizer, generate_digits
from dlcore.errors import ConfigError, ShapeError
from dlcore.losses import cross_entropy


def test_binary_cross_entropy_equals_formula_and_is_stable():
    s = jnp.linspace(-15.0, 15.0, 31)
    for y in (0.0, 1.0):
        lab = jnp.full(s.shape, y)
        p = 1.0 / (1.0 + np.exp(-np.asarray(s, np.float64)))  # the textbook formula, in float64
        naive = -(y * np.log(p) + (1 - y) * np.log1p(-p))
        np.testing.assert_allclose(binary_cross_entropy(s, lab), naive, rtol=2e-4, atol=1e-6)
        ref = optax.sigmoid_binary_cross_entropy(s, lab)
        np.testing.assert_allclose(binary_cross_entropy(s, lab), ref, rtol=1e-5, atol=1e-7)
    big = jnp.array([1000.0, -1000.0, 1000.0, -1000.0])
    out = binary_cross_entropy(big, jnp.array([1, 0, 0, 1]))
    np.testing.assert_allclose(out, [0.0, 0.0, 1000.0, 1000.0])  # the naive log(σ) gives inf/nan here
    g = jax.grad(lambda z: jnp.sum(binary_cross_entropy(z, jnp.array([1, 0, 0, 1]))))(big)
    assert np.all(np.isfinite(g))


def test_softmax_cross_entropy_matches_library_and_is_stable():
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(16, 7)) * 3).astype(np.float32)
    labels = rng.integers(0, 7, size=16)
    ce = jax.jit(softmax_cross_entropy)
    ours = ce(logits, labels)
    np.testing.assert_allclose(ours, cross_entropy(logits, labels), rtol=1e-6, atol=1e-6)
    z = logits.astype(np.float64)
    naive = -np.log(np.exp(z)[np.arange(16), labels] / np.sum(np.exp(z), -1))
    np.testing.assert_allclose(ours, naive, rtol=1e-5, atol=1e-6)
    # Shifting all scores by a constant changes nothing (the max-subtraction identity)...
    np.testing.assert_allclose(ce(logits + 500.0, labels), ours, atol=1e-4)
    # ...and scores of 1000 would overflow exp() without it.
    big = jnp.array([[1000.0, 0.0, -1000.0]])
    np.testing.assert_allclose(softmax_cross_entropy(big, jnp.array([0])), [0.0])
    np.testing.assert_allclose(softmax_cross_entropy(big, jnp.array([2])), [2000.0])
    assert np.all(np.isfinite(jax.grad(lambda z: softmax_cross_entropy(z, jnp.array([2]))[0])(big)))


def _synthetic(n=200, d=5, classes=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    scores = x @ rng.normal(size=(d, classes)) + 0.5 * rng.normal(size=(n, classes))
    return x, np.argmax(scores, axis=1)


def test_binary_fit_equals_sklearn_l2_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    x, y = _synthetic()
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(x, y)
    # sklearn minimizes ½‖w‖² + C·Σ BCE; divided by C·N that is mean BCE + (l2/2)‖w‖², l2 = 1/(C·N).
    m, loss = fit_binary_logistic(x, y, learning_rate=1.0, num_steps=1000, l2=1.0 / len(y))
    np.testing.assert_allclose(m.weights, ref.coef_[0], atol=1e-4)
    np.testing.assert_allclose(m.bias, ref.intercept_[0], atol=1e-4)
    np.testing.assert_allclose(predict_proba(m, x), ref.predict_proba(x), atol=1e-4)
    np.testing.assert_array_equal(predict_logistic(m, x), ref.predict(x))
    assert loss[-1] < loss[0]


def test_softmax_fit_equals_sklearn_multinomial():
    from sklearn.linear_model import LogisticRegression

    x, y = _synthetic(classes=3, seed=1)
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(x, y)
    fit = jax.jit(lambda a, b: fit_softmax_regression(a, b, 3, learning_rate=1.0, num_steps=1000, l2=1.0 / len(b)))
    m, _ = fit(x, y)
    np.testing.assert_allclose(m.weights, ref.coef_.T, atol=1e-4)
    # Softmax intercepts are defined up to a shared constant.
    np.testing.assert_allclose(m.bias - m.bias.mean(), ref.intercept_ - ref.intercept_.mean(), atol=1e-4)
    np.testing.assert_allclose(predict_proba(m, x), ref.predict_proba(x), atol=1e-4)


def test_softmax_regression_reaches_sklearn_unpenalized_accuracy_on_digits():
    from sklearn.linear_model import LogisticRegression

    d = generate_digits()
    s = fit_standardizer(d["x"].reshape(len(d["x"]), -1))
    x_tr, x_te = s(d["x"].reshape(len(d["x"]), -1)), s(d["x_test"].reshape(len(d["x_test"]), -1))
    ref = LogisticRegression(C=np.inf, max_iter=3000).fit(x_tr, d["y"]).score(x_te, d["y_test"])
    m, loss = jax.jit(lambda a, b: fit_softmax_regression(a, b, 10, learning_rate=0.5, num_steps=600))(x_tr, d["y"])
    acc = float(jnp.mean(predict_logistic(m, x_te) == d["y_test"]))
    assert ref > 0.9
    assert acc >= ref - 0.01, (acc, ref)
    assert logistic_logits(m, x_te).shape == (len(x_te), 10) and np.all(np.diff(np.asarray(loss)) <= 1e-6)


def test_vmap_over_learning_rate_and_custom_optimizer():
    x, y = _synthetic()
    def final_loss(lr):
        return fit_binary_logistic(x, y, learning_rate=lr, num_steps=30)[1][-1]

    losses = jax.vmap(final_loss)(jnp.array([0.01, 1.0]))
    assert losses[1] < losses[0]
    _, adam_loss = fit_binary_logistic(x, y, learning_rate=0.0, num_steps=30, optimizer=optax.adam(0.1))
    assert adam_loss[-1] < adam_loss[0]


def test_bad_input():
    x, y = _synthetic(n=10)
    with pytest.raises(ShapeError, match="10 examples but y"):
        fit_binary_logistic(x, y[:5], learning_rate=0.1, num_steps=1)
    with pytest.raises(ShapeError, match="8 examples but y"):
        fit_softmax_regression(x[:8], y, 2, learning_rate=0.1, num_steps=1)
    with pytest.raises(ShapeError, match="1-D integer"):
        fit_softmax_regression(x, np.eye(2)[y], 2, learning_rate=0.1, num_steps=1)
    with pytest.raises(ConfigError, match="num_classes"):
        fit_softmax_regression(x, y, 1, learning_rate=0.1, num_steps=1)
