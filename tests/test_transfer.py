"""Transfer learning: parameter groups, freezing with optax masks, a lower body LR, head replacement."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.errors import ConfigError, ShapeError
from dlcore.models import SimpleCNN
from dlcore.nn import MLP, fine_tune_fn, freeze, param_mask, param_paths, scale_lr, transfer_params
from dlcore.optim import optimizer_fn
from dlcore.train import Recipe, fit


@pytest.fixture
def params(key):
    return MLP(widths=(6, 5), num_outputs=3).init(key, jnp.ones((1, 4)), train=False)["params"]


def test_param_paths_and_masks(params):
    assert param_paths(params) == ["dense_0/bias", "dense_0/kernel", "dense_1/bias", "dense_1/kernel",
                                   "head/bias", "head/kernel"]
    assert param_mask(params, "^head/") == {"dense_0": {"bias": False, "kernel": False},
                                            "dense_1": {"bias": False, "kernel": False},
                                            "head": {"bias": True, "kernel": True}}
    assert sum(jax.tree.leaves(param_mask(params, ["^dense_0/", "bias$"]))) == 4  # a union
    with pytest.raises(ConfigError, match="matches no parameter"):
        param_mask(params, "^backbone/")
    with pytest.raises(ConfigError, match="must be a name"):
        param_mask(params, 3)


def _train(params, tx, steps=5):
    x = jax.random.normal(jax.random.PRNGKey(1), (16, 4))
    y = jnp.arange(16) % 3
    m = MLP(widths=(6, 5), num_outputs=3)

    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(m.apply({"params": p}, x, train=False), y).mean()

    @jax.jit
    def run(p):
        def step(carry, _):
            p, s = carry
            u, s = tx.update(jax.grad(loss)(p), s, p)
            return (optax.apply_updates(p, u), s), None
        return jax.lax.scan(step, (p, tx.init(p)), None, length=steps)[0]

    return run(params)


def test_freeze_keeps_the_body_fixed(params):
    tx = freeze(optax.adam(1e-1), "^dense_")
    new, state = _train(params, tx)
    for layer in ("dense_0", "dense_1"):
        for name in ("kernel", "bias"):
            np.testing.assert_array_equal(new[layer][name], params[layer][name])
    assert not np.allclose(new["head"]["kernel"], params["head"]["kernel"])
    # Adam keeps moments only for the trainable group (frozen leaves hold no optimizer state).
    n_state = sum(a.size for a in jax.tree.leaves(state))
    n_head = params["head"]["kernel"].size + params["head"]["bias"].size
    assert n_state <= 2 * n_head + 8


def test_scale_lr_equals_a_lower_learning_rate(params):
    g = jax.tree.map(lambda a: jnp.full_like(a, 0.3), params)
    for base in (optax.sgd(0.5), optax.sgd(0.5, momentum=0.9)):
        tx = scale_lr(base, "^dense_", 0.1)
        u, _ = tx.update(g, tx.init(params), params)
        u_head, _ = base.update(g, base.init(params), params)
        np.testing.assert_allclose(u["head"]["kernel"], u_head["head"]["kernel"], rtol=1e-6)
        np.testing.assert_allclose(u["dense_0"]["kernel"], 0.1 * u_head["dense_0"]["kernel"], rtol=1e-6)
    # Adam's step is proportional to its learning rate too.
    tx = scale_lr(optax.adam(1e-2), "^dense_", 0.1)
    u, _ = tx.update(g, tx.init(params), params)
    u_slow, _ = optax.adam(1e-3).update(g, optax.adam(1e-3).init(params), params)
    np.testing.assert_allclose(u["dense_1"]["kernel"], u_slow["dense_1"]["kernel"], rtol=1e-5)


def test_replace_head_and_transfer(key):
    x = jnp.ones((1, 8, 8, 1))
    old_model, new_model = SimpleCNN(channels=(4,), num_classes=10), SimpleCNN(channels=(4,), num_classes=3)
    old = old_model.init(key, x, train=False)["params"]
    fresh = new_model.init(jax.random.PRNGKey(9), x, train=False)["params"]
    new = transfer_params(old, fresh)
    np.testing.assert_array_equal(new["block0"]["conv"]["kernel"], old["block0"]["conv"]["kernel"])
    np.testing.assert_array_equal(new["head"]["kernel"], fresh["head"]["kernel"])
    assert new["head"]["kernel"].shape == (64, 3)
    new_model.apply({"params": new, "batch_stats": new_model.init(key, x, train=False)["batch_stats"]}, x, train=False)
    with pytest.raises(ShapeError, match=r"parameter 'head/bias': pretrained shape \(10,\) != new shape \(3,\)"):
        transfer_params(old, fresh, skip="none")
    wider = SimpleCNN(channels=(6,), num_classes=3).init(key, x, train=False)["params"]
    with pytest.raises(ShapeError, match="block0/conv/kernel"):
        transfer_params(old, wider)


def test_fine_tune_with_fit(tiny_data):
    pre = fit(Recipe(MLP(widths=(8,), num_outputs=3), optimizer_fn("adam")), tiny_data, 0,
              hparams={"learning_rate": 1e-2}, num_steps=30, batch_size=32, progress=False)
    saved = jax.tree.map(np.asarray, pre.state)  # fit donates its state: keep a host copy
    pretrained = saved.params

    def start(recipe, **hp):
        s = jax.tree.map(jnp.asarray, saved)
        hparams = {**s.hparams, **{k: jnp.float32(v) for k, v in hp.items()}}
        return s.replace(opt_state=recipe.optimizer(hparams).init(s.params), step=jnp.zeros((), jnp.int32),
                         hparams=hparams)

    recipe = Recipe(MLP(widths=(8,), num_outputs=3), fine_tune_fn(optimizer_fn("adam"), body="freeze"))
    res = fit(recipe, tiny_data, 0, hparams={"learning_rate": 1e-2}, num_steps=20, batch_size=32,
              state=start(recipe), progress=False)
    np.testing.assert_array_equal(res.state.params["dense_0"]["kernel"], pretrained["dense_0"]["kernel"])
    assert not np.allclose(res.state.params["head"]["kernel"], pretrained["head"]["kernel"])
    # body trained at a (sweepable) fraction of the learning rate: hparam body_lr_scale = 0 freezes it too
    slow = Recipe(MLP(widths=(8,), num_outputs=3), fine_tune_fn(optimizer_fn("sgd"), body="train"))
    state = start(slow, body_lr_scale=0.0)
    res = fit(slow, tiny_data, 0, hparams={"learning_rate": 1e-2}, num_steps=10, batch_size=32, state=state,
              progress=False)
    np.testing.assert_array_equal(res.state.params["dense_0"]["kernel"], pretrained["dense_0"]["kernel"])
    assert not np.allclose(res.state.params["head"]["kernel"], pretrained["head"]["kernel"])
    with pytest.raises(ConfigError, match="body must be"):
        fine_tune_fn(optimizer_fn("sgd"), body="thaw")
