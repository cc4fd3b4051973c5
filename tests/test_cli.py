"""`dlcore run` end to end, and its bad-input errors (one line, exit code 2, no traceback)."""

import csv
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from dlcore.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run_dirs(out):
    return sorted(p for p in pathlib.Path(out).glob("*/*") if p.is_dir())


def test_run_end_to_end_files_and_hashes(tmp_path, capsys):
    rc = main(["run", "tiny", "--seeds", "3", "--out", str(tmp_path), "--no-progress",
               "--config.num_steps=30", "--config.eval_every=10"])
    assert rc == 0
    (run_dir,) = _run_dirs(tmp_path)
    for f in ("results.csv", "history.npz", "curves.png", "manifest.json", "tb/seed_0", "tb/seed_2"):
        assert (run_dir / f).exists(), f
    rows = list(csv.DictReader(open(run_dir / "results.csv")))
    assert [int(r["seed"]) for r in rows] == [0, 1, 2]
    assert all(0.0 <= float(r["test/accuracy"]) <= 1.0 and r["status"] == "ok" for r in rows)
    man = json.loads((run_dir / "manifest.json").read_text())
    assert man["seeds"] == [0, 1, 2] and man["config"]["num_steps"] == 30
    assert man["versions"]["jax"] and man["environment"]["backend"] == "cpu"
    assert "xla_flags" in man["environment"] and "commit" in man["git"]
    assert {r["params_sha256"] for r in rows} == set(man["params_sha256"].values())
    h = np.load(run_dir / "history.npz")
    assert h["train/loss"].shape == (3, 30) and h["val/accuracy"].shape == (3, 3)
    out = capsys.readouterr().out
    assert "test/accuracy" in out and "95% CI" in out and str(run_dir) in out
    (phases,) = [line for line in out.splitlines() if line.startswith("time: start-up ")]
    start, train, outputs, total = (float(x) for x in re.findall(r"([\d.]+) s", phases))
    assert min(start, train, outputs) >= 0 and abs(start + train + outputs - total) <= 0.11  # rounding


def test_manifest_hash_is_the_state_of_the_same_program(tmp_path):
    """Same program + same seeds -> the manifest's hashes are the hashes of the state it produces."""
    from dlcore.cli._build import build_dataset, build_recipe
    from dlcore.cli._config import apply_overrides, load_experiment
    from dlcore.manifest import run_hashes
    from dlcore.sweep import run_seeds

    assert main(["run", "tiny", "--seeds", "4", "--out", str(tmp_path), "--no-progress", "--no-tensorboard"]) == 0
    man = json.loads(next(pathlib.Path(tmp_path).glob("*/*/manifest.json")).read_text())
    _, mod = load_experiment("tiny")
    cfg = apply_overrides(mod.get_config(), {})
    data = build_dataset(cfg.dataset)
    res = run_seeds(build_recipe(cfg, data.num_classes), data, [0, 1, 2, 3], hparams=dict(cfg.hparams),
                    num_steps=cfg.num_steps, batch_size=cfg.batch_size, eval_every=cfg.eval_every, progress=False)
    assert run_hashes(res.state.params, 4) == [man["params_sha256"][str(s)] for s in range(4)]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["run", "no_such_experiment"], "unknown experiment 'no_such_experiment'; available: "),
        (["run", "tiny", "--config.nope=1"], "unknown config key --config.nope; valid keys here: "),
        (["run", "tiny", "--config.model.nope=1"], "unknown config key --config.model.nope"),
        (["run", "tiny", "--config.num_steps=ten"], "--config.num_steps: expected int"),
        (["run", "tiny", "--config.hparams.learning_rate=-1"], "learning_rate must be positive"),
        (["run", "tiny", "--seeds", "x:y"], "cannot parse seeds 'x:y'"),
        (["run", "tiny", "--config.dataset.name=mnist", "--config.dataset.data_dir=/nonexistent_dlcore"],
         "dataset 'mnist' is not prepared"),
        (["run", "tiny", "--config.model.name=transformerxl"], "unknown model 'transformerxl'"),
        (["run", "tiny", "--bogus"], "unrecognised argument '--bogus'"),
    ],
)
def test_bad_input_one_line_exit_2(argv, message, capsys, tmp_path):
    rc = main(argv + ["--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("dlcore: error: ") and message in err, err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert not _run_dirs(tmp_path)  # nothing half-written


def test_unwritable_out_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["run", "tiny", "--out", str(blocker), "--no-progress"]) == 2
    assert "cannot write the run directory" in capsys.readouterr().err


def test_console_script_subprocess(tmp_path):
    """The installed `dlcore` script: a bad seed spec exits 2 with one line; the CPU is split."""
    exe = pathlib.Path(sys.executable).with_name("dlcore")
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    p = subprocess.run([str(exe), "run", "tiny", "--seeds", "nope", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert p.returncode == 2 and p.stderr.strip().startswith("dlcore: error: cannot parse seeds")
    assert "Traceback" not in p.stderr


def test_console_script_exits_quickly_with_every_output_complete(tmp_path):
    """The script skips the interpreter's teardown (``os._exit``) only after everything is written:
    the printed summary is whole, the final checkpoint is committed (a --resume of the finished run
    restores it), TensorBoard events and the manifest are readable; ``DLCORE_FAST_EXIT=0`` gives the
    same files the normal way."""
    exe = pathlib.Path(sys.executable).with_name("dlcore")
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    hashes = []
    for fast in ("1", "0"):
        out = tmp_path / fast
        p = subprocess.run([str(exe), "run", "tiny", "--seeds", "2", "--no-progress", "--out", str(out)],
                           capture_output=True, text=True, timeout=300, env=dict(env, DLCORE_FAST_EXIT=fast), cwd=ROOT)
        assert p.returncode == 0, p.stderr[-2000:]
        assert p.stdout.rstrip().splitlines()[-1].startswith("outputs: ")  # flushed before the exit
        (run_dir,) = _run_dirs(out)
        man = json.loads((run_dir / "manifest.json").read_text())
        hashes.append(man["params_sha256"])
        assert list((run_dir / "tb").rglob("events.out.tfevents.*"))
        from dlcore.checkpoint import checkpoint_steps

        assert checkpoint_steps(run_dir / "checkpoints")[-1] == man["config"]["num_steps"]
        again = subprocess.run([str(exe), "run", "tiny", "--resume", str(run_dir), "--no-progress"],
                               capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
        assert again.returncode == 0, again.stderr[-2000:]
        assert f"resumed from the checkpoint at step {man['config']['num_steps']}" in again.stdout
    assert hashes[0] == hashes[1]


STUDY_ARGS = ["run", "tiny_study", "--seeds", "2", "--no-progress", "--config.num_steps=20", "--config.eval_every=10",
              "--config.sweep.axes.learning_rate.num=2"]


def test_every_run_flag_works_for_studies(tmp_path, capsys):
    """A study takes the same path as a run: checkpoints (--checkpoint-every, --keep), TensorBoard
    (or --no-tensorboard), --seeds, --debug-nans reports, --resume of a finished study."""
    out = tmp_path / "a"
    assert main([*STUDY_ARGS, "--out", str(out), "--checkpoint-every", "10", "--keep", "1",
                 "--config.sweep.axes.learning_rate.high=1e30", "--debug-nans"]) == 0
    text = capsys.readouterr().out
    (run_dir,) = _run_dirs(out)
    from dlcore.checkpoint import checkpoint_steps, read_plan

    plan = read_plan(run_dir)
    units = [u["unit"] for u in plan["plan"]["units"]]
    assert units == ["unit0000", "unit0001"] and plan["seeds"] == [0, 1]  # one unit per structure (norm)
    for u in units:
        steps = checkpoint_steps(run_dir / "checkpoints" / u)
        assert steps[-1] == 20 and len(steps) <= 2  # --keep 1: the newest plus the best
    assert (run_dir / "tb" / "point0" / "seed_0").is_dir() and (run_dir / "tb" / "point3" / "seed_1").is_dir()
    rows = list(csv.DictReader(open(run_dir / "results.csv")))
    assert len(rows) == 8 and {r["seed"] for r in rows} == {"0", "1"}
    # The 1e30 learning rate diverges: named per point and seed, with the op that made the NaN.
    assert "learning_rate=1e+30, norm=none) seed 0 diverged: step 0: non-finite" in text or \
        "learning_rate=1e+30, norm=none) seed 0 diverged: step 1: non-finite" in text
    assert "first NaN" in text
    # --resume of a finished study restores every unit (no training) and rewrites the same results.
    before = (run_dir / "results.csv").read_text()
    assert main([*STUDY_ARGS, "--out", str(out), "--config.sweep.axes.learning_rate.high=1e30",
                 "--resume", str(run_dir)]) == 0
    assert (run_dir / "results.csv").read_text() == before

    out = tmp_path / "b"
    assert main([*STUDY_ARGS, "--out", str(out), "--no-tensorboard", "--checkpoint-every", "0"]) == 0
    (run_dir,) = _run_dirs(out)
    assert not (run_dir / "tb").exists()
    assert checkpoint_steps(run_dir / "checkpoints" / "unit0000") == [20]  # only at the end


@pytest.mark.parametrize("extra,message", [
    (["--fallback"], "--fallback only applies with --resume"),
    (["--coordinator", "localhost:1234"], "--coordinator only applies with --distributed"),
    (["--process-id", "1"], "--process-id only applies with --distributed"),
    (["--keep", "0"], "--keep must be >= 1"),
    (["--checkpoint-every", "-5"], "--checkpoint-every must be >= 0"),
])
def test_flags_that_do_not_apply_are_refused(tmp_path, capsys, extra, message):
    for argv in (["run", "tiny", "--no-progress"], STUDY_ARGS):
        assert main([*argv, "--out", str(tmp_path), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not list(tmp_path.glob("*/*"))  # refused before any run directory


@pytest.mark.parametrize("value,message", [
    ("1000", "needs about"), ("abc", "DLCORE_MEMORY_BUDGET='abc' must be a positive number of bytes"),
    ("-5", "must be a positive number of bytes"),
])
def test_memory_budget_refused_before_any_run_directory(tmp_path, capsys, monkeypatch, value, message):
    monkeypatch.setenv("DLCORE_MEMORY_BUDGET", value)
    assert main(["run", "tiny", "--no-progress", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not list(tmp_path.glob("*/*"))


def test_build_reads_loss_metrics_optimizer_options_and_permutations():
    import jax.numpy as jnp
    import ml_collections

    from dlcore.cli._build import build_loss, build_metrics, build_model, build_optimizer
    from dlcore.errors import ConfigError
    from dlcore.losses import multiclass_hinge
    from dlcore.models import MLPBase1D, PermuteInputs

    s = jnp.array([[2.0, 1.5, -1.0], [0.0, 3.0, 1.0]])
    batch = {"y": jnp.array([0, 0])}
    np.testing.assert_allclose(build_loss("multiclass_hinge")(s, batch, {}), multiclass_hinge(s, batch["y"]))
    np.testing.assert_allclose(build_loss("crammer_singer_hinge")(s, batch, {"margin": jnp.float32(2.0)}),
                               [1.5, 5.0])  # max(0, 1.5 − 2 + 2), max(0, 3 − 0 + 2)
    assert build_loss("cross_entropy") is None  # the Recipe default
    np.testing.assert_allclose(build_metrics(("margin",))(s, batch)["margin"], [0.5, -3.0])
    with pytest.raises(ConfigError, match="unknown loss 'hinge'"):
        build_loss("hinge")
    with pytest.raises(ConfigError, match="unknown metric"):
        build_metrics(("ece",))
    # optimizer section keys other than name/schedule are optimizer_fn's static options.
    g = {"w": jnp.full((3,), 0.5)}
    for bc, first in ((True, 1.0), (False, 0.1 / np.sqrt(0.001))):  # first Adam step / lr: m̂/√v̂ vs m/√v
        tx = build_optimizer(ml_collections.ConfigDict(dict(name="adam", bias_correction=bc, eps=0.0)), 10)(
            {"learning_rate": jnp.float32(1.0)})
        upd, _ = tx.update(g, tx.init(g))
        np.testing.assert_allclose(-upd["w"], first, rtol=1e-5)
    with pytest.raises(ConfigError, match="has no option 'bias_correction'"):
        build_optimizer(ml_collections.ConfigDict(dict(name="sgd", bias_correction=False)), 10)
    m = build_model(ml_collections.ConfigDict(dict(name="mnist1d_mlp", permute_inputs=True, permute_seed=3)), 10)
    assert isinstance(m, PermuteInputs) and m.seed == 3 and isinstance(m.model, MLPBase1D)
    off = build_model(ml_collections.ConfigDict(dict(name="mnist1d_mlp", permute_inputs=False)), 10)
    assert isinstance(off, MLPBase1D)


@pytest.mark.parametrize("env, want", [
    ({}, "--xla_gpu_deterministic_ops=true"),
    ({"DLCORE_GPU_DETERMINISTIC": "0"}, ""),
    ({"XLA_FLAGS": "--xla_gpu_deterministic_ops=false"}, "--xla_gpu_deterministic_ops=false"),
])
def test_cli_asks_for_deterministic_gpu_kernels(env, want):
    # On one H200 the same run twice gave different parameter hashes without the flag (docs/scaling.md).
    code = ("import os; from dlcore.cli import configure_determinism; configure_determinism(); "
            "print(os.environ.get('XLA_FLAGS', ''))")
    base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "DLCORE_GPU_DETERMINISTIC")}
    p = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
                       timeout=60, check=True)
    assert p.stdout.strip() == want
