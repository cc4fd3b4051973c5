"""Full-batch second-order methods: Newton, Gauss-Newton, Levenberg-Marquardt, L-BFGS, CG."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from dlcore.errors import ConfigError
from dlcore.optim import conjugate_gradient, least_squares, minimize


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


@pytest.fixture(scope="module")
def spd():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(5, 5))
    return m @ m.T + 5 * np.eye(5), rng.normal(size=5)


def test_newton_solves_a_quadratic_in_one_step(spd):
    a, b = spd
    f = lambda x: 0.5 * x @ jnp.asarray(a, jnp.float32) @ x - jnp.asarray(b, jnp.float32) @ x  # noqa: E731
    exact = np.linalg.solve(a, b)
    r = minimize(f, jnp.zeros(5), method="newton", num_steps=1)
    np.testing.assert_allclose(r.x, exact, rtol=1e-4, atol=1e-5)
    assert r.xs.shape == (2, 5) and r.losses.shape == (2,)
    # Hessian-free Newton (CG on Hessian-vector products) lands there too.
    r_cg = minimize(f, jnp.zeros(5), method="newton_cg", num_steps=1)
    np.testing.assert_allclose(r_cg.x, exact, rtol=1e-4, atol=1e-5)
    # Damped: one step of θ − η (H + λI)⁻¹ g.
    r_d = minimize(f, jnp.zeros(5), method="newton", num_steps=1, damping=2.0, step_size=0.5)
    np.testing.assert_allclose(r_d.x, 0.5 * np.linalg.solve(a + 2 * np.eye(5), b), rtol=1e-4, atol=1e-5)


def test_newton_and_lbfgs_solve_rosenbrock():
    x0 = jnp.array([-1.2, 1.0])
    for method in ("newton", "lbfgs"):
        r = minimize(rosenbrock, x0, method=method, num_steps=50, tol=1e-5)
        # Tolerance: within 1e-4 of (1, 1) in at most 50 iterations.
        assert np.abs(np.asarray(r.x) - 1).max() < 1e-4, (method, r.x)
        assert bool(r.converged) and int(r.num_iters) < 50
        # Iterates after convergence are frozen, and the trajectory ends at x.
        np.testing.assert_array_equal(r.xs[-1], r.x)


def rosenbrock_nd(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def _never_increases(losses):
    losses = np.asarray(losses, np.float64)
    # slack for the trajectory being re-evaluated under vmap (rounding), far below a real uphill step
    return bool(np.all(np.diff(losses) <= 1e-6 * losses[0])), float(np.max(np.diff(losses)))


@pytest.mark.parametrize("method, damping", [("newton", 0.1), ("newton", 1.0), ("newton", 10.0), ("newton_cg", 1.0)])
def test_damped_newton_never_climbs_on_rosenbrock_4d(method, damping):
    """Fixed λI with no descent test went uphill here (damping=1: the loss rose by 76 in one step)."""
    x0 = jnp.array([-1.2, 1.0, -1.2, 1.0])
    r = minimize(rosenbrock_nd, x0, method=method, num_steps=200, damping=damping, tol=1e-4)
    ok, worst = _never_increases(r.losses)
    assert ok, (method, damping, worst)
    # ... and still converges: λ shrinks after accepted steps, so the local rate is Newton's.
    assert bool(r.converged) and int(r.num_iters) < 60, (int(r.num_iters), r.x)
    np.testing.assert_allclose(r.x, np.ones(4), atol=1e-3)


def test_damped_newton_never_climbs_on_a_small_mlp():
    x = jnp.linspace(-2, 2, 32)[:, None]
    y = jnp.sin(2 * x)
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    p0 = {"w1": jax.random.normal(k1, (1, 8)), "b1": jnp.zeros((1, 8)),
          "w2": jax.random.normal(k2, (8, 1)) / 3, "b2": jnp.zeros((1, 1))}

    def loss(p):
        return jnp.mean((jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"] - y) ** 2)

    for method in ("newton", "newton_cg"):
        r = minimize(loss, p0, method=method, num_steps=60, damping=1.0)
        ok, worst = _never_increases(r.losses)
        assert ok, (method, worst)  # the fixed-λ step rose by 106 on this problem
        assert float(r.fun) < 1e-3 * float(r.losses[0]), (method, float(r.fun))


def test_lbfgs_matches_scipy_on_logistic_regression():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = (x @ np.array([1.5, -2.0, 0.5]) + 0.3 + rng.normal(size=200) > 0).astype(np.float64)
    lam = 1e-2

    def loss_np(w):
        z = x @ w[:3] + w[3]
        return np.mean(np.logaddexp(0, z) - y * z) + lam * np.sum(w[:3] ** 2)

    def grad_np(w):
        z = x @ w[:3] + w[3]
        p = 1 / (1 + np.exp(-z))
        return np.concatenate([x.T @ (p - y) / len(y) + 2 * lam * w[:3], [np.mean(p - y)]])

    ref = scipy.optimize.minimize(loss_np, np.zeros(4), jac=grad_np, method="L-BFGS-B", options={"gtol": 1e-10})
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)

    def loss(w):
        z = xj @ w[:3] + w[3]
        return jnp.mean(jnp.logaddexp(0.0, z) - yj * z) + lam * jnp.sum(w[:3] ** 2)

    r = minimize(loss, jnp.zeros(4), method="lbfgs", num_steps=100, tol=1e-6)
    np.testing.assert_allclose(r.x, ref.x, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(float(r.fun), ref.fun, rtol=1e-5)


T = np.linspace(0, 3, 40)
TRUE = np.array([2.5, 1.3, 0.5])


def curve(p, t):
    return p[0] * jnp.exp(-p[1] * t) + p[2]


@pytest.fixture(scope="module")
def curve_data():
    rng = np.random.default_rng(2)
    y = TRUE[0] * np.exp(-TRUE[1] * T) + TRUE[2] + 0.05 * rng.normal(size=T.size)
    ref = scipy.optimize.least_squares(
        lambda p: p[0] * np.exp(-p[1] * T) + p[2] - y, np.array([1.0, 0.5, 0.0]), method="lm", xtol=1e-12
    )
    return y, ref.x


@pytest.mark.parametrize("method", ["gauss_newton", "levenberg_marquardt"])
def test_gauss_newton_and_lm_fit_the_scipy_parameters(curve_data, method):
    y, ref = curve_data
    tj, yj = jnp.asarray(T, jnp.float32), jnp.asarray(y, jnp.float32)
    r = least_squares(lambda p: curve(p, tj) - yj, jnp.array([1.0, 0.5, 0.0]), method=method, num_steps=50)
    # Tolerance: the parameters scipy's MINPACK LM finds, to 1e-4 relative (float32).
    np.testing.assert_allclose(r.x, ref, rtol=1e-4, atol=1e-5)
    assert bool(r.converged)
    # The recorded trajectory starts at x0 and ends at the solution.
    np.testing.assert_allclose(r.xs[0], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(r.xs[-1], r.x, rtol=1e-6, atol=1e-6)
    if method == "levenberg_marquardt":
        # LM only accepts steps that lower the loss (plain Gauss-Newton overshoots from this start).
        assert np.all(np.diff(np.asarray(r.losses)) <= 1e-6)
    # minimize() routes residual functions to the same solver.
    r2 = minimize(lambda p: curve(p, tj) - yj, jnp.array([1.0, 0.5, 0.0]), method=method, num_steps=50)
    np.testing.assert_allclose(r2.x, r.x)


def test_conjugate_gradient(spd):
    a, b = spd
    aj, bj = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    r = conjugate_gradient(aj, bj)
    np.testing.assert_allclose(r.x, np.linalg.solve(a, b), rtol=1e-4, atol=1e-5)
    ref, _ = jax.scipy.sparse.linalg.cg(aj, bj)
    np.testing.assert_allclose(r.x, ref, rtol=1e-4, atol=1e-5)
    # n = 5 iterations suffice (exact arithmetic); the residual shrinks to ~float32 precision.
    assert r.xs.shape == (6, 5) and float(r.residual_norms[-1]) < 1e-4 * float(r.residual_norms[0])
    # A function for A v works the same.
    np.testing.assert_allclose(conjugate_gradient(lambda v: aj @ v, bj).x, r.x, rtol=1e-6)


def test_bad_input():
    with pytest.raises(ConfigError, match="unknown minimize method 'bfgs'"):
        minimize(rosenbrock, jnp.zeros(2), method="bfgs")
    # Levenberg-Marquardt on a scalar objective: that is a loss, not residuals.
    with pytest.raises(ConfigError, match="residual"):
        minimize(rosenbrock, jnp.zeros(2), method="levenberg_marquardt")
    with pytest.raises(ConfigError, match="returned a scalar"):
        least_squares(rosenbrock, jnp.zeros(2))
    with pytest.raises(ConfigError, match="learning_rate"):
        minimize(rosenbrock, jnp.zeros(2), method="sgd", learning_rate=-0.1)
    with pytest.raises(ConfigError, match="damping"):
        minimize(rosenbrock, jnp.zeros(2), method="newton", damping=-1.0)
