"""Early stopping with patience inside the compiled loop, per seed in a sweep, restoring the best."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.nn import MLP
from dlcore.optim import optimizer_fn
from dlcore.train import EarlyStopping, early_stopping_summary
from dlcore.sweep import init_states, run_seeds
from dlcore.train import RUNNING, STOPPED, Recipe, fit, init_state


class Drift(nn.Module):
    """One scalar ``w``; SGD on the loss −w moves it by +lr per step, so the validation metric
    ``curve = (w − 3)²`` traces a known U-shaped curve over training."""

    random_init: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False):
        init = (lambda k, s: jax.random.uniform(k, s, maxval=2.0)) if self.random_init else nn.initializers.zeros
        w = self.param("w", init, ())
        return jnp.broadcast_to(w, x.shape[:1])


def drift_recipe(random_init=False):
    return Recipe(
        Drift(random_init), optimizer_fn("sgd"), loss=lambda out, batch, hp: -out,
        metrics=lambda out, batch: {"curve": (out - 3.0) ** 2}, penalty=None,
    )


KW = dict(batch_size=16, progress=False, evaluate_test=False)


def test_update_follows_the_patience_rule(tiny_data):
    r = Recipe(MLP(widths=(4,), num_outputs=3), optimizer_fn("sgd"))
    curve = [5.0, 4.0, 3.0, 3.5, 3.2, 2.9, 3.0, 3.1, 3.05, 1.0]
    for es in (EarlyStopping(patience=3), EarlyStopping(patience=2, min_delta=0.2),
               EarlyStopping(patience=2, mode="max")):
        state = es.init(init_state(r, 0, {"learning_rate": 0.1}, tiny_data.x_train[:1]))
        update = jax.jit(es.update)
        stopped_at = None
        for i, v in enumerate(curve):
            state = update(state.replace(step=jnp.int32(10 * (i + 1))), {"loss": jnp.float32(v)})
            if stopped_at is None and int(state.status) == STOPPED:
                stopped_at = i
        assert stopped_at == es.stop_index(curve)
        assert int(state.stop_step) == 10 * (stopped_at + 1)
    # Hand-worked: patience 3 -> best 2.9 at index 5, then 3.0, 3.1, 3.05 are bad -> stop at index 8.
    assert EarlyStopping(patience=3).stop_index(curve) == 8
    # min_delta 0.2: 3.5, 3.2 do not beat 3.0 by 0.2 -> stop at index 4.
    assert EarlyStopping(patience=2, min_delta=0.2).stop_index(curve) == 4


def test_fit_stops_at_the_right_step_and_restores_best(tiny_data):
    es = EarlyStopping(patience=3, metric="curve")
    res = fit(drift_recipe(), tiny_data, 0, hparams={"learning_rate": 0.1}, num_steps=100, eval_every=2,
              early_stopping=es, **KW)
    # w = 0.1·step; curve = (0.2k − 3)² at evaluation k (step 2k): best at k = 15 (step 30),
    # then three worse evaluations (k = 16, 17, 18) -> stop at step 36.
    summary = early_stopping_summary(res.state)
    assert int(res.state.status) == STOPPED and int(res.state.stop_step) == 36
    assert int(summary["best_step"]) == 30
    assert res.history["eval_step"][-1] == 36  # nothing left running: the loop ends there
    np.testing.assert_allclose(float(res.state.params["w"]), 3.0, atol=1e-5)  # best restored
    np.testing.assert_allclose(res.final["val/curve"], 0.0, atol=1e-9)


def test_per_seed_stops_in_a_sweep(tiny_data):
    es = EarlyStopping(patience=2, metric="curve")
    seeds = [0, 1, 2, 3]
    r = drift_recipe(random_init=True)
    res = run_seeds(r, tiny_data, seeds, hparams={"learning_rate": 0.1}, num_steps=80, eval_every=2,
                    early_stopping=es, **KW)
    # Expected per seed from its own initial w0 (w after step t: w0 + 0.1·t in float32).
    w0 = np.asarray(init_states(r, seeds, {"learning_rate": 0.1}, tiny_data.x_train[:1]).params["w"])
    stops = np.asarray(res.state.stop_step)
    for i in range(len(seeds)):
        w = np.float32(w0[i]) + np.cumsum(np.full(80, np.float32(0.1), np.float32), dtype=np.float32)
        k = es.stop_index((w[1::2] - np.float32(3.0)) ** 2)
        assert stops[i] == 2 * (k + 1), (i, stops[i], k)
        # The stopped seed holds its best parameters: w closest to 3 among evaluated points.
        np.testing.assert_allclose(res.state.params["w"][i], w[1::2][np.argmin(np.abs(w[1::2][: k + 1] - 3))],
                                   atol=1e-5)
    assert len(set(stops.tolist())) > 1, stops  # each seed stops at its own step
    assert np.all(np.asarray(res.state.status) == STOPPED)


def test_tiny_mlp_sweep_with_label_noise(tiny_data):
    # 40% of training labels replaced at random: the MLP overfits and validation loss turns up.
    rng = np.random.default_rng(0)
    y = np.asarray(tiny_data.y_train).copy()
    flip = rng.random(y.size) < 0.4
    y[flip] = rng.integers(0, 3, flip.sum())
    noisy = tiny_data.replace(y_train=jnp.asarray(y, tiny_data.y_train.dtype))
    es = EarlyStopping(patience=3)
    res = run_seeds(Recipe(MLP(widths=(32,), num_outputs=3), optimizer_fn("adam")), noisy, 4,
                    hparams={"learning_rate": 0.03}, num_steps=400, batch_size=32, eval_every=10,
                    early_stopping=es, progress=False, evaluate_test=False)
    s = early_stopping_summary(res.state)
    val = res.history["val/loss"]
    for i in range(4):
        k = es.stop_index(val[i])
        if k is None:
            assert not s["stopped"][i]
            continue
        assert s["stopped"][i] and s["stop_step"][i] == 10 * (k + 1)
        best = int(np.argmin(val[i][: k + 1]))
        assert s["best_step"][i] == 10 * (best + 1)
        # Best parameters restored: the final validation loss is the best one seen.
        np.testing.assert_allclose(res.final["val/loss"][i], val[i][best], rtol=1e-5)
    assert s["stopped"].any()


def test_without_early_stopping_nothing_changes(tiny_data):
    res = fit(drift_recipe(), tiny_data, 0, hparams={"learning_rate": 0.1}, num_steps=40, eval_every=2, **KW)
    assert int(res.state.status) == RUNNING and "early_stopping" not in res.state.extra
    np.testing.assert_allclose(float(res.state.params["w"]), 4.0, atol=1e-5)


def test_bad_input(tiny_data):
    with pytest.raises(ConfigError, match="patience must be an integer >= 1"):
        EarlyStopping(patience=0)
    with pytest.raises(ConfigError, match="mode must be 'min' or 'max'"):
        EarlyStopping(mode="median")
    with pytest.raises(ConfigError, match="monitors 'f1' but validation reports"):
        fit(drift_recipe(), tiny_data, 0, hparams={"learning_rate": 0.1}, num_steps=4, eval_every=2,
            early_stopping=EarlyStopping(metric="f1"), **KW)
