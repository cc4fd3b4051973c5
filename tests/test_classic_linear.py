"""dlcore.classic linear regression: closed forms vs numpy/scikit-learn, GD, the MLE view."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.classic import (
    add_bias_column, fit_linear, fit_linear_gd, gaussian_log_likelihood, least_squares, noise_variance, predict_linear
)
from dlcore.errors import ConfigError, ShapeError


def _problem(n=200, d=6, t=None, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w = rng.normal(size=(d,) if t is None else (d, t))
    y = x @ w + 1.5 + noise * rng.normal(size=(n,) if t is None else (n, t))
    return x, y, w


@pytest.mark.parametrize("t", [None, 3])
def test_lstsq_equals_numpy_float64(t):
    x, y, _ = _problem(t=t)
    xb = np.c_[np.ones(len(x)), x]
    ref = np.linalg.lstsq(xb, y, rcond=None)[0]
    with jax.enable_x64():
        for method in ("lstsq", "qr", "normal"):
            got = np.asarray(least_squares(xb, y, method=method))
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12, err_msg=method)


def test_lstsq_equals_numpy_float32_default():
    x, y, _ = _problem()
    xb = np.c_[np.ones(len(x)), x]
    ref = np.linalg.lstsq(xb, y, rcond=None)[0]
    got = jax.jit(lambda a, b: least_squares(a, b))(xb, y)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_lstsq_rank_deficient_and_underdetermined_give_numpys_min_norm_solution():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4))
    x_dup = np.c_[x, x[:, :1]]  # collinear column: infinitely many solutions
    y = rng.normal(size=30)
    x_wide = rng.normal(size=(5, 12))  # N < D
    y_wide = rng.normal(size=5)
    with jax.enable_x64():
        for a, b in ((x_dup, y), (x_wide, y_wide)):
            np.testing.assert_allclose(least_squares(a, b), np.linalg.lstsq(a, b, rcond=None)[0], atol=1e-10)


def test_normal_equations_lose_twice_the_digits_on_ill_conditioned_data():
    # Polynomial features: κ(X) ≈ 2e4. QR/SVD error ~ κ·ε, normal equations ~ κ²·ε (module docs).
    t = np.linspace(0, 1, 100)
    x = np.vander(t, 7, increasing=True)
    theta = np.arange(1.0, 8.0)
    y = x @ theta
    with jax.enable_x64():
        err = {m: np.max(np.abs(np.asarray(least_squares(x, y, method=m)) - theta)) for m in ("lstsq", "qr", "normal")}
    assert err["lstsq"] < 1e-7 and err["qr"] < 1e-7
    assert err["normal"] > 100 * max(err["lstsq"], err["qr"])


def test_fit_linear_intercept_equals_bias_column():
    x, y, _ = _problem()
    m = fit_linear(x, y)
    ref = np.linalg.lstsq(add_bias_column(x), y, rcond=None)[0]
    np.testing.assert_allclose(float(m.bias), ref[0], rtol=1e-4)
    np.testing.assert_allclose(m.weights, ref[1:], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(predict_linear(m, x), np.c_[np.ones(len(x)), x] @ ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["lstsq", "qr", "normal"])
def test_ridge_equals_sklearn(method):
    from sklearn.linear_model import Ridge

    x, y, _ = _problem(n=40, d=10, t=2)
    ref = Ridge(alpha=5.0).fit(x, y)
    with jax.enable_x64():
        m = fit_linear(x, y, ridge=5.0, method=method)
        np.testing.assert_allclose(m.weights, ref.coef_.T, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(m.bias, ref.intercept_, rtol=1e-9)


def test_ridge_is_vmappable_over_lambda_and_shrinks():
    x, y, _ = _problem(n=40, d=10)
    lams = jnp.array([0.0, 1.0, 10.0, 100.0])
    ws = jax.vmap(lambda lam: fit_linear(x, y, ridge=lam).weights)(lams)
    for lam, w in zip((0.0, 100.0), ws[::3]):
        np.testing.assert_allclose(w, fit_linear(x, y, ridge=lam).weights, rtol=2e-4, atol=2e-5)
    norms = np.linalg.norm(np.asarray(ws), axis=1)
    assert np.all(np.diff(norms) < 0)


def test_mle_noise_variance_and_stationarity():
    x, y, _ = _problem(n=4000, noise=0.5, seed=3)
    m = fit_linear(x, y)
    r = np.asarray(y - predict_linear(m, x), np.float64)
    np.testing.assert_allclose(float(m.noise_var), np.mean(r**2), rtol=1e-4)
    assert abs(float(m.noise_var) - 0.25) < 0.02  # the true σ² = 0.5²
    np.testing.assert_allclose(noise_variance(r, ddof=7), np.sum(r**2) / (4000 - 7), rtol=1e-6)
    # MLE = least squares: the log-likelihood is stationary at (w, b, σ²_ML).
    with jax.enable_x64():
        m64 = fit_linear(x, y)
        g = jax.grad(lambda mm: gaussian_log_likelihood(mm, x, y))(m64)
        assert np.max(np.abs(np.asarray(g.weights))) < 1e-6
        assert abs(float(g.bias)) < 1e-6 and abs(float(g.noise_var)) < 1e-6
        ll = gaussian_log_likelihood(m64, x, y)
        assert ll > gaussian_log_likelihood(m64, x, y, noise_var=1.2 * m64.noise_var)
        assert ll > gaussian_log_likelihood(m64._replace(bias=m64.bias + 0.01), x, y)


def test_gradient_descent_reaches_the_closed_form():
    x, y, _ = _problem(t=2)
    closed = fit_linear(x, y)
    gd, loss = jax.jit(lambda a, b: fit_linear_gd(a, b, learning_rate=0.2, num_steps=400))(x, y)
    np.testing.assert_allclose(gd.weights, closed.weights, atol=1e-4)
    np.testing.assert_allclose(gd.bias, closed.bias, atol=1e-4)
    np.testing.assert_allclose(gd.noise_var, closed.noise_var, rtol=1e-3)
    assert loss.shape == (400,) and np.all(np.diff(np.asarray(loss)) <= 1e-6)


def test_gradient_descent_with_ridge_and_no_intercept_and_vmap_over_lr():
    x, y, _ = _problem(n=50, d=5)
    closed = fit_linear(x, y, ridge=3.0, fit_intercept=False)
    gd, _ = fit_linear_gd(x, y, learning_rate=0.2, num_steps=600, ridge=3.0, fit_intercept=False)
    assert float(gd.bias) == 0.0
    np.testing.assert_allclose(gd.weights, closed.weights, atol=1e-4)
    finals = jax.vmap(lambda lr: fit_linear_gd(x, y, learning_rate=lr, num_steps=50)[1][-1])(jnp.array([0.01, 0.1]))
    assert finals[1] < finals[0]  # the larger (stable) step makes more progress


def test_bad_input():
    x, y, _ = _problem(n=20, d=3)
    with pytest.raises(ShapeError, match="20 examples but y"):
        least_squares(x, y[:-1])
    with pytest.raises(ShapeError, match="20 examples but y"):
        fit_linear(x, y[:15])
    with pytest.raises(ShapeError, match="2-D"):
        fit_linear(x[:, 0], y)
    with pytest.raises(ShapeError, match="20 examples"):
        fit_linear_gd(x, y[:3], learning_rate=0.1, num_steps=2)
    with pytest.raises(ConfigError, match="valid choices: lstsq, normal, qr"):
        least_squares(x, y, method="inverse")
    with pytest.raises(ConfigError, match="lstsq"):
        least_squares(x[:2], y[:2], method="qr")
