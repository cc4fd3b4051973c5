"""Ensembles as one vmapped model, bagging by bootstrap counts, Monte Carlo dropout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.errors import ConfigError, ShapeError
from dlcore.models import SimpleCNN
from dlcore.nn import (
    MLP, Ensemble, bagged_dataset, bootstrap_counts, bootstrap_indices, ensemble_loss, ensemble_metrics,
    ensemble_predict, mc_dropout_predict, member_variables, stack_members
)
from dlcore.optim import optimizer_fn
from dlcore.train import Recipe, fit, init_state

MEMBER = MLP(widths=(16,), num_outputs=3, dropout_rate=0.3)


def _init(ens, x, seed=0):
    return jax.jit(lambda k: ens.init(k, x, train=False))(jax.random.PRNGKey(seed))


def test_identical_member_ids_equal_one_model(key):
    x = jax.random.normal(key, (5, 4))
    ens = Ensemble(MEMBER, member_ids=(7, 7, 7))
    v = _init(ens, x)
    out = ens.apply(v, x, train=False)
    one = MEMBER.apply(member_variables(v, 0), x, train=False)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])
    # equal to the single model up to rounding (a vmapped matmul may round differently, ~1e-7)
    np.testing.assert_allclose(out[0], one, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ensemble_predict(out, "mean"), jax.nn.softmax(one), rtol=1e-6)
    # Same ids also share dropout masks in training: the members stay identical.
    train_out = ens.apply(v, x, train=True, rngs={"dropout": key})
    np.testing.assert_array_equal(train_out[0], train_out[2])
    assert not np.allclose(train_out[0], out[0])  # dropout was on


def test_different_ids_give_different_members_and_masks(key):
    x = jax.random.normal(key, (5, 4))
    ens = Ensemble(MEMBER, num_members=3)
    v = _init(ens, x)
    assert v["params"]["members"]["head"]["kernel"].shape == (3, 16, 3)
    out = ens.apply(v, x, train=False)
    assert not np.allclose(out[0], out[1]) and not np.allclose(out[1], out[2])
    # Per-member dropout keys: identical parameters, different ids → different training masks.
    same = stack_members([member_variables(v, 0)] * 3)
    tr = ens.apply(same, x, train=True, rngs={"dropout": key})
    assert not np.allclose(tr[0], tr[1])
    np.testing.assert_array_equal(ens.apply(same, x, train=False)[0], ens.apply(same, x, train=False)[1])
    # Adding a member keeps the first ones (ids are folded in, not split).
    v4 = _init(Ensemble(MEMBER, num_members=4), x)
    np.testing.assert_array_equal(v4["params"]["members"]["head"]["kernel"][:3], v["params"]["members"]["head"]["kernel"])


def test_member_s_is_the_standalone_seed_s(key):
    """Member ids are seeds: member s starts exactly where init_state(seed=s) starts (it did not:
    flax's make_rng gave other parameters, max difference 1.27)."""
    x = jax.random.normal(key, (5, 4))
    ids = (3, 11, 3)
    ens = Ensemble(MEMBER, member_ids=ids)
    # the ensemble's own seed does not matter for its members' initial parameters
    ens_state = init_state(Recipe(ens, optimizer_fn("sgd")), 42, {"learning_rate": 0.1}, x)
    for m, s in enumerate(ids):
        lone = init_state(Recipe(MEMBER, optimizer_fn("sgd")), s, {"learning_rate": 0.1}, x)
        got = member_variables({"params": ens_state.params, **ens_state.model_state}, m)["params"]
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(lone.params), strict=True):
            np.testing.assert_array_equal(a, b)


def test_member_trained_in_ensemble_equals_fit_of_its_seed(tiny_data):
    """Trained by fit with the same seed (same data order), member s follows the lone run of seed s."""
    member = MLP(widths=(16,), num_outputs=3)  # no dropout: a lone run's masks depend on its step
    kw = dict(hparams={"learning_rate": 0.1}, num_steps=20, batch_size=32, eval_every=20, progress=False,
              evaluate_test=False)
    ens = Ensemble(member, member_ids=(5, 6))
    res = fit(Recipe(ens, optimizer_fn("sgd"), loss=ensemble_loss, metrics=ensemble_metrics), tiny_data, 5, **kw)
    lone = fit(Recipe(member, optimizer_fn("sgd")), tiny_data, 5, **kw)
    got = member_variables({"params": res.state.params}, 0)["params"]
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(lone.state.params), strict=True):
        assert not np.allclose(b, 0)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)  # a vmapped matmul rounds differently
    # member 1 (seed 6) is another model
    other = member_variables({"params": res.state.params}, 1)["params"]
    assert not np.allclose(other["head"]["kernel"], lone.state.params["head"]["kernel"], atol=1e-2)


def test_per_member_batch_norm_statistics(key):
    m = SimpleCNN(channels=(4,), num_classes=3, norm="batch")
    ens = Ensemble(m, num_members=2)
    x = jax.random.normal(key, (6, 4, 4, 1))
    v = _init(ens, x)
    assert v["batch_stats"]["members"]["block0"]["norm"]["bn"]["mean"].shape == (2, 4)
    _, upd = jax.jit(lambda v: ens.apply(v, x, train=True, mutable=["batch_stats"]))(v)
    means = upd["batch_stats"]["members"]["block0"]["norm"]["bn"]["mean"]
    assert not np.allclose(means[0], means[1])  # different conv weights → different statistics
    single, single_upd = m.apply(member_variables(v, 1), x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(means[1], single_upd["batch_stats"]["block0"]["norm"]["bn"]["mean"], rtol=1e-5, atol=1e-6)


def test_combination_rules():
    logits = jnp.array([[[2.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]], [[3.0, 0.0, 0.0]], [[0.0, 0.0, 9.0]]])
    mean = ensemble_predict(logits, "mean")
    np.testing.assert_allclose(mean, jnp.mean(jax.nn.softmax(logits, -1), 0), rtol=1e-6)
    np.testing.assert_allclose(ensemble_predict(logits, "vote"), [[0.5, 0.25, 0.25]])
    # the two rules can disagree: one very confident member wins the average, not the vote
    logits = jnp.array([[[0.5, 0.0, 0.4]]] * 3 + [[[0.0, 0.0, 9.0]]])
    assert int(jnp.argmax(ensemble_predict(logits, "mean"))) == 2
    assert int(jnp.argmax(ensemble_predict(logits, "vote"))) == 0
    with pytest.raises(ConfigError, match="unknown ensemble combination 'median'; valid choices: mean, vote"):
        ensemble_predict(logits, "median")
    with pytest.raises(ShapeError, match=r"\[M, B, C\]"):
        ensemble_predict(logits[0], "mean")


def test_members_train_independently(key):
    """The summed loss gives each member exactly its own gradient."""
    x = jax.random.normal(key, (8, 4))
    y = jnp.arange(8) % 3
    ens = Ensemble(MLP(widths=(8,), num_outputs=3), num_members=3)
    v = _init(ens, x)
    g = jax.jit(jax.grad(lambda p: jnp.mean(ensemble_loss(ens.apply({"params": p}, x, train=False), {"y": y}, {}))))(
        v["params"])
    grad_one = jax.jit(jax.grad(lambda p: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
        MLP(widths=(8,), num_outputs=3).apply({"params": p}, x, train=False), y))))
    for m in range(3):
        gm = grad_one(member_variables(v, m)["params"])
        np.testing.assert_allclose(g["members"]["head"]["kernel"][m], gm["head"]["kernel"], rtol=1e-5, atol=1e-7)


def test_bootstrap_resamples():
    k = jax.random.PRNGKey(3)
    idx = bootstrap_indices(k, 2000, 4)
    counts = bootstrap_counts(k, 2000, 4)
    assert idx.shape == counts.shape == (4, 2000)
    np.testing.assert_array_equal(counts.sum(1), 2000)
    frac = np.mean(np.asarray(counts) > 0, axis=1)
    np.testing.assert_allclose(frac, 1 - np.exp(-1), atol=0.03)  # ≈ 63.2% of examples per resample
    np.testing.assert_array_equal(bootstrap_indices(k, 2000, 2), idx[:2])  # member m's resample is its own
    assert not np.array_equal(idx[0], idx[1])
    with pytest.raises(ConfigError):
        bootstrap_indices(k, 0, 2)


def test_bagging_weights_the_loss():
    logits = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 3))
    y = jnp.array([0, 1, 2, 0])
    counts = jnp.array([[1, 0, 2, 1], [0, 3, 1, 0]])
    bag_y = jnp.concatenate([y[:, None], counts.T], axis=1)
    per = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.broadcast_to(y, (2, 4)))
    np.testing.assert_allclose(ensemble_loss(logits, {"y": bag_y}, {}), (per * counts).sum(0), rtol=1e-6)
    np.testing.assert_allclose(ensemble_loss(logits, {"y": y}, {}), per.sum(0), rtol=1e-6)
    np.testing.assert_array_equal(ensemble_metrics(logits, {"y": bag_y})["accuracy"],
                                  ensemble_metrics(logits, {"y": y})["accuracy"])
    with pytest.raises(ShapeError, match=r"\[B\] or \[B, 1 \+ M\]"):
        ensemble_loss(logits, {"y": jnp.zeros((4, 5), jnp.int32)}, {})


def test_ensemble_and_bagging_with_fit(tiny_data):
    ens = Ensemble(MLP(widths=(16,), num_outputs=3), num_members=3)
    recipe = Recipe(ens, optimizer_fn("adam"), loss=ensemble_loss, metrics=ensemble_metrics)
    data = bagged_dataset(tiny_data, jax.random.PRNGKey(1), 3)
    assert data.y_train.shape == (tiny_data.y_train.shape[0], 4)
    res = fit(recipe, data, 0, hparams={"learning_rate": 1e-2}, num_steps=60, batch_size=32, progress=False)
    assert float(res.final["test/accuracy"]) > 0.9
    assert float(res.final["test/member_accuracy"]) > 0.8
    k = res.state.params["members"]["head"]["kernel"]
    assert not np.allclose(k[0], k[1])


def test_mc_dropout(key):
    x = jax.random.normal(key, (6, 4))
    m0 = MLP(widths=(32,), num_outputs=3, dropout_rate=0.0)
    v = m0.init(key, x, train=False)
    mean, var = jax.jit(lambda v, x: mc_dropout_predict(m0, v, x, jax.random.PRNGKey(5), 20))(v, x)
    assert float(jnp.max(var)) == 0.0  # rate 0: every pass identical
    np.testing.assert_allclose(mean, jax.nn.softmax(m0.apply(v, x, train=False)), rtol=1e-6)
    m5 = MLP(widths=(32,), num_outputs=3, dropout_rate=0.5)
    mean5, var5 = mc_dropout_predict(m5, v, x, jax.random.PRNGKey(5), 50)
    assert float(jnp.min(jnp.max(var5, -1))) > 0.0
    np.testing.assert_allclose(mean5.sum(-1), 1.0, rtol=1e-5)
    again, _ = mc_dropout_predict(m5, v, x, jax.random.PRNGKey(5), 50)
    np.testing.assert_array_equal(again, mean5)  # keyed: reproducible
    with pytest.raises(ConfigError, match="num_samples"):
        mc_dropout_predict(m5, v, x, key, 0)


def test_mc_dropout_with_batch_norm_does_not_update_statistics(key):
    m = MLP(widths=(8,), num_outputs=2, dropout_rate=0.2, norm="batch")
    x = jax.random.normal(key, (6, 3))
    v = m.init(key, x, train=False)
    mean, var = mc_dropout_predict(m, v, x, key, 4)
    assert mean.shape == var.shape == (6, 2)
    np.testing.assert_array_equal(v["batch_stats"]["bn_0"]["mean"], 0.0)


def test_bad_ensemble_config(key):
    with pytest.raises(ConfigError, match="num_members must be ≥ 1"):
        Ensemble(MEMBER, num_members=0).init(key, jnp.ones((1, 4)), train=False)
    with pytest.raises(ConfigError, match="member_ids is empty"):
        Ensemble(MEMBER, member_ids=()).init(key, jnp.ones((1, 4)), train=False)
