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
    straight = fit(recipe, data, 3, num_steps=2 * n, checkpoint_dir=str(ck), checkpoint_every=n, **kw)
    assert C.checkpoint_steps(ck) == [n, 2 * n]
    shutil.rmtree(ck / str(2 * n))

    child = SETUP + textwrap.dedent(
        f"""
        import sys, jax
        from dlcore.train import fit
        res = fit(RECIPE, DATA, 3, num_steps={2 * n}, checkpoint_dir=sys.argv[1], **KW)
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


def test_cli_killed_mid_write_then_resumed_equals_uninterrupted(tmp_path):
    out = tmp_path / "runs"
    argv = ["run", "tiny", "--seeds", "2", "--out", str(out), "--no-progress", "--no-tensorboard",
            "--config.num_steps=60", "--checkpoint-every", "20"]

    # SIGKILL from outside after the first checkpoint (20), while the last one (60) is being
    # written: (test hook) the writer stalls with every file of step 60 written, not yet committed.
    a = subprocess.Popen([DLCORE, *argv], env=_env(tmp_path, **{TEST_FAULT_ENV: "pause-in-commit:60"}),
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: bool(list(out.glob("tiny/*/checkpoints/60.orbax-checkpoint-tmp*/meta"))), a, timeout=200)
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=30)
    finally:
        if a.poll() is None:
            a.kill()
            a.wait(timeout=30)
    assert a.returncode == -signal.SIGKILL
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
    env = _env(tmp_path, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    p = subprocess.run([sys.executable, "-c", child, str(tmp_path / "ck")], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["devices"] == 2 and got["device_sets"] == [2] and got["shard_rows"] == [2]  # 2 runs per device
    assert got["hashes"] == want and got["run2"] == want[2]


@pytest.fixture
def fake_run(tmp_path):
    """A run directory of `tiny` (seeds 0,1, default config) with checkpoints at steps 10 and 20."""
    from dlcore.cli._checkpointing import _plain
    from dlcore.cli._config import apply_overrides, load_experiment

    _, mod = load_experiment("tiny")
    cfg = apply_overrides(mod.get_config(), {})
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
