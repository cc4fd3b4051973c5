"""Studies: vmapped hyperparameters equal baked-in ones, chunking keeps every randomness stream,
each structure compiles once, selection on validation, test evaluated once for the chosen point."""

import jax
import numpy as np
import optax
import pytest

from dlcore.data import chunk_batch_indices
from dlcore.errors import ConfigError
from dlcore.manifest import params_sha256
from dlcore.nn import MLP
from dlcore.optim import optimizer_fn
from dlcore.sweep import Selection, Setup, run_study, space_from_spec
from dlcore.train import Recipe, RunOptions, fit, init_state

MODEL = MLP(widths=(16,), num_outputs=3)
TRACED = Recipe(MODEL, optimizer_fn("adam"))  # learning rate read from state.hparams at step time
BAKED = Recipe(MODEL, lambda hp: optax.adam(1e-2))  # learning rate a Python constant in the program
KW = dict(num_steps=30, batch_size=32, eval_every=30, progress=False, evaluate_test=False)


def _maxdiff(a, b):
    return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) for u, v in
               zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _row(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


def test_vmapped_learning_rate_matches_baked_in(tiny_data):
    """A learning rate read from the state vs the same rate baked into the program as a constant.

    Tolerances: traced vs baked, one run each: 0 (bitwise); a learning-rate axis (vmapped, one
    program for all rates) vs the rate baked in, in a batch of the same size: 0 (bitwise); vs the
    rate baked in and run alone: < 1e-5 after 30 Adam steps (batched kernels round differently,
    see dlcore.sweep.run_seeds). optax.inject_hyperparams instead drifts even unbatched, because it
    also turns b1/b2/eps into float32 arrays (in float32, 1 - 0.9 != 0.1); dlcore keeps the
    optimizer defaults as Python floats."""
    traced = fit(TRACED, tiny_data, 0, hparams={"learning_rate": 1e-2}, **KW)
    alone = fit(BAKED, tiny_data, 0, hparams={"learning_rate": 1e-2}, **KW)
    assert params_sha256(traced.state.params) == params_sha256(alone.state.params)

    space = space_from_spec({"learning_rate": {"values": (3e-3, 1e-2)}})
    opts = RunOptions(num_steps=30, batch_size=32, eval_every=30)
    res = run_study(space, lambda s: Setup(TRACED, opts, {"learning_rate": 1.0}), tiny_data, [0], progress=False)
    p_vmapped = _row(res.states[1].params, 0)  # point 1 = lr 1e-2, seed 0
    # The same 2-run program with the rate baked in (the axis value is then ignored).
    baked = run_study(space, lambda s: Setup(BAKED, opts, {"learning_rate": 1.0}), tiny_data, [0], progress=False)
    assert params_sha256(p_vmapped) == params_sha256(_row(baked.states[1].params, 0))
    assert params_sha256(p_vmapped) == params_sha256(_row(baked.states[0].params, 0))
    assert _maxdiff(p_vmapped, alone.state.params) < 1e-5
    np.testing.assert_allclose(res.histories[1]["train/loss"][0], alone.history["train/loss"], atol=1e-5)
    # The other point really used its own rate.
    assert _maxdiff(_row(res.states[0].params, 0), p_vmapped) > 1e-3


def test_chunked_study_keeps_randomness_streams(tiny_data):
    """max_parallel cuts the runs into chunks run one after another: every run's initial
    parameters, data order and keys are bit-identical; trained results agree to float noise."""
    space = space_from_spec({"learning_rate": {"values": (0.0, 1e-2, 3e-2)}})
    opts = RunOptions(num_steps=20, batch_size=32, eval_every=10)
    build = lambda s: Setup(TRACED, opts, {"learning_rate": 1.0})  # noqa: E731
    whole = run_study(space, build, tiny_data, [0, 3, 5], progress=False)
    chunked = run_study(space, build, tiny_data, [0, 3, 5], max_parallel=2, progress=False)
    assert whole.groups[0]["chunks"] == 1 and chunked.groups[0]["chunks"] == 5
    x1 = tiny_data.x_train[:1]
    n = tiny_data.x_train.shape[0]
    for p in range(3):
        for j, seed in enumerate([0, 3, 5]):
            a, b = _row(whole.states[p], j), _row(chunked.states[p], j)
            for k in a.keys:  # every stream key: data order, dropout, augmentation
                np.testing.assert_array_equal(a.keys[k], b.keys[k])
            np.testing.assert_array_equal(chunk_batch_indices(a.keys["data"], 0, 20, n, 32),
                                          chunk_batch_indices(b.keys["data"], 0, 20, n, 32))
            if p == 0:  # learning rate 0: the final parameters ARE the initial ones
                init = init_state(TRACED, seed, {"learning_rate": 0.0}, x1)
                assert params_sha256(a.params) == params_sha256(b.params) == params_sha256(init.params)
    for p in (1, 2):
        assert _maxdiff(whole.states[p].params, chunked.states[p].params) < 1e-4
    np.testing.assert_allclose(whole.metrics["val/accuracy"], chunked.metrics["val/accuracy"], atol=0.02)
    assert whole.selected == chunked.selected


@pytest.fixture(scope="module")
def compile_counter():
    counts = {"chunk": 0, "on": False}

    def listener(event, duration, **kw):
        if counts["on"] and event == "/jax/core/compile/backend_compile_duration" and kw.get("fun_name") == "jit(chunk)":
            counts["chunk"] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    return counts


def test_structures_compile_once_select_on_val_test_once(tiny_data, compile_counter):
    space = space_from_spec({
        "learning_rate": {"scale": "log", "low": 1e-3, "high": 1e-1, "num": 3},  # vectorized
        "norm": {"path": "model.norm", "values": ("none", "batch")},  # structural
    })
    built = []

    def build(structure):
        built.append(dict(structure))
        return Setup(Recipe(MLP(widths=(16,), num_outputs=3, norm=structure["model.norm"]), optimizer_fn("adam")),
                     RunOptions(num_steps=20, batch_size=32, eval_every=20), {"learning_rate": 1.0})

    compile_counter["on"] = True
    try:
        res = run_study(space, build, tiny_data, [1, 2], selection=Selection(group_by=("norm",)), progress=False)
    finally:
        compile_counter["on"] = False
    # 6 points × 2 seeds: 2 structures -> 2 programs (built and compiled once each).
    assert built == [{"model.norm": "none"}, {"model.norm": "batch"}]
    assert res.timing["programs"] == 2 and compile_counter["chunk"] == 2
    assert [g["runs"] for g in res.groups] == [6, 6]
    assert res.metrics["val/accuracy"].shape == (6, 2)
    # Selection: per norm, the best mean validation accuracy.
    means = res.metrics["val/accuracy"].mean(axis=1)
    for norm in ("none", "batch"):
        idx = [i for i, p in enumerate(res.points) if p["norm"] == norm]
        chosen = [i for i in res.selected if res.points[i]["norm"] == norm]
        assert chosen == [idx[int(np.argmax(means[idx]))]]
    # The test split was evaluated for the chosen points only.
    has_test = ~np.isnan(res.metrics["test/accuracy"]).all(axis=1)
    assert sorted(np.flatnonzero(has_test).tolist()) == sorted(res.selected)
    assert np.all((res.metrics["test/accuracy"][res.selected] >= 0) & (res.metrics["test/accuracy"][res.selected] <= 1))


def test_memory_budget_splits_a_study_and_refuses_what_cannot_fit(tiny_data):
    """Runs that do not fit in the memory budget together are split into chunks (each run's
    randomness unchanged, results equal to float noise); a run that cannot fit at all is refused."""
    from dlcore.sweep import runs_in_memory

    space = space_from_spec({"learning_rate": {"values": (1e-2, 3e-2)}})
    setup = Setup(TRACED, RunOptions(num_steps=20, batch_size=32, eval_every=10), {"learning_rate": 1.0})
    one = runs_in_memory(setup, tiny_data, 10**12) / 10**12  # runs per byte
    budget = int(3 / one)  # three runs at once
    assert runs_in_memory(setup, tiny_data, budget) == 3
    whole = run_study(space, lambda s: setup, tiny_data, [0, 1, 2], progress=False)
    split = run_study(space, lambda s: setup, tiny_data, [0, 1, 2], progress=False, memory_budget=budget,
                      devices=jax.devices()[:1])
    assert whole.groups[0]["chunks"] == 1 and split.groups[0]["chunks"] == 2 and split.groups[0]["chunk_size"] == 3
    np.testing.assert_allclose(split.metrics["val/accuracy"], whole.metrics["val/accuracy"], atol=0.05)
    with pytest.raises(ConfigError, match=r"one run of this experiment needs about .* GiB, more than the"):
        run_study(space, lambda s: setup, tiny_data, [0], progress=False, memory_budget=int(0.5 / one))


def test_recurrent_models_train_one_run_per_cpu_device_unless_max_parallel_says_otherwise(tiny_data):
    """A GRU's runs are trained one per device at a time on CPU (vmapped they were slower), each run
    still from its own keys: the result equals the vmapped study to float noise; an MLP stays vmapped,
    and an explicit ``max_parallel`` wins."""
    from dlcore.nn import RNNModel
    from dlcore.sweep import runs_one_per_device

    gru = Recipe(RNNModel(hidden_size=8, num_outputs=int(tiny_data.num_classes), cell="gru"), optimizer_fn("adam"))
    x1 = tiny_data.x_train[:1]
    cpu = jax.devices()[:1]
    assert runs_one_per_device(gru, {"learning_rate": 1e-2}, x1, cpu)
    assert not runs_one_per_device(TRACED, {"learning_rate": 1e-2}, x1, cpu)
    space = space_from_spec({"learning_rate": {"values": (1e-2,)}})
    setup = Setup(gru, RunOptions(num_steps=6, batch_size=16, eval_every=3), {"learning_rate": 1e-2})
    auto = run_study(space, lambda s: setup, tiny_data, [0, 1, 2], progress=False, devices=cpu)
    assert auto.groups[0]["chunk_size"] == 1 and auto.groups[0]["chunks"] == 3
    vmapped = run_study(space, lambda s: setup, tiny_data, [0, 1, 2], progress=False, devices=cpu, max_parallel=3)
    assert vmapped.groups[0]["chunk_size"] == 3 and vmapped.groups[0]["chunks"] == 1
    np.testing.assert_allclose(auto.metrics["val/loss"], vmapped.metrics["val/loss"], rtol=1e-4)
    mlp = Setup(TRACED, RunOptions(num_steps=6, batch_size=16, eval_every=3), {"learning_rate": 1e-2})
    assert run_study(space, lambda s: mlp, tiny_data, [0, 1, 2], progress=False, devices=cpu).groups[0]["chunks"] == 1
