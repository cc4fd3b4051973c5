"""`dlcore check`: each check passes on a correct model and fails, with the right hint, on a broken one."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from dlcore.cli import main
from dlcore.diagnostics import check_recipe
from dlcore.nn import MLP, DropConnectDense, Dropout, deterministic
from dlcore.optim import optimizer_fn
from dlcore.train import Recipe

KW = dict(hparams={"learning_rate": 1e-2}, batch_size=32, steps=60, overfit_steps=150)


class SoftmaxedMLP(nn.Module):
    """Bug: softmax applied before a loss that expects logits."""

    @nn.compact
    def __call__(self, x, train):
        return jax.nn.softmax(MLP(widths=(32,), num_outputs=3)(x, train))


class DetachedLayer(nn.Module):
    """Bug: a layer whose output never reaches the loss."""

    @nn.compact
    def __call__(self, x, train):
        h = nn.relu(nn.Dense(16)(x))
        _unused = nn.Dense(16, name="forgotten")(h)
        return nn.Dense(3)(h)


class FixedDropoutNet(nn.Module):
    """Dropout fixed inside the model (not a `dropout_rate` hyperparameter): flax's and dlcore's."""

    @nn.compact
    def __call__(self, x, train):
        h = nn.Dropout(0.9)(x, deterministic=not train)  # heavy input dropout: no memorising while on
        h = nn.relu(nn.Dense(32)(h))
        h = Dropout(0.5)(h, train)
        return nn.Dense(3)(h)


@pytest.fixture(scope="module")
def good_report(tiny_data):
    r = Recipe(MLP(widths=(32,), num_outputs=3, dropout_rate=0.1), optimizer_fn("adam"))
    return check_recipe(r, tiny_data, **KW)


def test_correct_model_passes_every_check(good_report):
    assert good_report.passed, str(good_report)
    assert good_report["train/eval modes differ"].passed is True
    assert good_report["gradients = finite diff."].passed


def test_softmax_before_logits_loss_fails_overfitting(tiny_data):
    rep = check_recipe(Recipe(SoftmaxedMLP(), optimizer_fn("adam")), tiny_data, **KW)
    assert not rep.passed
    assert rep["overfit one example"].passed is False
    assert "softmax" in rep["overfit one example"].hint
    assert "softmax" in str(rep)


def test_shuffled_labels_fail_learning_beyond_chance(tiny_data):
    perm = np.random.default_rng(0).permutation(tiny_data.y_train.shape[0])
    shuffled = tiny_data.replace(y_train=tiny_data.y_train[perm])
    rep = check_recipe(Recipe(MLP(widths=(32,), num_outputs=3), optimizer_fn("adam")), shuffled, **KW)
    assert rep["learns beyond chance"].passed is False
    assert "misalignment" in rep["learns beyond chance"].hint


def test_layer_out_of_gradient_path_is_named(tiny_data):
    rep = check_recipe(Recipe(DetachedLayer(), optimizer_fn("adam")), tiny_data, **KW)
    r = rep["every parameter learns"]
    assert r.passed is False and "forgotten" in r.detail and "gradient path" in r.hint
    assert rep["train/eval modes differ"].passed is None  # no dropout/BN: not applicable


def test_cli_check_exit_code(capsys):
    assert main(["check", "tiny", "--steps", "60", "--overfit-steps", "150"]) == 0
    out = capsys.readouterr().out
    assert "[PASS] initial loss" in out and "all checks passed" in out


def test_overfit_checks_switch_off_dropout_fixed_in_the_model(tiny_data):
    """The overfit checks zeroed only regularizer *hyperparameters*: fixed dropout stayed on and failed them."""
    rep = check_recipe(Recipe(FixedDropoutNet(), optimizer_fn("adam")), tiny_data, **KW)
    assert rep["overfit one example"].passed, str(rep)
    assert rep["overfit one batch"].passed, str(rep)


def test_deterministic_switches_every_stochastic_layer_off_but_keeps_train_mode(key):
    x = jax.random.normal(key, (8, 4))

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            h = DropConnectDense(16, rate=0.5)(x, train)
            h = nn.BatchNorm(use_running_average=not train)(h)
            h = nn.Dropout(0.5)(h, deterministic=not train)
            return Dropout(0.5)(h, train=train)

    m = Net()
    v = m.init(key, x, train=False)
    run = jax.jit(lambda k: m.apply(v, x, train=True, rngs={"dropout": k}, mutable=["batch_stats"])[0])
    a, b = run(jax.random.PRNGKey(1)), run(jax.random.PRNGKey(2))
    assert not np.allclose(a, b)  # stochastic outside the context
    with deterministic():
        run_det = jax.jit(lambda k: m.apply(v, x, train=True, rngs={"dropout": k}, mutable=["batch_stats"])[0])
        a, b = run_det(jax.random.PRNGKey(1)), run_det(jax.random.PRNGKey(2))
    np.testing.assert_array_equal(a, b)
    # batch norm is still in training mode (batch statistics): each feature has mean 0 over the batch
    np.testing.assert_allclose(np.asarray(a).mean(0), 0.0, atol=1e-5)
    assert not np.allclose(a, m.apply(v, x, train=False))
