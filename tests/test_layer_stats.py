"""Layer statistics: equal to NumPy on a fixed network; collected inside the compiled loop."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlcore.diagnostics import activation_stats, layer_activations, layer_stats, layer_stats_fn
from dlcore.nn import MLP
from dlcore.optim import optimizer_fn
from dlcore.train import Recipe, fit, init_state


def test_activation_stats_match_numpy(key):
    a = np.asarray(jax.random.normal(key, (64, 10)) * 2)
    t = np.tanh(a)
    s = activation_stats(jnp.asarray(t), "tanh")
    np.testing.assert_allclose(s["mean"], t.mean(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(s["std"], t.std(), rtol=1e-5)
    np.testing.assert_allclose(s["saturated"], np.mean(np.abs(t) > 0.97), rtol=1e-6)
    sig = 1 / (1 + np.exp(-a))
    np.testing.assert_allclose(activation_stats(jnp.asarray(sig), "sigmoid")["saturated"],
                               np.mean((sig > 0.97) | (sig < 0.03)), rtol=1e-6)


def test_dead_relu_fraction_constructed():
    # Units 0 and 2 are <= 0 for every example (dead), unit 1 fires once, unit 3 always.
    a = jnp.array([[0.0, 0.0, -1.0, 2.0], [0.0, 3.0, 0.0, 1.0], [-2.0, 0.0, 0.0, 1.0]])
    assert float(activation_stats(a, "relu")["dead"]) == 0.5


def test_layer_stats_match_numpy_forward(key, tiny_data):
    r = Recipe(MLP(widths=(6, 5), num_outputs=3, activation="tanh"), optimizer_fn("sgd"))
    s = init_state(r, 0, {"learning_rate": 0.1}, tiny_data.x_train[:1])
    x = np.asarray(tiny_data.x_train[:16], np.float64)
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), s.params)
    h0 = np.tanh(x @ p["dense_0"]["kernel"] + p["dense_0"]["bias"])
    h1 = np.tanh(h0 @ p["dense_1"]["kernel"] + p["dense_1"]["bias"])
    acts = layer_activations(r, s, tiny_data.x_train[:16])
    np.testing.assert_allclose(acts["act_0"], h0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acts["act_1"], h1, rtol=1e-5, atol=1e-6)
    st = layer_stats(r, s, {"x": tiny_data.x_train[:16], "y": tiny_data.y_train[:16]})
    np.testing.assert_allclose(st["act_1/std"], h1.std(), rtol=1e-4)
    # Gradient norm of the head against a NumPy backward pass of softmax cross-entropy.
    logits = h1 @ p["head"]["kernel"] + p["head"]["bias"]
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    d = (prob - np.eye(3)[np.asarray(tiny_data.y_train[:16])]) / 16
    g = np.sqrt(np.sum((h1.T @ d) ** 2) + np.sum(d.sum(0) ** 2))
    np.testing.assert_allclose(st["head/grad_norm"], g, rtol=1e-4)


def test_stats_collected_inside_loop_at_interval(tiny_data):
    r = Recipe(MLP(widths=(8,), num_outputs=3, activation="relu"), optimizer_fn("adam"))
    res = fit(r, tiny_data, 0, hparams={"learning_rate": 1e-2}, num_steps=50, batch_size=32, eval_every=20,
              stats_fn=layer_stats_fn(r, "relu"), stats_every=10, progress=False)
    np.testing.assert_array_equal(res.history["stats_step"], [10, 20, 30, 40, 50])
    assert res.history["stats/act_0/dead"].shape == (5,)
    plain = fit(r, tiny_data, 0, hparams={"learning_rate": 1e-2}, num_steps=50, batch_size=32, eval_every=20,
                progress=False)
    # Observing does not change the run.
    for a, b in zip(jax.tree.leaves(res.state.params), jax.tree.leaves(plain.state.params)):
        np.testing.assert_array_equal(a, b)


class DeepTanh(nn.Module):
    sigma: float
    depth: int = 10
    width: int = 200

    @nn.compact
    def __call__(self, x, train):
        h = x
        for i in range(self.depth):
            h = jnp.tanh(nn.Dense(self.width, kernel_init=nn.initializers.normal(self.sigma))(h))
            self.sow("intermediates", f"act_{i}", h)
        return nn.Dense(3)(h)


def test_lectures_deep_tanh_experiment(key):
    """Small init: activations collapse with depth; large init: they saturate at ±1."""
    x = jax.random.normal(key, (100, 200))
    r_small = Recipe(DeepTanh(0.01), optimizer_fn("sgd"))
    r_large = Recipe(DeepTanh(1.0), optimizer_fn("sgd"))
    s_small = init_state(r_small, 0, {"learning_rate": 0.1}, x[:1])
    s_large = init_state(r_large, 0, {"learning_rate": 0.1}, x[:1])
    small = layer_activations(r_small, s_small, x)
    large = layer_activations(r_large, s_large, x)
    assert float(jnp.std(small["act_9"])) < 1e-6 < float(jnp.std(small["act_0"]))
    assert float(activation_stats(large["act_9"], "tanh")["saturated"]) > 0.5
