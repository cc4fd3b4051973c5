"""Exact resume: in a new process, after SIGKILL, after a crash inside a checkpoint write, and onto
another device count. Every subprocess is bounded by a timeout."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from dlcore import checkpoint as C
from dlcore.checkpoint._manager import TEST_FAULT_ENV
from dlcore.cli import main
from dlcore.manifest import run_hashes
from dlcore.nn import MLP
from dlcore.optim import optimizer_fn
from dlcore.sweep import init_states, run_batch
from dlcore.train import Recipe, fit

ROOT = pathlib.Path(__file__).resolve().parents[1]
DLCORE = str(pathlib.Path(sys.executable).with_name("dlcore"))

# Built identically here and in the child processes (dropout exercises the per-step keys).
SETUP = textwrap.dedent(
    """
    import numpy as np
    from dlcore.data import from_arrays
    from dlcore.nn import MLP
    from dlcore.optim import optimizer_fn
    from dlcore.train import Recipe

    rng = np.random.default_rng(7)
    centers = rng.normal(size=(3, 8)) * 3
    y = rng.integers(0, 3, size=300)
    x = centers[y] + rng.normal(size=(300, 8))
    DATA = from_arrays(x, y, x[:60], y[:60], val_fraction=0.2, num_classes=3, name="resume")
    RECIPE = Recipe(MLP(widths=(16,), num_outputs=3, dropout_rate=0.1), optimizer_fn("adam"))
    KW = dict(hparams={"learning_rate": 1e-2, "dropout_rate": 0.1}, batch_size=24, eval_every=15, progress=False,
              evaluate_test=False)
    """
)


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", TEST_FAULT_ENV)}
    # Keep the other XLA flags: on a GPU the children must compile what this process compiles
    # (--xla_gpu_deterministic_ops) for their bits to be comparable.
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f)
    if flags:
        env["XLA_FLAGS"] = flags
    env.update(
        DLCORE_HOST_DEVICES="1",  # the reference runs in this (1-device) process
        TFDS_DATA_DIR=os.environ.get("TFDS_DATA_DIR", str(ROOT / "runs" / "tensorflow_datasets")),
        # Children share compiled programs (same executables, so the same bits; less waiting).
        JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    env.update(extra)
    return env


def test_fit_resume_in_a_new_process_is_bit_exact(tmp_path):
    """2N steps straight == N steps, save, a NEW process restores and runs N more: same bytes."""
    ns: dict = {}
    exec(SETUP, ns)
    data, recipe, kw = ns["DATA"], ns["RECIPE"], ns["KW"]
    n = 30
    ck = tmp_path / "ck"
    # The straight run saves at n and 2n; removing 2n leaves "n steps, then saved".
    straight = fit(recipe, data, 3, num_steps=2 * n, checkpoint=C.CheckpointManager(ck, every=n), **kw)
    assert C.checkpoint_steps(ck) == [n, 2 * n]
    shutil.rmtree(ck / str(2 * n))

    child = SETUP + textwrap.dedent(
        f"""
        import sys, jax
        from dlcore.checkpoint import CheckpointManager
        from dlcore.train import fit
        res = fit(RECIPE, DATA, 3, num_steps={2 * n}, checkpoint=CheckpointManager(sys.argv[1]), **KW)
        leaves = {{f"p{{i}}": np.asarray(a) for i, a in enumerate(jax.tree.leaves(res.state.params))}}
        hist = {{f"h:{{k}}": np.asarray(v) for k, v in res.history.items()}}
        np.savez(sys.argv[2], **leaves, **hist)
        """
    )
    out = tmp_path / "child.npz"
    p = subprocess.run([sys.executable, "-c", child, str(ck), str(out)], env=_env(tmp_path), cwd=ROOT,
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    assert C.checkpoint_steps(ck) == [n, 2 * n]  # it resumed at n (the step-n checkpoint was kept)
    got = np.load(out)
    for i, a in enumerate(jax.tree.leaves(straight.state.params)):
        assert got[f"p{i}"].tobytes() == np.asarray(a).tobytes()  # identical parameter bytes
    assert sorted(k[2:] for k in got.files if k.startswith("h:")) == sorted(straight.history)
    for k, v in straight.history.items():
        np.testing.assert_array_equal(got[f"h:{k}"], v)  # identical metric history, every step

    # One compiled chunk of 2N steps gives the same bits as two chunks of N (resume points are free).
    one_chunk = fit(recipe, data, 3, num_steps=2 * n, **{**kw, "eval_every": 2 * n})
    for a, b in zip(jax.tree.leaves(one_chunk.state.params), jax.tree.leaves(straight.state.params)):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    np.testing.assert_array_equal(one_chunk.history["train/loss"], straight.history["train/loss"])


def _wait_for(pred, proc, timeout):
    deadline = time.monotonic() + timeout
    while not pred():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before it was killed: {proc.stdout.read()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("no checkpoint appeared in time")
        time.sleep(0.05)


def _kill_when(argv, env, pred, timeout):
    """Start ``dlcore *argv``, SIGKILL it from outside once ``pred()`` holds; its return code."""
    a = subprocess.Popen([DLCORE, *argv], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    try:
        _wait_for(pred, a, timeout=timeout)
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=30)
    finally:
        if a.poll() is None:
            a.kill()
            a.wait(timeout=30)
    return a.returncode


def test_cli_killed_mid_write_then_resumed_equals_uninterrupted(tmp_path):
    out = tmp_path / "runs"
    argv = ["run", "tiny", "--seeds", "2", "--out", str(out), "--no-progress", "--no-tensorboard",
            "--config.num_steps=60", "--checkpoint-every", "20"]

    # SIGKILL from outside after the first checkpoint (20), while the last one (60) is being
    # written: (test hook) the writer stalls with every file of step 60 written, not yet committed.
    rc = _kill_when(argv, _env(tmp_path, **{TEST_FAULT_ENV: "pause-in-commit:60"}),
                    lambda: bool(list(out.glob("tiny/*/checkpoints/60.orbax-checkpoint-tmp*/meta"))), timeout=200)
    assert rc == -signal.SIGKILL
    (run_dir,) = out.glob("tiny/*")
    assert not (run_dir / "manifest.json").exists()
    names = set(os.listdir(run_dir / "checkpoints"))
    assert "60" not in names and any(n.startswith("60.orbax-checkpoint-tmp") for n in names)
    steps = C.checkpoint_steps(run_dir)  # the half-written step is not a checkpoint
    assert steps[0] == 20 and steps in ([20], [20, 40])  # 40 may be superseded if the disk was busy

    # --resume continues from the newest complete checkpoint and writes the outputs there.
    c = subprocess.run([DLCORE, *argv, "--keep", "1", "--resume", str(run_dir)], cwd=ROOT, capture_output=True,
                       text=True, env=_env(tmp_path), timeout=240)
    assert c.returncode == 0, c.stderr[-3000:]
    assert f"resumed from the checkpoint at step {steps[-1]}" in c.stdout
    assert not any(".orbax-checkpoint-tmp" in n for n in os.listdir(run_dir / "checkpoints"))  # cleaned up
    kept = C.checkpoint_steps(run_dir)
    assert kept[-1] == 60 and len(kept) <= 2  # --keep 1: the newest, plus the best by val accuracy
    man = json.loads((run_dir / "manifest.json").read_text())
    assert man["resumed_from_step"] == steps[-1] and man["seeds"] == [0, 1]

    # The uninterrupted run, in this process on one device: same final hashes and history.
    from dlcore.cli._build import build_dataset, build_recipe
    from dlcore.cli._config import apply_overrides, load_experiment

    _, mod = load_experiment("tiny")
    cfg = apply_overrides(mod.get_config(), {"num_steps": "60"})
    data = build_dataset(cfg.dataset)
    recipe = build_recipe(cfg, data.num_classes)
    ref = run_batch(recipe, data, init_states(recipe, [0, 1], dict(cfg.hparams), data.x_train[:1]),
                    num_steps=60, batch_size=cfg.batch_size, eval_every=cfg.eval_every,
                    devices=jax.devices()[:1], progress=False)
    assert man["params_sha256"] == {str(s): h for s, h in zip([0, 1], run_hashes(ref.state.params, 2))}
    hist = np.load(run_dir / "history.npz")
    for k, v in ref.history.items():
        np.testing.assert_array_equal(hist[k], v)


def test_restore_onto_another_device_count(tmp_path):
    """A sweep saved on 1 device is restored spread over 2 (shardings given at restore)."""
    seeds = [0, 1, 2, 3]
    x1 = np.zeros((1, 8), np.float32)
    recipe = Recipe(MLP(widths=(16,), num_outputs=3), optimizer_fn("adam"))
    abstract = jax.eval_shape(lambda: init_states(recipe, seeds, {"learning_rate": 1e-2}, x1))
    rng = np.random.default_rng(0)
    state = jax.tree.map(lambda a: rng.normal(size=a.shape).astype(a.dtype), abstract)
    with C.CheckpointManager(tmp_path / "ck", metadata={"seeds": seeds}) as ckpt:
        ckpt.save(state.replace(step=np.full((4,), 5, np.int32), status=np.zeros(4, np.int32)))
    want = run_hashes(state.params, 4)

    child = textwrap.dedent(
        """
        import json, sys
        import jax, numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        from dlcore import checkpoint as C
        from dlcore.manifest import params_sha256, run_hashes
        from dlcore.nn import MLP
        from dlcore.optim import optimizer_fn
        from dlcore.sweep import init_states
        from dlcore.train import Recipe

        recipe = Recipe(MLP(widths=(16,), num_outputs=3), optimizer_fn("adam"))
        abstract = jax.eval_shape(lambda: init_states(recipe, [0, 1, 2, 3], {"learning_rate": 1e-2},
                                                      np.zeros((1, 8), np.float32)))
        mesh = Mesh(np.asarray(jax.devices()), ("seed",))
        r = C.restore(sys.argv[1], abstract, sharding=NamedSharding(mesh, P("seed")))
        k = r.state.params["dense_0"]["kernel"]
        print(json.dumps({
            "devices": len(jax.devices()),
            "device_sets": sorted({len(a.sharding.device_set) for a in jax.tree.leaves(r.state)}),
            "shard_rows": sorted({s.data.shape[0] for s in k.addressable_shards}),
            "hashes": run_hashes(r.state.params, 4),
            "run2": params_sha256(C.load_params(sys.argv[1], run=2)),
        }))
        """
    )
    # Host devices (on a GPU machine too): the restore is onto 2 devices, whatever saved it.
    env = _env(tmp_path, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    p = subprocess.run([sys.executable, "-c", child, str(tmp_path / "ck")], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["devices"] == 2 and got["device_sets"] == [2] and got["shard_rows"] == [2]  # 2 runs per device
    assert got["hashes"] == want and got["run2"] == want[2]


@pytest.fixture
def fake_run(tmp_path):
    """A run directory of `tiny` (seeds 0,1, default config) with checkpoints at steps 10 and 20."""
    return _fake_run(tmp_path, {})


def _fake_run(tmp_path, overrides):
    from dlcore.cli._checkpointing import _plain
    from dlcore.cli._config import apply_overrides, load_experiment

    _, mod = load_experiment("tiny")
    cfg = apply_overrides(mod.get_config(), overrides)
    run_dir = tmp_path / "runs" / "tiny" / "20250101-000000"
    abstract = jax.eval_shape(lambda: init_states(Recipe(MLP(widths=(16,)), optimizer_fn("adam")), [0, 1],
                                                  {"learning_rate": 1e-2}, np.zeros((1, 40), np.float32)))
    state = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), abstract)
    meta = {"experiment": "tiny", "config": _plain(cfg.to_dict()), "seeds": [0, 1]}
    with C.CheckpointManager(run_dir / "checkpoints", metadata=meta) as ckpt:
        for step in (10, 20):
            ckpt.save(state.replace(step=np.full((2,), step, np.int32)))
    return run_dir


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--config.hparams.learning_rate=0.5"],
         "was run with another config (--config.hparams.learning_rate: the run used 0.01, this command 0.5)"),
        (["--seeds", "3"], "trains seeds [0, 1], not [0, 1, 2]; drop --seeds"),
        (["--config.num_steps=15"], "is at step 20, past --config.num_steps=15"),
    ],
)
def test_resume_refuses_another_run(fake_run, extra, message, capsys):
    assert main(["run", "tiny", "--no-progress", "--resume", str(fake_run), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_resume_refuses_to_stretch_a_schedule_unless_asked(tmp_path, capsys, monkeypatch):
    """A cosine schedule is defined over num_steps: resuming with another num_steps would switch
    schedules mid-run, so it is refused (one line) unless --new-schedule says so."""
    import dlcore.sweep

    run_dir = _fake_run(tmp_path, {"optimizer.schedule": "cosine"})
    argv = ["run", "tiny", "--no-progress", "--resume", str(run_dir), "--config.optimizer.schedule=cosine",
            "--config.num_steps=60"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "num_steps changes from 40 to 60" in err[0] and "--new-schedule" in err[0]

    def reached(*a, **k):
        raise RuntimeError("reached training")

    monkeypatch.setattr(dlcore.sweep, "run_study", reached)
    with pytest.raises(RuntimeError, match="reached training"):  # accepted: training starts
        main([*argv, "--new-schedule"])
    assert main(["run", "tiny", "--no-progress", "--new-schedule"]) == 2  # only with --resume
    assert "--new-schedule only applies with --resume" in capsys.readouterr().err


def test_resume_bad_directories(fake_run, tmp_path, capsys):
    assert main(["run", "mnist1d_mlp", "--resume", str(fake_run)]) == 2
    assert "is a run of 'tiny', not 'mnist1d_mlp'; run: dlcore run tiny --resume" in capsys.readouterr().err
    assert main(["run", "tiny", "--resume", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["run", "tiny", "--resume", str(tmp_path / "empty")]) == 2
    assert "no checkpoint in" in capsys.readouterr().err
    (fake_run / "checkpoints" / "20" / "meta" / "metadata").write_text('{"format": 1, "lea')  # truncated JSON
    assert main(["run", "tiny", "--resume", str(fake_run)]) == 2
    err = capsys.readouterr().err
    assert "20/meta/metadata is not valid JSON" in err and "pass --fallback" in err


# A study of 2 structures (norm) x 3 learning rates x 7 seeds = 42 runs, 2 units of 21 (+1 pad) runs.
STUDY = textwrap.dedent(
    """
    from _base import base_config, study

    def get_config():
        c = base_config(model=dict(widths=(16,)), batch_size=50, num_steps=40, eval_every=10)
        c.sweep = study(dict(learning_rate=dict(values=(1e-3, 1e-2, 1e-1)),
                             norm=dict(path="model.norm", values=("none", "batch"))),
                        seeds=7, bootstrap_resamples=200)
        return c
    """
)


def _study_dir(tmp_path):
    d = tmp_path / "exp"
    d.mkdir(exist_ok=True)
    shutil.copy(ROOT / "experiments" / "_base.py", d / "_base.py")
    (d / "s42.py").write_text(STUDY)
    return d / "s42.py"


def _outputs(run_dir):
    man = json.loads((run_dir / "manifest.json").read_text())
    return ((run_dir / "results.csv").read_text(), man["params_sha256"], (run_dir / "summary.txt").read_text())


def _killed_study(tmp_path, exp, out, env, step=10):
    """Start the study, SIGKILL it while the second unit trains (after its checkpoint at ``step``)."""
    argv = ["run", str(exp), "--out", str(out), "--no-progress", "--no-tensorboard", "--checkpoint-every", "10"]
    assert _kill_when(argv, env, lambda: bool(list(out.glob(f"s42/*/checkpoints/unit0001/{step}"))),
                      timeout=300) == -signal.SIGKILL
    (run_dir,) = out.glob("s42/*")
    assert not (run_dir / "manifest.json").exists()
    assert C.checkpoint_steps(run_dir / "checkpoints" / "unit0000")[-1] == 40  # the first unit had finished
    assert C.checkpoint_steps(run_dir / "checkpoints" / "unit0001")[-1] < 40
    return argv, run_dir


@pytest.mark.slow
def test_study_killed_mid_group_then_resumed_equals_uninterrupted(tmp_path):
    """A 42-run study with 2 structural groups, SIGKILLed mid-group in a second process, resumes to
    the same results.csv, parameter hashes and report text as the uninterrupted study — also with
    --fallback after the newest checkpoint of the running unit is damaged."""
    exp = _study_dir(tmp_path)
    # Slow each save down a little so the kill lands while unit 1 is still training.
    env_slow = _env(tmp_path, DLCORE_HOST_DEVICES="2", **{TEST_FAULT_ENV: "sleep-after-save:0.5"})
    env = _env(tmp_path, DLCORE_HOST_DEVICES="2")
    ref = subprocess.run([DLCORE, "run", str(exp), "--out", str(tmp_path / "ref"), "--no-progress",
                          "--no-tensorboard"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    (ref_dir,) = (tmp_path / "ref").glob("s42/*")
    want = _outputs(ref_dir)
    assert len(want[1]) == 42 and "point" in want[0]

    argv, run_dir = _killed_study(tmp_path, exp, tmp_path / "a", env_slow)
    plan = json.loads((run_dir / "checkpoints" / "study.json").read_text())
    assert [u["unit"] for u in plan["plan"]["units"]] == ["unit0000"]  # the record names the finished unit
    c = subprocess.run([DLCORE, *argv, "--resume", str(run_dir)], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert c.returncode == 0, c.stderr[-3000:]
    assert _outputs(run_dir) == want

    # The newest checkpoint of the finished unit damaged: refused, then --fallback resumes that unit
    # from its previous valid checkpoint (and the running one from its own), to the same bits.
    argv, run_dir = _killed_study(tmp_path, exp, tmp_path / "b", env_slow)
    unit = run_dir / "checkpoints" / "unit0000"
    assert len(C.checkpoint_steps(unit)) >= 2
    newest = unit / str(C.checkpoint_steps(unit)[-1])
    victim = max((f for f in newest.rglob("*") if f.is_file() and "state" in str(f)), key=lambda f: f.stat().st_size)
    victim.write_bytes(b"\0" * victim.stat().st_size)
    bad = subprocess.run([DLCORE, *argv, "--resume", str(run_dir)], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode == 2 and "--fallback" in bad.stderr and "Traceback" not in bad.stderr
    c = subprocess.run([DLCORE, *argv, "--resume", str(run_dir), "--fallback"], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert c.returncode == 0, c.stderr[-3000:]
    assert _outputs(run_dir) == want
