"""Batch/layer/group norm against the lectures' formulas; train vs eval; position around the activation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.nn import Norm, NormAct, batch_stats, bn_running_update

EPS = 1e-5


def _np_bn(x, mean, var, eps=EPS):
    return (x - mean) / np.sqrt(var + eps)


@pytest.fixture
def batches(key):
    k1, k2 = jax.random.split(key)
    return (jax.random.normal(k1, (32, 5)) * 3.0 + 2.0, jax.random.normal(k2, (32, 5)) * 0.5 - 1.0)


@pytest.mark.parametrize("jit", [False, True])
def test_batch_norm_train_uses_batch_statistics(batches, key, jit):
    x, _ = batches
    m = Norm("batch", bn_momentum=0.9, epsilon=EPS)
    v = m.init(key, x, train=False)
    apply = lambda v, x: m.apply(v, x, train=True, mutable=["batch_stats"])  # noqa: E731
    y, _ = (jax.jit(apply) if jit else apply)(v, x)
    xn = np.asarray(x, np.float64)
    np.testing.assert_allclose(y, _np_bn(xn, xn.mean(0), xn.var(0)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.mean(y, 0), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.var(y, 0), 1.0, rtol=1e-3)


def test_batch_norm_running_average_follows_the_formula(batches, key):
    """μ_running ← β_m·μ_running + (1−β_m)·μ_B, same for Var (biased batch variance), two steps."""
    beta_m = 0.8
    m = Norm("batch", bn_momentum=beta_m, epsilon=EPS)
    x1, x2 = batches
    v = m.init(key, x1, train=False)
    np.testing.assert_array_equal(v["batch_stats"]["bn"]["mean"], 0.0)
    np.testing.assert_array_equal(v["batch_stats"]["bn"]["var"], 1.0)
    mu, var = np.zeros(5), np.ones(5)
    for x in (x1, x2):
        _, upd = m.apply(v, x, train=True, mutable=["batch_stats"])
        v = {"params": v["params"], **upd}
        xn = np.asarray(x, np.float64)
        mu = beta_m * mu + (1 - beta_m) * xn.mean(0)
        var = beta_m * var + (1 - beta_m) * xn.var(0)  # ddof=0
        np.testing.assert_allclose(v["batch_stats"]["bn"]["mean"], mu, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(v["batch_stats"]["bn"]["var"], var, rtol=1e-5, atol=1e-6)
    # bn_running_update is the same formula
    np.testing.assert_allclose(bn_running_update(jnp.zeros(5), batch_stats(x1)[0], beta_m),
                               (1 - beta_m) * np.asarray(x1).mean(0), rtol=1e-5, atol=1e-6)


def test_batch_norm_eval_uses_running_averages(batches, key):
    x1, x2 = batches
    m = Norm("batch", bn_momentum=0.5, epsilon=EPS)
    v = m.init(key, x1, train=False)
    _, upd = m.apply(v, x1, train=True, mutable=["batch_stats"])
    v = {"params": v["params"], **upd}
    ra_mean, ra_var = np.asarray(upd["batch_stats"]["bn"]["mean"]), np.asarray(upd["batch_stats"]["bn"]["var"])
    y_eval = m.apply(v, x2, train=False)
    np.testing.assert_allclose(y_eval, _np_bn(np.asarray(x2), ra_mean, ra_var), rtol=1e-4, atol=1e-5)
    # Eval: one example's output does not depend on the rest of the batch; train: it does.
    np.testing.assert_allclose(m.apply(v, x2[:1], train=False), y_eval[:1], rtol=1e-6)
    y_train_full, _ = m.apply(v, x2, train=True, mutable=["batch_stats"])
    y_train_half, _ = m.apply(v, x2[:16], train=True, mutable=["batch_stats"])
    assert not np.allclose(y_train_full[:16], y_train_half, atol=1e-3)
    assert not np.allclose(y_eval, y_train_full, atol=1e-2)


def test_batch_norm_on_images_is_per_channel(key):
    x = jax.random.normal(key, (4, 6, 6, 3)) * jnp.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    m = Norm("batch")
    v = m.init(key, x, train=False)
    assert v["params"]["bn"]["scale"].shape == (3,)
    y, _ = m.apply(v, x, train=True, mutable=["batch_stats"])
    xn = np.asarray(x, np.float64)
    np.testing.assert_allclose(y, _np_bn(xn, xn.mean((0, 1, 2)), xn.var((0, 1, 2))), rtol=1e-4, atol=1e-4)


def test_layer_norm_is_per_example_and_mode_free(batches, key):
    x, _ = batches
    m = Norm("layer", epsilon=EPS)
    v = m.init(key, x, train=False)
    xn = np.asarray(x, np.float64)
    want = _np_bn(xn, xn.mean(1, keepdims=True), xn.var(1, keepdims=True))
    np.testing.assert_allclose(m.apply(v, x, train=True), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(m.apply(v, x, train=True), m.apply(v, x, train=False))
    assert "batch_stats" not in v


def test_group_norm_matches_reference(key):
    x = jax.random.normal(key, (2, 4, 4, 6)) + 1.0
    m = Norm("group", num_groups=3, epsilon=EPS)
    v = m.init(key, x, train=False)
    xn = np.asarray(x, np.float64).reshape(2, 4, 4, 3, 2)
    mean = xn.mean((1, 2, 4), keepdims=True)
    var = xn.var((1, 2, 4), keepdims=True)
    want = ((xn - mean) / np.sqrt(var + EPS)).reshape(2, 4, 4, 6)
    np.testing.assert_allclose(m.apply(v, x, train=True), want, rtol=1e-4, atol=1e-4)


def test_norm_act_position(batches, key):
    x, _ = batches
    before = NormAct("batch", "relu", position="before")
    after = NormAct("batch", "relu", position="after")
    vb = before.init(key, x, train=False)
    yb, _ = before.apply(vb, x, train=True, mutable=["batch_stats"])
    ya, _ = after.apply(after.init(key, x, train=False), x, train=True, mutable=["batch_stats"])
    xn = np.asarray(x, np.float64)
    np.testing.assert_allclose(yb, np.maximum(_np_bn(xn, xn.mean(0), xn.var(0)), 0), rtol=1e-4, atol=1e-4)
    r = np.maximum(xn, 0)
    np.testing.assert_allclose(ya, _np_bn(r, r.mean(0), r.var(0)), rtol=1e-3, atol=1e-3)
    assert float(jnp.min(yb)) >= 0.0 and float(jnp.min(ya)) < 0.0


def test_none_is_identity(batches, key):
    x, _ = batches
    m = Norm("none")
    v = m.init(key, x, train=False)
    np.testing.assert_array_equal(m.apply(v, x, train=True), x)


def test_bad_norm_config(key):
    x = jnp.ones((2, 6))
    with pytest.raises(ConfigError, match=r"unknown norm 'batchnorm'; valid choices: batch, group, layer, none"):
        Norm("batchnorm").init(key, x, train=False)
    with pytest.raises(ConfigError, match=r"num_groups=4 needs a channel count divisible by it, got 6 .*\[1, 2, 3, 6\]"):
        Norm("group", num_groups=4).init(key, x, train=False)
    with pytest.raises(ConfigError, match="unknown norm position 'middle'"):
        NormAct("layer", "relu", position="middle").init(key, x, train=False)
    with pytest.raises(ConfigError, match="unknown activation"):
        NormAct("layer", "rellu").init(key, x, train=False)
