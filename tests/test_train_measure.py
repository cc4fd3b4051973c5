"""Measurements of trained states: ECE with and without MC dropout; minibatch gradient noise vs the
without-replacement variance formula; and a study's per-point ``measure`` columns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.losses import cross_entropy
from dlcore.metrics import expected_calibration_error
from dlcore.nn import MLP
from dlcore.optim import optimizer_fn
from dlcore.train import Recipe, calibration, gradient_noise, init_state

R = Recipe(MLP(widths=(16,), num_outputs=3), optimizer_fn("sgd"))


def _data(key, n=64):
    x = jax.random.normal(key, (n, 5))
    return x, (jnp.arange(n) % 3).astype(jnp.int32)


def test_calibration_matches_ece_and_mc_without_dropout_is_deterministic(key):
    x, y = _data(key)
    s = init_state(R, 0, {"learning_rate": 0.1, "dropout_rate": 0.0}, x[:1])
    out = calibration(R, s, x, y, num_bins=10, mc_samples=3, key=jax.random.PRNGKey(1))
    probs = jax.nn.softmax(R.model.apply({"params": s.params}, x, train=False))
    assert float(out["ece"]) == pytest.approx(float(expected_calibration_error(probs, y, 10)), abs=1e-6)
    assert float(out["accuracy"]) == pytest.approx(float(jnp.mean(jnp.argmax(probs, -1) == y)))
    # Dropout rate 0: every pass is the deterministic net, so MC dropout changes nothing.
    assert float(out["mc_ece"]) == pytest.approx(float(out["ece"]), abs=1e-6)
    assert abs(float(out["ece_gain"])) < 1e-6
    # With dropout the passes differ and the average is another prediction.
    s5 = s.replace(hparams=dict(s.hparams, dropout_rate=jnp.float32(0.5)))
    out5 = calibration(R, s5, x, y, num_bins=10, mc_samples=3, key=jax.random.PRNGKey(1))
    assert float(out5["mc_ece"]) != pytest.approx(float(out5["ece"]), abs=1e-6)
    assert "mc_ece" not in calibration(R, s, x, y)


def test_gradient_noise_matches_the_without_replacement_formula(key):
    x, y = _data(key, 48)
    s = init_state(R, 0, {"learning_rate": 0.1}, x[:1])

    def per_example(xi, yi):
        return jax.grad(lambda p: cross_entropy(R.model.apply({"params": p}, xi[None], train=False), yi[None])[0])(
            s.params)

    g = jax.vmap(per_example)(x, y)
    flat = np.concatenate([np.asarray(a).reshape(48, -1) for a in jax.tree.leaves(g)], axis=1).astype(np.float64)
    sigma2 = np.mean(np.sum((flat - flat.mean(0)) ** 2, axis=1))  # tr Σ (population covariance)
    for b in (4, 16):
        out = gradient_noise(R, s, x, y, b, jax.random.PRNGKey(3), num_batches=1000)
        want = sigma2 / b * (48 - b) / 47
        assert float(out["grad_var"]) == pytest.approx(want, rel=0.1)
        assert float(out["grad_trace"]) == pytest.approx(sigma2, rel=0.1)
        assert float(out["grad_sq_norm"]) == pytest.approx(float(np.sum(flat.mean(0) ** 2)), rel=1e-4)
    full = gradient_noise(R, s, x, y, 48, jax.random.PRNGKey(3), num_batches=2)
    assert float(full["grad_var"]) < 1e-10 and np.isnan(float(full["grad_trace"]))
    with pytest.raises(Exception, match="batch_size must be in"):
        gradient_noise(R, s, x, y, 49, jax.random.PRNGKey(3))


def test_study_measure_columns(tiny_data):
    from dlcore.errors import ConfigError
    from dlcore.sweep import Setup, run_study, space_from_spec, study_rows
    from dlcore.train import RunOptions

    space = space_from_spec({"learning_rate": {"values": (0.01, 0.1)}})
    opts = RunOptions(num_steps=4, batch_size=16)
    seen = []

    def measure(states, seeds, data):
        seen.append(list(seeds))
        lr = np.asarray(states.hparams["learning_rate"], np.float64)
        return {"train/lr_twice": 2 * lr, "test/lr": lr}

    res = run_study(space, lambda s: Setup(R, opts, {"learning_rate": 0.1}, measure), tiny_data, [0, 1],
                    progress=False)
    assert seen == [[0, 1], [0, 1]]
    np.testing.assert_allclose(res.metrics["train/lr_twice"], [[0.02, 0.02], [0.2, 0.2]], rtol=1e-6)
    # test/ measurements only for the selected point (the test split is looked at once).
    (sel,) = res.selected
    assert np.isfinite(res.metrics["test/lr"][sel]).all() and np.isnan(res.metrics["test/lr"][1 - sel]).all()
    rows = study_rows(res)
    assert float(rows[0]["train/lr_twice"]) == pytest.approx(0.02)
    bad = lambda st, se, d: {"lr": np.zeros(2)}  # noqa: E731
    with pytest.raises(ConfigError, match="start with train/, val/ or test/"):
        run_study(space, lambda s: Setup(R, opts, {"learning_rate": 0.1}, bad), tiny_data, [0, 1], progress=False)
