"""Batch/layer/group norm against the lectures' formulas; train vs eval; position around the activation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.errors import ConfigError, ShapeError
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


class _TorchBatchNorm1d:
    """torch.nn.BatchNorm1d's documented semantics, by hand in NumPy (momentum m: new = (1-m)·old + m·stat;
    normalize with the biased batch variance; the running variance takes the unbiased one)."""

    def __init__(self, c, momentum=0.1, eps=EPS):
        self.m, self.eps = momentum, eps
        self.running_mean, self.running_var = np.zeros(c), np.ones(c)

    def train_step(self, x):
        mean, var = x.mean(0), x.var(0)
        n = x.shape[0]
        self.running_mean = (1 - self.m) * self.running_mean + self.m * mean
        self.running_var = (1 - self.m) * self.running_var + self.m * var * n / (n - 1)
        return (x - mean) / np.sqrt(var + self.eps)

    def eval(self, x):
        return (x - self.running_mean) / np.sqrt(self.running_var + self.eps)


@pytest.mark.parametrize("jit", [False, True])
def test_batch_norm_unbiased_running_variance_matches_torch_convention(key, jit):
    """bn_unbiased_var=True: Var_running ← β_m·Var_running + (1−β_m)·σ²_B·n/(n−1), as PyTorch."""
    xs = [np.asarray(jax.random.normal(jax.random.fold_in(key, i), (16, 4)) * 2.0 + 1.0, np.float64)
          for i in range(3)]
    ref = _TorchBatchNorm1d(4, momentum=0.1)
    m = Norm("batch", bn_momentum=0.9, epsilon=EPS, bn_unbiased_var=True)
    biased = Norm("batch", bn_momentum=0.9, epsilon=EPS)
    v = vb = m.init(key, jnp.asarray(xs[0], jnp.float32), train=False)
    step = lambda mod: (lambda v, x: mod.apply(v, x, train=True, mutable=["batch_stats"]))  # noqa: E731
    step_m, step_b = (jax.jit(step(m)), jax.jit(step(biased))) if jit else (step(m), step(biased))
    var = np.ones(4)
    for x in xs:
        y, upd = step_m(v, jnp.asarray(x, jnp.float32))
        v = {"params": v["params"], **upd}
        vb = {"params": vb["params"], **step_b(vb, jnp.asarray(x, jnp.float32))[1]}
        # training output still normalizes with the biased batch variance
        np.testing.assert_allclose(y, ref.train_step(x), rtol=1e-4, atol=1e-4)
        var = 0.9 * var + 0.1 * x.var(0, ddof=1)  # the formula
        np.testing.assert_allclose(v["batch_stats"]["bn"]["var"], var, rtol=1e-5)
        np.testing.assert_allclose(v["batch_stats"]["bn"]["var"], ref.running_var, rtol=1e-5)
        np.testing.assert_allclose(v["batch_stats"]["bn"]["mean"], ref.running_mean, rtol=1e-5, atol=1e-6)
    x_test = np.asarray(jax.random.normal(jax.random.fold_in(key, 9), (8, 4)), np.float64)
    np.testing.assert_allclose(m.apply(v, jnp.asarray(x_test, jnp.float32), train=False), ref.eval(x_test),
                               rtol=1e-4, atol=1e-4)
    # the default (flax) convention gives visibly different evaluation outputs at batch 16
    diff = np.abs(np.asarray(biased.apply(vb, jnp.asarray(x_test, jnp.float32), train=False)) - ref.eval(x_test))
    assert diff.max() > 1e-2


def test_batch_norm_unbiased_counts_spatial_positions(key):
    """On images n = B·H·W values per channel."""
    x = jax.random.normal(key, (3, 4, 5, 2)) * 2.0
    m = NormAct("batch", "relu", bn_momentum=0.5, bn_unbiased_var=True)
    v = m.init(key, x, train=False)
    _, upd = m.apply(v, x, train=True, mutable=["batch_stats"])
    xn = np.asarray(x, np.float64).reshape(-1, 2)
    np.testing.assert_allclose(upd["batch_stats"]["norm"]["bn"]["var"], 0.5 + 0.5 * xn.var(0, ddof=1), rtol=1e-5)
    with pytest.raises(ShapeError, match="at least 2 values"):
        Norm("batch", bn_unbiased_var=True).apply(
            Norm("batch").init(key, x[:1, :1, :1], train=False), x[:1, :1, :1], train=True, mutable=["batch_stats"])


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
