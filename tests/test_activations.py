"""Activations against their formulas (NumPy/SciPy), the parametric ones, and the name registry."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from dlcore.errors import ConfigError
from dlcore.nn import (
    ACTIVATIONS, MLP, Activation, Maxout, PReLU, elu, gelu, get_activation, leaky_relu, relu, sigmoid, softmax, step,
    swish, tanh
)

X = np.linspace(-6, 6, 49).astype(np.float32)


@pytest.mark.parametrize(
    "fn, ref",
    [
        (step, lambda x: (x >= 0).astype(np.float32)),
        (sigmoid, special.expit),
        (tanh, np.tanh),
        (relu, lambda x: np.maximum(0, x)),
        (leaky_relu, lambda x: np.maximum(0.01 * x, x)),
        (elu, lambda x: np.where(x > 0, x, np.expm1(x))),
        (lambda x: gelu(x, approximate=False), lambda x: x * stats.norm.cdf(x)),
        (lambda x: swish(x, 1.0), lambda x: x * special.expit(x)),
        (lambda x: swish(x, 2.5), lambda x: x * special.expit(2.5 * x)),
    ],
)
def test_activation_matches_formula(fn, ref):
    np.testing.assert_allclose(np.asarray(fn(jnp.asarray(X))), ref(X.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_gelu_tanh_approximation_is_close_to_exact():
    diff = np.abs(np.asarray(gelu(jnp.asarray(X))) - X * stats.norm.cdf(X))
    assert 0 < diff.max() < 1e-3


def test_swish_limits_and_lecture_form():
    x = jnp.asarray(X)
    np.testing.assert_allclose(swish(x, 0.0), x / 2, atol=1e-6)  # β = 0: x·σ(0) = x/2
    np.testing.assert_allclose(swish(x, 200.0), relu(x), atol=1e-3)  # β → ∞: ReLU
    np.testing.assert_allclose(2 * swish(x, 0.0), x, atol=1e-6)  # the lectures' 2x·σ(βx) at β = 0: identity
    # beta may be traced (swept): jit over beta gives the same values
    np.testing.assert_allclose(jax.jit(swish)(x, jnp.float32(2.5)), swish(x, 2.5), rtol=1e-6)


def test_softmax_stable_and_normalised():
    logits = jnp.array([[1000.0, 1001.0, 999.0], [-5.0, 0.0, 5.0]])
    p = softmax(logits)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p, special.softmax(np.asarray(logits, np.float64), axis=-1), rtol=1e-5)


def test_step_has_zero_gradient_relu_has_unit_gradient():
    g_step = jax.vmap(jax.grad(step))(jnp.asarray(X))
    g_relu = jax.vmap(jax.grad(relu))(jnp.asarray(X))
    assert float(jnp.abs(g_step).max()) == 0.0  # why the perceptron unit cannot be trained by GD
    np.testing.assert_array_equal(g_relu[X > 0], 1.0)
    np.testing.assert_array_equal(g_relu[X < 0], 0.0)


def test_registry_covers_lecture_table_and_keeps_shape(key):
    for name in ("step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "swish", "softmax", "identity"):
        assert name in ACTIVATIONS
    x = jax.random.normal(key, (3, 4))
    for name in ACTIVATIONS:
        assert get_activation(name)(x).shape == x.shape


def test_get_activation_kwargs_and_callables():
    assert float(get_activation("leaky_relu", negative_slope=0.2)(jnp.float32(-1.0))) == pytest.approx(-0.2)
    assert float(get_activation("swish", beta=0.0)(jnp.float32(4.0))) == pytest.approx(2.0)
    f = lambda x: x * 3  # noqa: E731
    assert get_activation(f) is f


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown activation 'relu6'; valid choices: .*leaky_relu.*prelu.*relu"):
        get_activation("relu6")
    with pytest.raises(ConfigError, match="has learned parameters; use the module"):
        get_activation("prelu")
    with pytest.raises(ConfigError, match="unknown activation 'nope'"):
        Activation("nope").init(jax.random.PRNGKey(0), jnp.ones((1, 2)))
    with pytest.raises(ConfigError, match="unknown activation"):
        MLP(widths=(2,), num_outputs=2, activation="rellu").init(jax.random.PRNGKey(0), jnp.ones((1, 2)), train=False)


def test_prelu_learns_alpha(key):
    m = PReLU()
    x = jnp.array([[-2.0, 3.0, -1.0]])
    v = m.init(key, x)
    assert float(v["params"]["alpha"]) == 0.25
    np.testing.assert_allclose(m.apply(v, x), [[-0.5, 3.0, -0.25]])
    # ∂(Σ y)/∂α = Σ of the negative inputs: backprop reaches α
    g = jax.grad(lambda p: m.apply({"params": p}, x).sum())(v["params"])
    assert float(g["alpha"]) == pytest.approx(-3.0)
    pc = PReLU(per_channel=True)
    assert pc.init(key, x)["params"]["alpha"].shape == (3,)


def test_prelu_by_name_inside_activation(key):
    m = Activation("prelu")
    v = m.init(key, jnp.ones((1, 2)))
    y = m.apply({"params": {"prelu": {"alpha": jnp.float32(0.1)}}}, jnp.array([[-1.0, 1.0]]))
    np.testing.assert_allclose(y, [[-0.1, 1.0]], rtol=1e-6)
    assert "alpha" in v["params"]["prelu"]


def test_maxout_is_max_of_affine_pieces(key):
    m = Maxout(features=3, num_pieces=4)
    x = jax.random.normal(key, (5, 6))
    v = m.init(key, x)
    w, b = v["params"]["pieces"]["kernel"], v["params"]["pieces"]["bias"]
    pieces = (np.asarray(x) @ np.asarray(w) + np.asarray(b)).reshape(5, 3, 4)
    np.testing.assert_allclose(m.apply(v, x), pieces.max(-1), rtol=1e-5, atol=1e-6)


def test_maxout_with_a_zero_piece_is_relu(key):
    # k = 2 with the second piece fixed at 0: max(wᵀx + b, 0) = ReLU of a Dense layer.
    m = Maxout(features=2, num_pieces=2)
    x = jax.random.normal(key, (4, 3))
    v = m.init(key, x)
    w = v["params"]["pieces"]["kernel"].reshape(3, 2, 2).at[:, :, 1].set(0.0).reshape(3, 4)
    p = {"pieces": {"kernel": w, "bias": jnp.zeros(4)}}
    dense = np.asarray(x) @ np.asarray(w.reshape(3, 2, 2)[:, :, 0])
    np.testing.assert_allclose(m.apply({"params": p}, x), np.maximum(dense, 0), rtol=1e-5, atol=1e-6)


def test_maxout_by_name(key):
    """'maxout' is in the registry: Activation, NormAct and MLP take it by name (k = 2 pieces, D → D)."""
    from dlcore.nn import PARAMETRIC_ACTIVATIONS, NormAct
    from dlcore.nn._activations import check_activation

    assert "maxout" in PARAMETRIC_ACTIVATIONS
    check_activation("maxout")
    x = jax.random.normal(key, (5, 3))
    m = Activation("maxout")
    v = m.init(key, x)
    w, b = v["params"]["maxout"]["pieces"]["kernel"], v["params"]["maxout"]["pieces"]["bias"]
    assert w.shape == (3, 6)
    pieces = (np.asarray(x) @ np.asarray(w) + np.asarray(b)).reshape(5, 3, 2)
    np.testing.assert_allclose(m.apply(v, x), pieces.max(-1), rtol=1e-5, atol=1e-6)
    # in a norm/activation block and in an MLP (each hidden layer gets its own pieces)
    na = NormAct("layer", "maxout")
    assert na.apply(na.init(key, x, train=False), x, train=False).shape == (5, 3)
    mlp = MLP(widths=(4, 4), num_outputs=2, activation="maxout")
    vm = mlp.init(key, x, train=False)
    assert vm["params"]["act_0"]["maxout"]["pieces"]["kernel"].shape == (4, 8)
    assert mlp.apply(vm, x, train=False).shape == (5, 2)
    with pytest.raises(ConfigError, match="'maxout' has learned parameters; use the module"):
        get_activation("maxout")
    with pytest.raises(ConfigError, match=r"unknown activation 'max_out'; valid choices: .*maxout"):
        Activation("max_out").init(key, x)


def test_maxout_bad_config(key):
    with pytest.raises(ConfigError, match="num_pieces"):
        Maxout(features=2, num_pieces=0).init(key, jnp.ones((1, 3)))
