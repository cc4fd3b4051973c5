"""Learning-rate schedules against their closed forms; epoch conversion; reduce-on-plateau in fit."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from dlcore.errors import ConfigError
from dlcore.optim import get_schedule, optimizer_fn, plateau_scale, schedule_values
from dlcore.train import Recipe, fit


def test_lecture_table_inverse_time():
    # The lectures: α = α0 / (1 + decay·epoch), α0 = 0.1, decay = 1.0 -> 0.1, 0.05, 0.033, 0.025.
    s = get_schedule("inverse_time", decay=1.0, dataset_size=3600, batch_size=100)  # 36 steps/epoch
    lrs = schedule_values(s, 4 * 36, learning_rate=0.1)[::36]
    np.testing.assert_allclose(lrs, [0.1, 0.05, 0.033, 0.025], atol=5e-4)
    np.testing.assert_allclose(lrs, [0.1 / (1 + e) for e in range(4)], rtol=1e-6)
    # Within an epoch the rate is constant (staircase); continuous epochs interpolate.
    assert len(set(schedule_values(s, 36, 0.1).tolist())) == 1
    c = get_schedule("inverse_time", decay=1.0, steps_per_epoch=36, staircase=False)
    np.testing.assert_allclose(schedule_values(c, 37)[18], 1 / 1.5, rtol=1e-6)


@pytest.mark.parametrize(
    "name,params,closed_form",
    [
        ("constant", {}, lambda t, e: np.ones_like(t)),
        ("step", dict(rate=0.5, every=2), lambda t, e: 0.5 ** np.floor(e / 2)),
        ("exponential", dict(rate=0.8), lambda t, e: 0.8**e),
        ("inverse_sqrt", dict(rate=0.5), lambda t, e: 0.5 / np.sqrt(e + 1)),
    ],
)
def test_epoch_schedules_closed_forms(name, params, closed_form):
    spe = 7
    t = np.arange(70, dtype=np.float64)
    e = np.floor(t / spe)
    kw = {} if name == "constant" else dict(steps_per_epoch=spe)
    got = schedule_values(get_schedule(name, **kw, **params), 70)
    np.testing.assert_allclose(got, closed_form(t, e), rtol=1e-6)


def test_transformer_schedule():
    s = get_schedule("transformer", d_model=512, warmup_steps=4000, num_steps=20000)
    t = np.arange(20000)
    step = t + 1.0
    ref = 512**-0.5 * np.minimum(step**-0.5, step * 4000**-1.5)
    np.testing.assert_allclose(schedule_values(s, 20000), ref, rtol=1e-5)
    assert np.argmax(ref) == 3999  # peak at the end of warmup


def test_cosine_with_warmup_and_onecycle():
    n, w = 100, 10
    s = schedule_values(get_schedule("cosine", num_steps=n, warmup_steps=w, end_fraction=0.1), n)
    np.testing.assert_allclose(s[:w], np.arange(w) / w, atol=1e-6)  # linear warmup from 0
    t = np.arange(w, n)
    ref = 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * (t - w) / (n - w)))
    np.testing.assert_allclose(s[w:], ref, atol=1e-6)
    oc = schedule_values(get_schedule("onecycle", num_steps=n, pct_start=0.3, div_factor=25.0), n)
    assert abs(oc[0] - 1 / 25) < 1e-6 and abs(oc.max() - 1.0) < 1e-6 and int(np.argmax(oc)) == 30
    assert oc[-1] < 1e-3


def test_schedule_multiplies_a_vmapped_peak_rate():
    sched = get_schedule("exponential", rate=0.5, steps_per_epoch=1)
    params = jnp.ones(2)

    def updates(lr):
        tx = optimizer_fn("sgd", schedule=sched)({"learning_rate": lr})
        st, out = tx.init(params), []
        for _ in range(3):
            u, st = tx.update(params, st, params)  # gradient = 1
            out.append(u[0])
        return jnp.stack(out)

    got = jax.jit(jax.vmap(updates))(jnp.array([0.1, 1.0]))
    np.testing.assert_allclose(got, -np.array([[0.1, 0.05, 0.025], [1.0, 0.5, 0.25]]), rtol=1e-6)


def test_cli_builds_a_named_schedule():
    from dlcore.cli._build import build_optimizer

    cfg = ml_collections.ConfigDict(dict(name="sgd", schedule="cosine", schedule_kwargs={"warmup_steps": 10}))
    tx = build_optimizer(cfg, num_steps=100)({"learning_rate": jnp.float32(1.0)})
    p = jnp.ones(1)
    u, _ = tx.update(p, tx.init(p), p)
    assert float(u[0]) == 0.0  # first warmup step: rate 0


def test_bad_schedules():
    with pytest.raises(ConfigError, match="unknown schedule 'cosin'; valid choices: constant, cosine"):
        get_schedule("cosin")
    with pytest.raises(ConfigError, match="warmup_steps=200 is not shorter than training"):
        get_schedule("cosine", num_steps=100, warmup_steps=200)
    with pytest.raises(ConfigError, match="warmup_steps=5000 is not shorter"):
        get_schedule("transformer", num_steps=1000, warmup_steps=5000)
    with pytest.raises(ConfigError, match="pass steps_per_epoch"):
        get_schedule("inverse_time")
    with pytest.raises(ConfigError, match="needs num_steps"):
        get_schedule("onecycle")
    with pytest.raises(ConfigError, match="unknown parameters \\['decay_rate'\\]"):
        get_schedule("inverse_time", steps_per_epoch=1, decay_rate=1.0)
    with pytest.raises(ConfigError, match="rate must be in"):
        get_schedule("exponential", steps_per_epoch=1, rate=1.5)
    with pytest.raises(ConfigError, match="factor must be in"):
        get_schedule("reduce_on_plateau", factor=2.0)


class Frozen(nn.Module):
    """One scalar parameter; logits independent of it so the validation loss never improves."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        w = self.param("w", nn.initializers.zeros, ())
        return jnp.zeros((x.shape[0], 3)) + 0.0 * w


def test_reduce_on_plateau_divides_by_factor_after_patience(tiny_data):
    sched = get_schedule("reduce_on_plateau", factor=0.1, patience=2)
    r = Recipe(Frozen(), optimizer_fn("sgd", schedule=sched), penalty=None)
    res = fit(r, tiny_data, 0, hparams={"learning_rate": 0.1}, num_steps=10, batch_size=16, eval_every=2,
              progress=False, evaluate_test=False)
    # 5 evaluations of a constant loss: #1 sets the best, #2-#3 plateau -> ×0.1, #4-#5 -> ×0.1 again.
    np.testing.assert_allclose(float(plateau_scale(res.state.opt_state)), 0.01, rtol=1e-6)
    # The scale multiplies the update.
    tx = r.optimizer({"learning_rate": jnp.float32(0.1)})
    p = {"w": jnp.ones(())}
    st = tx.init(p)
    st = jax.tree.map(lambda s: s._replace(scale=jnp.float32(0.01))
                      if isinstance(s, optax.contrib.ReduceLROnPlateauState) else s, st,
                      is_leaf=lambda s: isinstance(s, optax.contrib.ReduceLROnPlateauState))
    u, _ = tx.update({"w": jnp.ones(())}, st, p)
    np.testing.assert_allclose(float(u["w"]), -0.001, rtol=1e-6)


def test_plateau_rule_matches_optax_and_handles_max_mode():
    from dlcore.optim._optimizers import _plateau_step

    sched = get_schedule("reduce_on_plateau", factor=0.5, patience=2, cooldown=1, rtol=1e-2)
    rop = sched.transformation()
    ours = theirs = rop.init({"w": jnp.ones(())})
    values = [5.0, 4.0, 3.99, 3.98, 3.0, 3.5, 3.4, 3.3, 3.2, 2.0, 2.5, 2.6, 2.7]
    for v in values:  # positive values (a loss): identical to optax's own update
        ours = _plateau_step(ours, jnp.float32(v), sched)
        theirs = rop.update((), theirs, value=jnp.float32(v))[1]
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, err_msg=str(v))
    assert float(ours.scale) < 1.0
    # Higher-is-better metrics are negated: a constant accuracy is a plateau (optax's (1 − rtol)·best
    # rule would call an equal negative value an improvement and never reduce).
    acc = get_schedule("reduce_on_plateau", factor=0.1, patience=2, metric="accuracy", mode="max")
    st = acc.transformation().init({"w": jnp.ones(())})
    for _ in range(3):
        st = _plateau_step(st, -jnp.float32(0.9), acc)
    np.testing.assert_allclose(float(st.scale), 0.1, rtol=1e-6)
