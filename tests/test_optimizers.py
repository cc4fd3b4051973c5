"""Optimizers by name: the lectures' update equations, convergence, weight decay vs L2, vmapped rates."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.errors import ConfigError
from dlcore.nn import MLP
from dlcore.optim import OPTIMIZERS, minimize, optimizer_fn
from dlcore.train import Recipe, init_state, make_train_step

# A two-parameter quadratic L(θ) = ½θᵀAθ − bᵀθ: its gradient Aθ − b is easy to write by hand.
A = np.diag([1.0, 4.0])
B = np.array([1.0, -2.0])
THETA0 = np.array([0.5, 1.5])


def grad(theta):
    return A @ theta - B


def run_optax(name, hp, steps=2, theta0=THETA0, **static):
    """θ after each of ``steps`` updates of the named optimizer on the quadratic (float32)."""
    tx = optimizer_fn(name, **static)({k: jnp.float32(v) for k, v in hp.items()})
    theta = jnp.asarray(theta0, jnp.float32)
    state = tx.init(theta)
    out = []
    for _ in range(steps):
        upd, state = tx.update(jnp.asarray(grad(np.asarray(theta, np.float64)), jnp.float32), state, theta)
        theta = optax.apply_updates(theta, upd)
        out.append(np.asarray(theta, np.float64))
    return out


# --- reference implementations of the lectures' equations (NumPy, float64) ---------------------


def ref_sgd(alpha, steps=2):
    th, out = THETA0.copy(), []
    for _ in range(steps):
        th = th - alpha * grad(th)
        out.append(th)
    return out


def ref_momentum(alpha, beta, steps=2):
    th, v, out = THETA0.copy(), np.zeros(2), []
    for _ in range(steps):
        v = beta * v - alpha * grad(th)  # v^{k+1} = β v^k − α ∇L(θ^k)
        th = th + v  # θ^{k+1} = θ^k + v^{k+1}
        out.append((th, v))
    return out


def ref_nesterov(alpha, beta, steps=2):
    th, v, out = THETA0.copy(), np.zeros(2), []
    for _ in range(steps):
        look = th + beta * v  # θ̃ = θ^k + β v^k
        v = beta * v - alpha * grad(look)  # gradient at the look-ahead point
        th = th + v
        out.append((th, v))
    return out


def ref_rmsprop(alpha, beta, eps, steps=2):
    th, s, out = THETA0.copy(), np.zeros(2), []
    for _ in range(steps):
        g = grad(th)
        s = beta * s + (1 - beta) * g * g
        th = th - alpha * g / (np.sqrt(s) + eps)
        out.append(th)
    return out


def ref_adagrad(alpha, g0, eps, steps=2):
    th, G, out = THETA0.copy(), np.full(2, g0), []
    for _ in range(steps):
        g = grad(th)
        G = G + g * g
        th = th - alpha * g / np.sqrt(G + eps)
        out.append(th)
    return out


def ref_adam(alpha, b1, b2, eps_in, eps_out=0.0, bias_correction=True, nadam=False, wd=0.0, steps=2):
    th, m, v, out = THETA0.copy(), np.zeros(2), np.zeros(2), []
    for k in range(steps):
        g = grad(th)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if bias_correction:
            m_hat, v_hat = m / (1 - b1 ** (k + 1)), v / (1 - b2 ** (k + 1))
        else:
            m_hat, v_hat = m, v
        if nadam:  # Dozat: look-ahead first moment
            m_hat = b1 * m / (1 - b1 ** (k + 2)) + (1 - b1) * g / (1 - b1 ** (k + 1))
        th = th - alpha * (m_hat / (np.sqrt(v_hat + eps_in) + eps_out) + wd * th)
        out.append(th)
    return out


def close(a, b, tol=1e-6):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


def test_sgd_and_momentum_by_hand():
    # L = ½θ², θ0 = 1, α = 0.1, β = 0.9 (worked by hand):
    # SGD: 0.9, 0.81.  Momentum: v1 = −0.1, θ1 = 0.9; v2 = 0.9·(−0.1) − 0.1·0.9 = −0.18, θ2 = 0.72.
    def two_steps(name, **hp):
        tx = optimizer_fn(name)({"learning_rate": jnp.float32(0.1), **hp})
        th = jnp.ones(1)
        s = tx.init(th)
        out = []
        for _ in range(2):
            u, s = tx.update(th, s, th)  # gradient of ½θ² is θ
            th = th + u
            out.append(float(th[0]))
        return out

    close(two_steps("sgd"), [0.9, 0.81])
    close(two_steps("momentum", momentum=jnp.float32(0.9)), [0.9, 0.72])


def test_each_optimizer_matches_its_update_equation():
    close(run_optax("sgd", {"learning_rate": 0.1}), ref_sgd(0.1))
    close(run_optax("momentum", {"learning_rate": 0.1, "momentum": 0.9}), [t for t, _ in ref_momentum(0.1, 0.9)])
    # optax's Nesterov (Sutskever) carries the look-ahead point θ + βv instead of θ.
    close(run_optax("nesterov", {"learning_rate": 0.1, "momentum": 0.9}),
          [t + 0.9 * v for t, v in ref_nesterov(0.1, 0.9)])
    close(run_optax("rmsprop", {"learning_rate": 0.01, "decay": 0.9, "eps": 0.1}), ref_rmsprop(0.01, 0.9, 0.1))
    close(run_optax("adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.1, "eps": 0.05}),
          ref_adagrad(0.1, 0.1, 0.05))
    # The lectures' Adam has ε inside the square root: eps=0, eps_root=ε.
    close(run_optax("adam", {"learning_rate": 0.1, "b1": 0.9, "b2": 0.99, "eps": 0.0, "eps_root": 0.5}),
          ref_adam(0.1, 0.9, 0.99, eps_in=0.5))
    close(run_optax("adam", {"learning_rate": 0.1, "b1": 0.9, "b2": 0.99, "eps": 0.5}),
          ref_adam(0.1, 0.9, 0.99, eps_in=0.0, eps_out=0.5))
    close(run_optax("adam", {"learning_rate": 0.1, "b1": 0.9, "b2": 0.99, "eps": 1e-3}, bias_correction=False),
          ref_adam(0.1, 0.9, 0.99, eps_in=0.0, eps_out=1e-3, bias_correction=False))
    close(run_optax("adamw", {"learning_rate": 0.1, "b1": 0.9, "b2": 0.99, "eps": 1e-3, "weight_decay": 0.3},
                    decay_mask="all"),
          ref_adam(0.1, 0.9, 0.99, eps_in=0.0, eps_out=1e-3, wd=0.3))
    close(run_optax("nadam", {"learning_rate": 0.1, "b1": 0.9, "b2": 0.99, "eps": 1e-3}),
          ref_adam(0.1, 0.9, 0.99, eps_in=0.0, eps_out=1e-3, nadam=True))


def test_bias_correction_matters_early():
    # Without the correction the first steps are (1−β1)/√(1−β2) ≈ 3.2× smaller at b2 = 0.99.
    on = run_optax("adam", {"learning_rate": 0.1, "b2": 0.99, "eps": 0.0}, steps=1)[0] - THETA0
    off = run_optax("adam", {"learning_rate": 0.1, "b2": 0.99, "eps": 0.0}, steps=1, bias_correction=False)[0] - THETA0
    close(off / on, np.full(2, 0.1 / np.sqrt(0.01)), 1e-5)


def test_gradient_clipping_by_value_and_norm():
    g = grad(THETA0)  # [-0.5, 8.0]
    by_value = run_optax("sgd", {"learning_rate": 0.1, "clip_value": 1.0}, steps=1)[0]
    close(by_value, THETA0 - 0.1 * np.clip(g, -1, 1))
    by_norm = run_optax("sgd", {"learning_rate": 0.1}, steps=1, clip_norm=2.0)[0]  # static option
    close(by_norm, THETA0 - 0.1 * g * 2.0 / np.linalg.norm(g))


def test_lecture_weight_decay_form():
    # θ ← (1 − λ)θ − α∇f: the decay is not multiplied by the learning rate.
    out = run_optax("sgd", {"learning_rate": 0.1, "weight_decay": 0.01}, steps=1, decay_scaled_by_lr=False,
                    decay_mask="all")[0]
    close(out, (1 - 0.01) * THETA0 - 0.1 * grad(THETA0))


def test_jit_equals_eager_and_state_structure_is_value_independent():
    params = {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)}
    for name in OPTIMIZERS:
        fn = optimizer_fn(name)
        s1 = fn({"learning_rate": jnp.float32(0.1)}).init(params)
        s2 = fn({"learning_rate": jnp.float32(0.3), "momentum": jnp.float32(0.5)}).init(params)
        assert jax.tree.structure(s1) == jax.tree.structure(s2), name

        def step(lr, st):
            return fn({"learning_rate": lr}).update(params, st, params)

        eager = step(jnp.float32(0.1), s1)[0]
        jitted = jax.jit(step)(jnp.float32(0.1), s1)[0]
        for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
            np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=name)


def test_weight_decay_masks_biases_by_default():
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}
    tx = optimizer_fn("sgd")({"learning_rate": jnp.float32(1.0), "weight_decay": jnp.float32(0.5)})
    upd, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    close(upd["kernel"], -0.5 * np.ones((2, 2)))
    close(upd["bias"], np.zeros(2))


# --- convergence (full batch, via dlcore.optim.minimize) -----------------------------------------

QA = jnp.array([[3.0, 1.0], [1.0, 2.0]])
QC = jnp.array([1.0, -2.0])


def quadratic(x):
    return 0.5 * (x - QC) @ QA @ (x - QC)


def ravine(x):  # condition number 100
    return 0.5 * (x[0] ** 2 + 100.0 * x[1] ** 2)


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


CONVEX_SETTINGS = {
    "sgd": dict(learning_rate=0.2),
    "momentum": dict(learning_rate=0.05),
    "nesterov": dict(learning_rate=0.05),
    "rmsprop": dict(learning_rate=0.01, schedule="cosine"),  # constant-rate RMSProp hovers at ~lr
    "adagrad": dict(learning_rate=0.5),
    "adam": dict(learning_rate=0.05),
    "adamw": dict(learning_rate=0.05, weight_decay=0.0),
    "nadam": dict(learning_rate=0.05),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_converges_on_convex_quadratic(name):
    from dlcore.optim import get_schedule

    opts = dict(CONVEX_SETTINGS[name])
    if opts.get("schedule") == "cosine":
        opts["schedule"] = get_schedule("cosine", num_steps=500)
    r = minimize(quadratic, jnp.zeros(2), method=name, num_steps=500, **opts)
    # Tolerance: every optimizer within 1e-4 of the minimiser after 500 full-batch steps.
    assert np.abs(np.asarray(r.x) - np.asarray(QC)).max() < 1e-4, (name, r.x)
    assert r.losses.shape == (501,) and float(r.losses[0]) > float(r.losses[-1])


def test_momentum_beats_sgd_on_ravine():
    x0 = jnp.array([1.0, 1.0])
    # Each with its best constant rate for curvatures μ = 1, L = 100 (equal budget: 100 steps):
    # SGD α = 2/(L+μ); heavy ball α = 4/(√L+√μ)², β = ((√κ−1)/(√κ+1))².
    sgd = minimize(ravine, x0, method="sgd", num_steps=100, learning_rate=2 / 101)
    hb = minimize(ravine, x0, method="momentum", num_steps=100, learning_rate=4 / 121, momentum=(9 / 11) ** 2)
    assert float(hb.fun) < 1e-6 * float(sgd.fun), (float(hb.fun), float(sgd.fun))
    # Also with the everyday β = 0.9 at SGD's rate budget.
    hb09 = minimize(ravine, x0, method="momentum", num_steps=100, learning_rate=0.019, momentum=0.9)
    assert float(hb09.fun) < 0.2 * float(sgd.fun)


@pytest.mark.parametrize(
    "name,opts,steps,tol",
    [
        ("momentum", dict(learning_rate=1e-3, momentum=0.9), 4000, 1e-3),
        ("adam", dict(learning_rate=0.02), 5000, 5e-3),
    ],
)
def test_converges_on_rosenbrock(name, opts, steps, tol):
    from dlcore.optim import get_schedule

    r = minimize(rosenbrock, jnp.array([-1.2, 1.0]), method=name, num_steps=steps,
                 schedule=get_schedule("cosine", num_steps=steps), **opts)
    assert np.abs(np.asarray(r.x) - 1.0).max() < tol, r.x


# --- weight decay vs L2 in the loss ---------------------------------------------------------------


def _steps(tiny_data, opt, hp, n=5):
    r = Recipe(MLP(widths=(8,), num_outputs=3), optimizer_fn(opt))
    s = init_state(r, 3, hp, tiny_data.x_train[:1])
    step = jax.jit(make_train_step(r))
    batch = {"x": tiny_data.x_train[:32], "y": tiny_data.y_train[:32]}
    for _ in range(n):
        s, _ = step(s, batch)
    return s.params


def test_weight_decay_equals_l2_for_sgd_not_for_adam(tiny_data):
    lam = 0.05
    # SGD: decoupled weight decay λ ≡ L2 penalty (λ/2)·Σw² in the loss (gradient λw).
    wd = _steps(tiny_data, "sgd", {"learning_rate": 0.1, "weight_decay": lam})
    l2 = _steps(tiny_data, "sgd", {"learning_rate": 0.1, "l2": lam / 2})
    for a, b in zip(jax.tree.leaves(wd), jax.tree.leaves(l2)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Adam: the L2 gradient is divided by √v̂, the decoupled decay is not — they differ.
    wd = _steps(tiny_data, "adamw", {"learning_rate": 0.01, "weight_decay": lam})
    l2 = _steps(tiny_data, "adam", {"learning_rate": 0.01, "l2": lam / 2})
    diff = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(wd), jax.tree.leaves(l2)))
    assert diff > 1e-3, diff


# --- vmapped hyperparameters ----------------------------------------------------------------------


def test_vmapped_learning_rate_equals_baked_in():
    lrs = jnp.array([0.01, 0.05, 0.2], jnp.float32)
    theta0 = jnp.asarray(THETA0, jnp.float32)

    def run(tx, n=10):
        th, s = theta0, tx.init(theta0)
        for _ in range(n):
            u, s = tx.update(jnp.asarray(A, jnp.float32) @ th - jnp.asarray(B, jnp.float32), s, th)
            th = optax.apply_updates(th, u)
        return th

    swept = jax.jit(jax.vmap(lambda lr: run(optimizer_fn("adam")({"learning_rate": lr}))))(lrs)
    for i, lr in enumerate([0.01, 0.05, 0.2]):
        baked = jax.jit(lambda: run(optax.adam(lr)))()
        np.testing.assert_allclose(swept[i], baked, rtol=1e-6, atol=1e-7)


def test_vmapped_learning_rate_in_a_sweep_equals_single_run(tiny_data):
    from dlcore.sweep import run_seeds
    from dlcore.train import fit

    model = MLP(widths=(8,), num_outputs=3)
    kw = dict(num_steps=20, batch_size=32, progress=False, evaluate_test=False)
    sweep = run_seeds(Recipe(model, optimizer_fn("momentum")), tiny_data, [1, 1],
                      hparams={"learning_rate": [0.01, 0.05]}, **kw)
    baked = fit(Recipe(model, lambda hp: optax.sgd(0.05, momentum=0.9)), tiny_data, 1,
                hparams={"learning_rate": 0.0}, **kw)
    for a, b in zip(jax.tree.leaves(sweep.state.params), jax.tree.leaves(baked.state.params)):
        # Batched matmuls round differently from unbatched ones: equal to float32 noise.
        np.testing.assert_allclose(a[1], b, rtol=1e-4, atol=1e-5)


# --- bad input ------------------------------------------------------------------------------------


def test_bad_input():
    with pytest.raises(ConfigError, match="unknown optimizer 'adamx'; valid choices: adagrad, adam"):
        optimizer_fn("adamx")
    with pytest.raises(ConfigError, match="'learning_rate' must be >= 0, got -0.1"):
        optimizer_fn("sgd")({"learning_rate": jnp.float32(-0.1)})
    with pytest.raises(ConfigError, match="'b1' must be in"):
        optimizer_fn("adam")({"learning_rate": 0.1, "b1": 1.0})
    with pytest.raises(ConfigError, match="has no option 'bias_correction'"):
        optimizer_fn("sgd", bias_correction=False)
    with pytest.raises(ConfigError, match="'learning_rate' is required"):
        optimizer_fn("sgd")({})
    with pytest.raises(ConfigError, match="learning_rate"):
        r = Recipe(MLP(widths=(4,), num_outputs=2), optimizer_fn("adam"))
        init_state(r, 0, {"learning_rate": -1e-3}, jnp.zeros((1, 3)))
