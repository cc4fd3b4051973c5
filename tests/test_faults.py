"""Faults survived: a diverging seed, corrupt checkpoints, a full disk, an unwritable run directory."""

import csv
import errno
import os
import warnings

import jax
import numpy as np
import pytest

from dlcore import checkpoint as C
from dlcore import diagnostics as D
from dlcore.cli import main
from dlcore.errors import CheckpointError, DivergedError
from dlcore.nn import MLP
from dlcore.optim import optimizer_fn
from dlcore.sweep import init_states, run_seeds
from dlcore.train import DIVERGED, RUNNING, Recipe, fit

SGD = Recipe(MLP(widths=(16,), num_outputs=3), optimizer_fn("sgd"))


def test_sweep_one_seed_diverges_the_others_lose_nothing(tiny_data, tmp_path):
    kw = dict(num_steps=30, batch_size=32, eval_every=10, progress=False, evaluate_test=False)
    lr_bad = np.asarray([1e-2, 1e30, 1e-2], np.float32)  # run 1: a huge learning rate
    with C.CheckpointManager(tmp_path / "ck", every=10, metadata={"seeds": [0, 1, 2]}) as ckpt:
        bad = run_seeds(SGD, tiny_data, [0, 1, 2], hparams={"learning_rate": lr_bad},
                        callbacks=[ckpt.callback(30)], **kw)
    good = run_seeds(SGD, tiny_data, [0, 1, 2], hparams={"learning_rate": 1e-2}, **kw)

    assert np.asarray(bad.state.status).tolist() == [RUNNING, DIVERGED, RUNNING]
    assert np.asarray(bad.state.stop_step).tolist()[0::2] == [-1, -1] and 0 <= int(bad.state.stop_step[1]) < 10
    # Nothing else lost: the other runs are bit-identical to a sweep where no run diverged.
    for a, b in zip(jax.tree.leaves(bad.state.params), jax.tree.leaves(good.state.params)):
        np.testing.assert_array_equal(np.asarray(a)[0::2], np.asarray(b)[0::2])
    np.testing.assert_array_equal(bad.history["train/loss"][0::2], good.history["train/loss"][0::2])
    # The diverged run keeps its last finite parameters, in the state and in every checkpoint.
    assert all(np.isfinite(np.asarray(p)[1]).all() for p in jax.tree.leaves(bad.state.params))
    last = C.restore(tmp_path / "ck")
    assert last.metadata["status"] == [RUNNING, DIVERGED, RUNNING]
    assert all(np.isfinite(np.asarray(p)).all() for p in jax.tree.leaves(last.state["params"]))

    # Reported: which step, which quantity; results.csv marks it.
    rep = D.divergence_report(bad.state, bad.history)
    assert rep[0] is None and rep[2] is None
    assert rep[1]["step"] == int(bad.state.stop_step[1]) and rep[1]["quantity"] in ("loss", "loss and gradient")
    from dlcore.cli._checkpointing import divergence_columns
    from dlcore.cli._outputs import results_rows, write_csv
    from dlcore.manifest import run_hashes

    rows = results_rows([0, 1, 2], bad.final, bad.state, run_hashes(bad.state.params, 3), bad.history)
    for row, cols in zip(rows, divergence_columns(bad.state, bad.history)):
        row.update(cols)
    write_csv(str(tmp_path / "results.csv"), rows)
    got = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [r["status"] for r in got] == ["ok", "diverged", "ok"]
    assert [r["diverged_on"] for r in got] == ["", rep[1]["quantity"], ""]
    assert got[1]["stop_step"] == str(rep[1]["step"])


def test_gradient_only_divergence_is_named(tiny_data):
    """A finite loss with a non-finite gradient is reported as 'gradient'."""
    state = init_states(SGD, [0], {"learning_rate": 1e-2}, tiny_data.x_train[:1])
    state = state.replace(status=np.asarray([DIVERGED], np.int32), stop_step=np.asarray([2], np.int32),
                          step=np.asarray([4], np.int32))
    hist = {"train/loss": np.asarray([[1.0, 0.9, 0.8, 0.7]]), "train/grad_norm": np.asarray([[1, 1, np.inf, 1.0]])}
    assert D.divergence_report(state, hist)[0]["quantity"] == "gradient"


def test_debug_nans_names_the_op(tiny_data):
    with pytest.raises(DivergedError, match=r"step 1: non-finite loss and gradient; first NaN: invalid value \(nan\) "
                                            r"encountered in \w+ at .*dlcore/nn/_mlp\.py:\d+"):
        fit(SGD, tiny_data, 0, hparams={"learning_rate": 1e30}, num_steps=10, batch_size=32, eval_every=10,
            progress=False, evaluate_test=False, callbacks=[D.nan_debugger(SGD, tiny_data, 32)])


def test_cli_marks_diverged_seed_and_debug_nans(tmp_path, capsys):
    assert main(["run", "tiny", "--seeds", "1", "--out", str(tmp_path), "--no-progress", "--no-tensorboard",
                 "--config.num_steps=20", "--config.hparams.learning_rate=1e30", "--debug-nans"]) == 0
    out = capsys.readouterr().out
    assert "diverged/stopped and left out of the table: 0 (step 1)" in out
    assert "seed 0 diverged: step 1: non-finite loss and gradient; first NaN: invalid value (nan)" in out
    (run_dir,) = tmp_path.glob("tiny/*")
    (row,) = csv.DictReader(open(run_dir / "results.csv"))
    assert row["status"] == "diverged" and row["stop_step"] == "1" and row["diverged_on"] == "loss and gradient"
    assert C.read_metadata(run_dir)["status"] == [DIVERGED]


@pytest.fixture
def three_steps(tmp_path):
    """Checkpoints at steps 10, 20, 30 of a (random) 2-run state."""
    abstract = jax.eval_shape(lambda: init_states(SGD, [0, 1], {"learning_rate": 1e-2}, np.zeros((1, 8), np.float32)))
    rng = np.random.default_rng(0)
    state = jax.tree.map(lambda a: rng.normal(size=a.shape).astype(a.dtype), abstract)
    state = state.replace(status=np.zeros(2, np.int32))
    d = tmp_path / "ck"
    with C.CheckpointManager(d, keep=3) as ckpt:
        for s in (10, 20, 30):
            ckpt.save(state.replace(step=np.full((2,), s, np.int32)))
            ckpt.wait()  # each step written (saves in quick succession may supersede waiting ones)
    return d, abstract


def _data_file(step_dir):
    """The state's array data: OCDBT's merged data file under ``state/d/`` (the one reads use)."""
    (name,) = os.listdir(step_dir / "state" / "d")
    return str(step_dir / "state" / "d" / name)


# A failed orbax read can leave a tensorstore callback for an asyncio loop already closed.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_corrupt_checkpoint_clear_error_and_fallback(three_steps):
    d, abstract = three_steps
    victim = _data_file(d / "30")
    size = os.path.getsize(victim)
    with open(victim, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(CheckpointError, match=rf"checkpoint file {victim} is truncated: {size // 2} bytes, {size} "
                                              r"were written; pass fallback=True \(CLI: --fallback\) to resume "
                                              r"from the previous step \(20\)"):
        C.restore(d, abstract)
    r = C.restore(d, abstract, fallback=True)
    assert r.step == 20 and [s for s, _ in r.skipped] == [30] and "truncated" in r.skipped[0][1]

    victim20 = _data_file(d / "20")  # same size, other bytes
    with open(victim20, "r+b") as f:
        f.seek(os.path.getsize(victim20) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(CheckpointError, match=rf"{victim20} is corrupt: its CRC-32 differs"):
        C.restore(d, abstract, step=20)
    assert C.restore(d, abstract, fallback=True).step == 10

    # Without the file list (e.g. killed between commit and list) orbax's own read still fails clearly.
    os.remove(d / "30" / "dlcore_files.json")
    with pytest.raises(CheckpointError, match=rf"cannot read checkpoint {d}/30: \w+"):
        C.restore(d, abstract)

    # Resuming with fallback moves the damaged steps aside and the run can save those steps again.
    with C.CheckpointManager(d, keep=3) as ckpt:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            state, _ = ckpt.resume(abstract, fallback=True)
        assert int(np.asarray(state.step)[0]) == 10 and len(w) == 2 and "moved to" in str(w[0].message)
        assert C.checkpoint_steps(d) == [10]
        assert sum(n.startswith(("20.corrupt-", "30.corrupt-")) for n in os.listdir(d)) == 2
        assert ckpt.save(jax.device_get(state).replace(step=np.full((2,), 20, np.int32)))
    assert C.checkpoint_steps(d) == [10, 20]


def test_write_failure_mid_run_keeps_previous(three_steps, monkeypatch):
    """A disk that fills during training: a clear error naming the step; the previous one is intact."""
    d, abstract = three_steps
    state = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), abstract)
    ckpt = C.CheckpointManager(d, keep=3)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt._mngr, "save", full)
    assert ckpt.save(state.replace(step=np.full((2,), 40, np.int32)))  # the write runs in the background
    with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*/40: No space left on device; free space on "
                                              r"that disk \(the checkpoint at step 30 is intact; resume from it\)"):
        ckpt.close()
    assert C.restore(d, abstract).step == 30


def _fail_if_training(monkeypatch):
    import dlcore.sweep

    def boom(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(dlcore.sweep, "run_study", boom)


@pytest.mark.parametrize("err,text", [(errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied")])
def test_unwritable_run_dir_fails_before_training(tmp_path, monkeypatch, capsys, err, text):
    import builtins

    import dlcore.cli._outputs as outputs

    real_open = builtins.open

    def probe_fails(path, *a, **k):
        if ".write_probe" in str(path):
            raise OSError(err, os.strerror(err), str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(outputs, "open", probe_fails, raising=False)
    _fail_if_training(monkeypatch)
    assert main(["run", "tiny", "--out", str(tmp_path), "--no-progress"]) == 2
    msg = capsys.readouterr().err
    assert f"cannot write the run directory {tmp_path}" in msg and text in msg and "free space or" in msg
    assert not list(tmp_path.glob("tiny/*/.write_probe*"))


def test_permission_denied_creating_run_dir(tmp_path, monkeypatch, capsys):
    real = os.makedirs

    def denied(path, *a, **k):
        if str(path).startswith(str(tmp_path)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(os, "makedirs", denied)
    _fail_if_training(monkeypatch)
    assert main(["run", "tiny", "--out", str(tmp_path / "runs"), "--no-progress"]) == 2
    assert "cannot write the run directory" in capsys.readouterr().err


def test_resume_into_unwritable_run_dir_fails_before_training(tmp_path, monkeypatch, capsys):
    from dlcore.cli._checkpointing import _plain
    from dlcore.cli._config import apply_overrides, load_experiment
    import dlcore.cli._outputs as outputs

    _, mod = load_experiment("tiny")
    run_dir = tmp_path / "run"
    abstract = jax.eval_shape(lambda: init_states(Recipe(MLP(widths=(16,)), optimizer_fn("adam")), [0, 1],
                                                  {"learning_rate": 1e-2}, np.zeros((1, 40), np.float32)))
    with C.CheckpointManager(run_dir / "checkpoints", metadata={
            "experiment": "tiny", "config": _plain(apply_overrides(mod.get_config(), {}).to_dict()), "seeds": [0, 1]}) as c:
        c.save(jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), abstract).replace(step=np.full((2,), 20, np.int32)))

    def probe_fails(path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(outputs, "open", probe_fails, raising=False)
    _fail_if_training(monkeypatch)
    assert main(["run", "tiny", "--no-progress", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"cannot write the run directory {run_dir}: No space left on device; free space or make it writable" in err
