"""dlcore.checkpoint: what is saved, what is kept, restoring onto targets, and clear errors."""

import json
import os
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore import checkpoint as C
from dlcore.errors import CheckpointError
from dlcore.manifest import params_sha256
from dlcore.nn import MLP
from dlcore.optim import optimizer_fn
from dlcore.sweep import init_states, run_batch
from dlcore.train import DIVERGED, Recipe, init_state

R = Recipe(MLP(widths=(16,), num_outputs=3), optimizer_fn("adam"))
HP = {"learning_rate": 1e-2}


def _abstract(seeds, recipe=R, x1=np.zeros((1, 8), np.float32)):
    """The state's shapes without computing (or compiling) it."""
    if seeds is None:
        return jax.eval_shape(lambda: init_state(recipe, 0, HP, x1))
    return jax.eval_shape(lambda: init_states(recipe, seeds, HP, x1))


def _zeros(seeds):
    """A cheap host state of the right structure for saving tests."""
    return jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), _abstract(seeds))


def _leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb)
    )


@pytest.fixture(scope="module")
def sweep_run(tiny_data, tmp_path_factory):
    """A 3-seed sweep of 40 steps with a checkpoint every 10 (keep 2 + best by val accuracy)."""
    d = str(tmp_path_factory.mktemp("sweep") / "checkpoints")
    state = init_states(R, [0, 1, 2], HP, tiny_data.x_train[:1])
    with C.CheckpointManager(d, every=10, keep=2, metadata={"seeds": [0, 1, 2]}) as ckpt:
        res = run_batch(R, tiny_data, state, num_steps=40, batch_size=32, eval_every=10, progress=False,
                        callbacks=[ckpt.callback(40)])
        ckpt.finish(res.state, res.history)
    return d, res


def test_sweep_checkpoint_holds_full_state_history_and_metadata(sweep_run, tiny_data):
    d, res = sweep_run
    target = _abstract([0, 1, 2])
    r = C.restore(d, target)
    assert r.step == 40 and not r.skipped
    assert _leaves_equal(r.state, res.state)  # params, opt state, keys, hparams, step, status: bit for bit
    assert sorted(r.history) == sorted(res.history)
    for k in res.history:
        np.testing.assert_array_equal(r.history[k], res.history[k])
        assert r.history[k].dtype == np.asarray(res.history[k]).dtype
    m = r.metadata
    assert m["step"] == 40 and m["num_runs"] == 3 and m["metadata"]["seeds"] == [0, 1, 2]
    assert m["dlcore_version"] == __import__("dlcore").__version__
    assert m["fingerprint"] == C.fingerprint(C.leaf_specs(target))
    assert C.read_metadata(d)["step"] == 40


@pytest.mark.parametrize("mode,metric,expected", [("max", "accuracy", {20, 40, 50}), ("min", "loss", {10, 40, 50})])
def test_keeps_last_k_and_the_best(tmp_path, mode, metric, expected):
    """keep=2 newest, plus the best by the mean validation metric over runs that did not diverge."""
    s = _zeros([0, 1])
    val = {10: [0.5, 0.3], 20: [0.9, 0.9], 30: [0.6, 0.6], 40: [0.7, 0.7], 50: [0.65, 0.65]}
    if mode == "min":
        val = {k: [1 - a for a in v] for k, v in val.items()}
        val[10] = [0.05, 9.0]  # run 1 diverged there: only run 0 counts -> 0.05 is the best loss
    with C.CheckpointManager(tmp_path, keep=2, best_metric=metric, best_mode=mode) as ckpt:
        for step, v in val.items():
            st = s.replace(step=np.full((2,), step, np.int32))
            if step == 10 and mode == "min":
                st = st.replace(status=np.asarray([0, DIVERGED], np.int32))
            ckpt.save(st, {f"val/{metric}": np.asarray(v, np.float32)[:, None]})
            ckpt.wait()
    assert set(C.checkpoint_steps(tmp_path)) == expected


def test_restore_abstract_target_with_sharding(sweep_run, tiny_data):
    d, res = sweep_run
    dev = jax.local_devices()[0]
    abstract = _abstract([0, 1, 2])
    step = C.checkpoint_steps(d)[-2]  # an intermediate step (a busy disk may have skipped some)
    r = C.restore(d, abstract, sharding=jax.sharding.SingleDeviceSharding(dev), step=step)
    assert r.step == step < 40
    for leaf in jax.tree.leaves(r.state):
        assert isinstance(leaf, jax.Array) and leaf.sharding.device_set == {dev}
    # An intermediate checkpoint holds the history of its first `step` steps.
    np.testing.assert_array_equal(r.history["train/loss"], np.asarray(res.history["train/loss"])[:, :step])


def test_load_params_for_inference(sweep_run, tiny_data):
    d, res = sweep_run
    run_dir = os.path.dirname(d)  # a run directory works too (its checkpoints/ is found)
    p1 = C.load_params(run_dir, run=1)
    assert params_sha256(p1) == params_sha256(jax.tree.map(lambda a: a[1], res.state.params))
    logits = R.model.apply({"params": p1}, tiny_data.x_test, train=False)
    assert logits.shape == (tiny_data.x_test.shape[0], 3)
    stacked = C.load_params(d)
    assert jax.tree.leaves(stacked)[0].shape[0] == 3
    with pytest.raises(CheckpointError, match=r"run=3 is out of range: .* holds 3 runs \(0..2\)"):
        C.load_params(d, run=3)


def test_wrong_structure_names_the_mismatch(sweep_run):
    d, _ = sweep_run
    wider = Recipe(MLP(widths=(32,), num_outputs=3), optimizer_fn("adam"))
    with pytest.raises(CheckpointError, match=r"meta/metadata does not fit .*\['dense_0'\]\['bias'\]: "
                                              r"checkpoint float32\[3, 16\], this program float32\[3, 32\]"):
        C.restore(d, _abstract([0, 1, 2], wider))
    with pytest.raises(CheckpointError, match=r"checkpoint float32\[3, 16\], this program float32\[2, 16\]"):
        C.restore(d, _abstract([0, 1]))
    sgd = Recipe(MLP(widths=(16,), num_outputs=3), optimizer_fn("sgd"))
    with pytest.raises(CheckpointError, match=r"only in the checkpoint: \.opt_state"):
        C.restore(d, _abstract([0, 1, 2], sgd))


def test_other_dlcore_version(sweep_run, monkeypatch):
    d, _ = sweep_run
    import dlcore

    target = _abstract([0, 1, 2])
    monkeypatch.setattr(dlcore, "__version__", "9.9.9")
    with pytest.raises(CheckpointError, match=r"40/meta/metadata was written by dlcore 0\.1\.0, this is dlcore 9\.9\.9"):
        C.restore(d, target)
    assert C.restore(d, target, allow_other_version=True).step == 40


def test_single_run_save_resume_and_hparam_check(tmp_path):
    fresh = _zeros(None).replace(hparams={"learning_rate": np.asarray(0.01, np.float32)})
    s = fresh.replace(step=np.int32(7), params=jax.tree.map(lambda a: a + 1, fresh.params))
    with C.CheckpointManager(tmp_path, metadata={"seeds": [3]}) as ckpt:
        assert ckpt.save(s, {"train/loss": np.arange(7, dtype=np.float32)})
        assert not ckpt.save(s)  # step 7 is saved already
    with C.CheckpointManager(tmp_path, metadata={"seeds": [3]}) as ckpt:
        state, hist = ckpt.resume(fresh)
        assert int(state.step) == 7 and ckpt.last_step == 7 and _leaves_equal(state, s)
        np.testing.assert_array_equal(hist["train/loss"], np.arange(7))
    with C.CheckpointManager(tmp_path, metadata={"seeds": [4]}) as ckpt:
        with pytest.raises(CheckpointError, match=r"is of seeds=\[3\], this run has seeds=\[4\]"):
            ckpt.resume(fresh)
    other = fresh.replace(hparams={"learning_rate": np.asarray(0.5, np.float32)})
    with C.CheckpointManager(tmp_path, metadata={"seeds": [3]}) as ckpt:
        with pytest.raises(CheckpointError, match=r"has learning_rate=0\.01.*asks for learning_rate=0\.5"):
            ckpt.resume(other)
    with pytest.raises(CheckpointError, match="holds one run, not a sweep"):
        C.load_params(tmp_path, run=0)
    # An empty directory resumes nothing: the given state comes back.
    with C.CheckpointManager(tmp_path / "empty") as ckpt:
        state, hist = ckpt.resume(fresh)
        assert state is fresh and hist is None


def test_diverged_run_is_saved_once_then_kept(tmp_path):
    """After every run has diverged, later saves are skipped: the last finite state stays on disk."""
    s = _zeros(None)
    with C.CheckpointManager(tmp_path, keep=1, best_metric=None) as ckpt:
        assert ckpt.save(s.replace(step=np.int32(10)))
        dead = s.replace(step=np.int32(20), status=np.int32(DIVERGED), stop_step=np.int32(13))
        assert ckpt.save(dead)  # records the divergence (params are the last finite ones)
        assert not ckpt.save(dead.replace(step=np.int32(30)))
        assert ckpt.save(dead.replace(step=np.int32(40)), force=True)
    assert C.checkpoint_steps(tmp_path) == [40]
    meta = C.read_metadata(tmp_path)
    assert meta["status"] == DIVERGED and meta["stop_step"] == 13


def test_bad_arguments_and_missing_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="every=-1"):
        C.CheckpointManager(tmp_path, every=-1)
    with pytest.raises(CheckpointError, match="keep=0"):
        C.CheckpointManager(tmp_path, keep=0)
    with pytest.raises(CheckpointError, match=r"no checkpoint in .*nowhere \(no such directory\)"):
        C.restore(tmp_path / "nowhere")
    (tmp_path / "blocker").write_text("a file")
    with pytest.raises(CheckpointError, match="cannot create the checkpoint directory"):
        C.CheckpointManager(tmp_path / "blocker" / "ck")


def test_structure_helpers():
    a = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3, jnp.int32)}
    specs = C.leaf_specs(a)
    assert specs == [["['b']", "int32", [3]], ["['w']", "float32", [2, 3]]]
    assert C.fingerprint(specs) != C.fingerprint(C.leaf_specs({"w": jnp.zeros((3, 2)), "b": a["b"]}))
    assert C.structure_mismatch(specs, specs) == []
    assert C.structure_mismatch(specs, specs[1:]) == ["only in the checkpoint: ['b']"]
    json.dumps(specs)  # JSON-able: stored in the checkpoint's meta


def test_busy_writer_supersedes_waiting_request_never_stalls(tmp_path):
    """While step 10 is being written, 20 waits; 30 replaces 20 (training does not block on the disk)."""
    s = _zeros(None)
    started, release = threading.Event(), threading.Event()
    with C.CheckpointManager(tmp_path, keep=5, best_metric=None) as ckpt:
        real = ckpt._write

        def slow(step, *a):
            if step == 10:
                started.set()
                assert release.wait(60)
            return real(step, *a)

        ckpt._write = slow
        assert ckpt.save(s.replace(step=np.int32(10)))
        assert started.wait(60)
        t0 = time.perf_counter()
        assert ckpt.save(s.replace(step=np.int32(20))) and ckpt.save(s.replace(step=np.int32(30)))
        assert time.perf_counter() - t0 < 5  # returned while step 10 was still being written
        release.set()
        ckpt.wait()
        assert ckpt.skipped_steps == [20]
    assert C.checkpoint_steps(tmp_path) == [10, 30]
