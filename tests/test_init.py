"""Initializers: empirical variance vs formula, the lectures' depth experiments, per-layer rules."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.models import SimpleCNN
from dlcore.nn import INITIALIZERS, MLP, RELU_BIAS, expected_variance, fans, get_initializer, reinitialize

SPECS = [
    ("normal", {"stddev": 0.01}),
    ("normal", {"stddev": 1.0}),
    ("uniform", {"scale": 0.5}),
    ("lecun_normal", {}),
    ("lecun_uniform", {}),
    ("xavier_normal", {}),
    ("xavier_uniform", {}),
    ("glorot_normal", {}),
    ("kaiming_normal", {}),
    ("kaiming_normal", {"mode": "fan_out"}),
    ("kaiming_uniform", {}),
    ("he_uniform", {"mode": "fan_out"}),
    ("xavier_normal", {"distribution": "truncated_normal"}),
]


@pytest.mark.parametrize("shape", [(400, 300), (3, 3, 32, 64)])
@pytest.mark.parametrize("name, kw", SPECS)
def test_empirical_variance_matches_formula(key, name, kw, shape):
    w = np.asarray(get_initializer(name, **kw)(key, shape, jnp.float32), np.float64)
    want = expected_variance(name, shape, **kw)
    # 120k (or 18k) draws: the sample variance is within a few % of the formula.
    assert w.var() == pytest.approx(want, rel=0.05)
    assert abs(w.mean()) < 4 * math.sqrt(want / w.size) + 1e-12


def test_formulas_by_hand():
    fan_in, fan_out = fans((3, 3, 32, 64))
    assert (fan_in, fan_out) == (288, 576)
    assert expected_variance("lecun_normal", (500, 500)) == pytest.approx(1 / 500)  # the lectures' Var(w) = 1/n
    assert expected_variance("kaiming_normal", (500, 500)) == pytest.approx(2 / 500)  # ReLU: 2/n
    assert expected_variance("xavier_normal", (100, 300)) == pytest.approx(2 / 400)
    assert expected_variance(("kaiming_normal", {"mode": "fan_out"}), (100, 300)) == pytest.approx(2 / 300)


def test_uniform_bounds(key):
    w = get_initializer("xavier_uniform")(key, (100, 200))
    assert float(jnp.abs(w).max()) <= math.sqrt(6 / 300) + 1e-7
    w = get_initializer("kaiming_uniform")(key, (100, 200))
    assert float(jnp.abs(w).max()) <= math.sqrt(6 / 100) + 1e-7


def test_constants(key):
    assert float(jnp.abs(get_initializer("zeros")(key, (3, 4))).max()) == 0.0
    np.testing.assert_array_equal(get_initializer("constant", value=0.5)(key, (4,)), 0.5)
    np.testing.assert_array_equal(get_initializer("relu_bias")(key, (4,)), np.float32(RELU_BIAS))
    np.testing.assert_array_equal(get_initializer(("constant", {"value": 2.0}))(key, (2,)), 2.0)


def _tanh_net_last_activation(key, init_name, kw, depth=10, width=500, n=500, act=jnp.tanh):
    init = get_initializer(init_name, **kw)
    h = jax.random.normal(jax.random.fold_in(key, 99), (n, width))
    stds = []
    for layer in range(depth):
        h = act(h @ init(jax.random.fold_in(key, layer), (width, width)))
        stds.append(float(jnp.std(h)))
    return h, stds


def test_lecture_experiment_small_weights_vanish_big_weights_saturate(key):
    # 10 layers × 500 tanh units, unit Gaussian inputs (lecture 7).
    _, small = _tanh_net_last_activation(key, "normal", {"stddev": 0.01})
    h_big, _ = _tanh_net_last_activation(key, "normal", {"stddev": 1.0})
    _, xavier = _tanh_net_last_activation(key, "lecun_normal", {})
    assert small[-1] < 1e-5  # activations collapse toward 0: vanishing gradients
    assert float(jnp.mean(jnp.abs(h_big) > 0.9)) > 0.8  # saturated at ±1
    assert 0.1 < xavier[-1] < 0.9  # Var(w) = 1/n keeps them in the useful range


def test_lecture_experiment_relu_needs_kaiming(key):
    relu = jax.nn.relu
    _, xav = _tanh_net_last_activation(key, "lecun_normal", {}, act=relu)
    _, kai = _tanh_net_last_activation(key, "kaiming_normal", {}, act=relu)
    assert xav[-1] / xav[0] < 0.1  # ReLU halves the variance each layer with Var = 1/n
    assert 0.5 < kai[-1] / kai[0] < 2.0  # 2/n compensates


def test_unknown_initializer_and_bad_kwargs():
    with pytest.raises(ConfigError, match=r"unknown initializer 'kaimin'; valid choices: .*kaiming_normal"):
        get_initializer("kaimin")
    with pytest.raises(ConfigError, match="takes no argument"):
        get_initializer("xavier_normal", stddev=0.1)
    with pytest.raises(ConfigError, match="mode must be"):
        get_initializer("kaiming_normal", mode="fan_sideways")
    with pytest.raises(ConfigError, match="unknown initializer"):
        expected_variance("bogus", (2, 2))
    assert "he_normal" in INITIALIZERS and "glorot_uniform" in INITIALIZERS


def test_reinitialize_by_layer_path(key):
    m = MLP(widths=(200, 200), num_outputs=10)
    params = m.init(key, jnp.ones((1, 200)), train=False)["params"]
    rules = {"dense_0/kernel": ("normal", {"stddev": 1.0}), "dense_1/kernel": "kaiming_normal", "bias$": "relu_bias"}
    new = reinitialize(params, jax.random.PRNGKey(1), rules)
    assert float(jnp.std(new["dense_0"]["kernel"])) == pytest.approx(1.0, rel=0.03)
    assert float(jnp.var(new["dense_1"]["kernel"])) == pytest.approx(2 / 200, rel=0.05)
    for layer in ("dense_0", "dense_1", "head"):
        np.testing.assert_array_equal(new[layer]["bias"], np.float32(RELU_BIAS))
    np.testing.assert_array_equal(new["head"]["kernel"], params["head"]["kernel"])  # unmatched: kept
    # Deterministic, and a leaf's draw does not depend on the other rules.
    again = reinitialize(params, jax.random.PRNGKey(1), {"dense_1/kernel": "kaiming_normal"})
    np.testing.assert_array_equal(again["dense_1"]["kernel"], new["dense_1"]["kernel"])


def test_reinitialize_rule_matching_nothing_raises(key):
    params = MLP(widths=(4,), num_outputs=2).init(key, jnp.ones((1, 3)), train=False)["params"]
    with pytest.raises(ConfigError, match=r"match no parameter; paths are e.g. .*dense_0/kernel"):
        reinitialize(params, key, {"conv_0/kernel": "zeros"})


def test_model_kernel_init_by_name(key):
    m = SimpleCNN(channels=(64,), num_classes=3, norm="none", kernel_init=("normal", {"stddev": 1.0}))
    v = jax.jit(lambda k: m.init(k, jnp.ones((1, 4, 4, 8)), train=False))(key)
    assert float(jnp.std(v["params"]["block0"]["conv"]["kernel"])) == pytest.approx(1.0, rel=0.05)
    with pytest.raises(ConfigError, match="unknown initializer"):
        SimpleCNN(channels=(4,), kernel_init="xavier").init(key, jnp.ones((1, 4, 4, 1)), train=False)
