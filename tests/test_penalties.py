"""L1/L2/elastic-net penalties on parameter groups, and label smoothing."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.errors import ConfigError
from dlcore.losses import cross_entropy, elastic_net_penalty, l1_penalty, l2_penalty, make_penalty, smooth_labels
from dlcore.nn import MLP
from dlcore.train import weight_penalty


def test_lecture_l1_l2_example():
    x = jnp.ones(4)
    w1 = {"kernel": jnp.array([[1.0, 0.0, 0.0, 0.0]])}
    w2 = {"kernel": jnp.full((1, 4), 0.25)}
    assert float(w1["kernel"][0] @ x) == float(w2["kernel"][0] @ x) == 1.0  # identical outputs
    assert float(l2_penalty(w1)) == 1.0 and float(l2_penalty(w2)) == 0.25  # L2 prefers spread-out weights
    assert float(l1_penalty(w1)) == 1.0 and float(l1_penalty(w2)) == 1.0  # L1 is indifferent here


@pytest.fixture
def params(key):
    return MLP(widths=(5,), num_outputs=3).init(key, jnp.ones((1, 4)), train=False)["params"]


def test_groups_select_parameters(params):
    params = jax.tree.map(lambda a: a + 0.5, params)  # nonzero biases
    k = [params["dense_0"]["kernel"], params["head"]["kernel"]]
    b = [params["dense_0"]["bias"], params["head"]["bias"]]
    sq = lambda arrs: sum(float(jnp.sum(a**2)) for a in arrs)  # noqa: E731
    assert float(l2_penalty(params)) == pytest.approx(sq(k), rel=1e-6)  # default: kernels only
    assert float(l2_penalty(params, "all")) == pytest.approx(sq(k) + sq(b), rel=1e-6)
    assert float(l2_penalty(params, "biases")) == pytest.approx(sq(b), rel=1e-6)
    assert float(l2_penalty(params, "^head/kernel")) == pytest.approx(sq(k[1:]), rel=1e-6)
    pred = lambda path, leaf: path.startswith("dense_0")  # noqa: E731
    assert float(l1_penalty(params, pred)) == pytest.approx(
        float(jnp.abs(k[0]).sum() + jnp.abs(b[0]).sum()), rel=1e-6)


def test_group_matching_nothing_raises(params):
    with pytest.raises(ConfigError, match=r"matches no parameter; paths are e.g. .*dense_0/bias"):
        l2_penalty(params, "^conv")
    with pytest.raises(ConfigError, match="neither"):
        l2_penalty(params, "([")


def test_elastic_net_combines(params):
    want = 0.3 * float(l1_penalty(params)) + 0.7 * float(l2_penalty(params))
    assert float(elastic_net_penalty(params, l1=0.3, l2=0.7)) == pytest.approx(want, rel=1e-6)
    # the lectures' Σ β W² + |W|
    assert float(elastic_net_penalty(params, l1=1.0, l2=2.0)) == pytest.approx(
        float(l1_penalty(params)) + 2.0 * float(l2_penalty(params)), rel=1e-6)


def test_make_penalty_matches_default_and_gradients(params):
    hp = {"l1": jnp.float32(0.01), "l2": jnp.float32(0.1)}
    pen = make_penalty("kernels")
    assert float(jax.jit(pen)(params, hp)) == pytest.approx(float(weight_penalty(params, hp)), rel=1e-6)
    g = jax.grad(lambda p: make_penalty("kernels", l2=0.5)(p, {}))(params)
    np.testing.assert_allclose(g["head"]["kernel"], 2 * 0.5 * params["head"]["kernel"], rtol=1e-6)  # ∇ λΣw² = 2λw
    np.testing.assert_array_equal(g["head"]["bias"], 0.0)
    assert float(make_penalty("all")(params, {})) == 0.0  # no coefficient, no penalty


def test_label_smoothing(key):
    y = jnp.array([0, 2, 1])
    t = smooth_labels(y, 3, 0.3)
    np.testing.assert_allclose(t.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(t[0], [0.8, 0.1, 0.1], rtol=1e-6)
    logits = jax.random.normal(key, (3, 3))
    np.testing.assert_allclose(cross_entropy(logits, y, 0.3), optax.softmax_cross_entropy(logits, t), rtol=1e-6)
    np.testing.assert_allclose(smooth_labels(y, 3, 0.0), jax.nn.one_hot(y, 3))
    with pytest.raises(ConfigError, match=r"label smoothing must be in \[0, 1\]"):
        smooth_labels(y, 3, 1.5)
