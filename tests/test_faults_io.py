"""Real storage faults and signals on every write path of `dlcore run` (docs/faults.md).

The failures are the kernel's: a file-size limit (``RLIMIT_FSIZE``; writes past it fail with
EFBIG, in Python and in tensorstore's C++ threads alike), a read-only directory (as a non-root
user), damaged files, SIGTERM at a random moment. Each `dlcore` run asserts exit code 2 (143 for
SIGTERM), a single ``dlcore: error:`` line, no traceback, no temporary files, and that the last
good checkpoint resumes bit-exactly: the parameter hashes in results.csv equal an uninterrupted run's.

The `dlcore run tiny` children of one phase run concurrently (one module fixture) and share a JAX
compilation cache, to keep the whole file near a minute on two cores.
"""

from __future__ import annotations

import csv
import os
import pathlib
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DRIVER = str(ROOT / "tests" / "_fault_driver.py")
LIMIT = 0  # bytes, from the chosen write on: that write fails, deterministically
# 100 steps, a checkpoint at every evaluation (5): a SIGTERM lands mid-training, not at the end.
RUN = ["run", "tiny", "--no-progress", "--checkpoint-every", "20", "--keep", "20", "--config.num_steps=100"]
TMP_MARKERS = (".tmp", "orbax-checkpoint-tmp", ".write_probe")


def _env(cache: pathlib.Path | None, **extra) -> dict:
    """The children's environment; ``cache``: a shared JAX compilation cache (None: none, e.g. when
    a file-size limit or a read-only place would make its writes fail and warn)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("XLA_FLAGS", "DLCORE_CHECKPOINT_TEST_FAULT") and not k.startswith(("JAX_COMPILATION_CACHE",
                                                                                            "JAX_PERSISTENT_CACHE"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        DLCORE_HOST_DEVICES="1",  # every child the same device layout: bit-exact comparisons hold
        JAX_PLATFORMS="cpu",
        TFDS_DATA_DIR=os.environ.get("TFDS_DATA_DIR", str(ROOT / "runs" / "tensorflow_datasets")),
    )
    if cache is not None:
        env.update(JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    env.update(extra)
    return env


def _start(where: str, out: pathlib.Path, cache, *extra, limit: int = LIMIT) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, DRIVER, where, str(limit), "--", *RUN, "--out", str(out), *extra],
        env=_env(cache), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _finish(p: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # a hang is a failure, never a stuck test session
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"dlcore hung (killed after {timeout} s); stderr: {err[-2000:]}")
    return p.returncode, out, err


def _run_dir(out: pathlib.Path) -> pathlib.Path:
    (d,) = (out / "tiny").iterdir()
    return d


def _assert_one_line(rc: int, err: str, expected_rc: int, *fragments: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == expected_rc, err[-3000:]
    assert len(lines) == 1, err[-3000:]
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def _no_temporaries(root: pathlib.Path) -> None:
    left = [str(p) for p in root.rglob("*") if any(m in p.name for m in TMP_MARKERS)]
    assert not left, left


def _hashes(run_dir: pathlib.Path) -> dict:
    with open(run_dir / "results.csv", newline="") as f:
        return {r["seed"]: r["params_sha256"] for r in csv.DictReader(f)}


def _steps(run_dir: pathlib.Path) -> list[int]:
    from dlcore.checkpoint import checkpoint_steps

    return checkpoint_steps(str(run_dir))


def _sigterm_when_training(out: pathlib.Path, cache, rng) -> subprocess.Popen:
    """Start a run, wait for its first committed checkpoint, then SIGTERM it at a random moment."""
    p = _start("none", out, cache)
    deadline = time.time() + 200
    while time.time() < deadline and p.poll() is None:
        d = out / "tiny"
        if d.is_dir() and any(d.iterdir()) and _steps(_run_dir(out)):
            break
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 0.5))
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    return p


@pytest.fixture(scope="module")
def faulted(tmp_path_factory):
    """Phase 1 (concurrently): a checkpoint write fails, history.npz fails, TensorBoard fails, a
    SIGTERM arrives. Phase 2 (concurrently): each resumes from its run directory."""
    base = tmp_path_factory.mktemp("faults_io")
    cache = base / "jax_cache"
    rng = random.Random(os.getpid())
    runs = {
        "checkpoint": _start("checkpoint:2", base / "checkpoint", cache, "--no-tensorboard"),
        "history": _start("history.npz", base / "history", cache, "--no-tensorboard"),
        "tensorboard": _start("tensorboard", base / "tensorboard", cache),
    }
    sig = _sigterm_when_training(base / "sigterm", cache, rng)
    results = {k: _finish(p) for k, p in runs.items()}
    results["sigterm"] = _finish(sig)
    snapshots = {}
    for k in results:
        d = _run_dir(base / k)
        snapshots[k] = {"dir": d, "steps": _steps(d), "files": sorted(p.name for p in d.iterdir())}
        _no_temporaries(d)
    resumed = {}
    for k in ("checkpoint", "history", "sigterm"):
        d = snapshots[k]["dir"]
        resumed[k] = subprocess.Popen(
            [sys.executable, "-m", "dlcore.cli", *RUN, "--no-tensorboard", "--resume", str(d)],
            env=_env(cache), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    resumed = {k: _finish(p) for k, p in resumed.items()}
    return base, results, snapshots, resumed


def test_checkpoint_write_fails_previous_kept_and_resumes_bit_exact(faulted):
    base, results, snap, resumed = faulted
    rc, _, err = results["checkpoint"]
    line = _assert_one_line(rc, err, 2, "dlcore: error: cannot write checkpoint ", "File too large",
                            "ulimit -f", "is intact; resume from it")
    s = snap["checkpoint"]
    assert s["steps"] and s["steps"][-1] < 100 and f"step {s['steps'][-1]} is intact" in line
    assert "results.csv" not in s["files"]  # it stopped at the failure
    rc, out, err = resumed["checkpoint"]
    assert rc == 0, err[-3000:]
    assert f"resumed from the checkpoint at step {s['steps'][-1]}" in out
    assert _hashes(s["dir"]) == _hashes(_run_dir(base / "tensorboard"))  # == the uninterrupted run


def test_output_write_fails_checkpoints_complete_and_resume_writes_outputs(faulted):
    base, results, snap, resumed = faulted
    s = snap["history"]
    rc, _, err = results["history"]
    _assert_one_line(rc, err, 2, f"dlcore: error: cannot write {s['dir']}/history.npz: File too large")
    assert s["steps"][-1] == 100 and "history.npz" not in s["files"] and "results.csv" in s["files"]
    rc, out, err = resumed["history"]
    assert rc == 0, err[-3000:]
    assert (s["dir"] / "history.npz").is_file() and (s["dir"] / "manifest.json").is_file()
    assert _hashes(s["dir"]) == _hashes(_run_dir(base / "tensorboard"))


def test_tensorboard_write_fails_without_hanging(faulted):
    base, results, snap, _ = faulted
    s = snap["tensorboard"]
    rc, _, err = results["tensorboard"]
    _assert_one_line(rc, err, 2, f"dlcore: error: cannot write {s['dir']}/tb/seed_0",
                     "File too large")
    assert s["steps"][-1] == 100 and "results.csv" in s["files"] and "manifest.json" not in s["files"]
    assert not list((s["dir"] / "tb").rglob("events.out.tfevents.*"))  # the incomplete file was removed


def test_sigterm_finishes_the_checkpoint_exits_143_and_resumes_bit_exact(faulted):
    base, results, snap, resumed = faulted
    s = snap["sigterm"]
    rc, out, err = results["sigterm"]
    if rc == 0:
        pytest.skip("the run ended before the signal arrived (machine too fast for this window)")
    _assert_one_line(rc, err, 143, "dlcore: terminated (SIGTERM)")
    assert s["steps"], "SIGTERM came after the first checkpoint"
    from dlcore.checkpoint import restore

    restore(str(s["dir"]))  # the newest committed checkpoint is whole (file list and CRCs check)
    rc, out, err = resumed["sigterm"]
    assert rc == 0, err[-3000:]
    assert _hashes(s["dir"]) == _hashes(_run_dir(base / "tensorboard"))


WRITERS = textwrap.dedent(
    """
    import json, os, resource, sys
    import numpy as np
    from dlcore.errors import StorageError

    out = sys.argv[1]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    def attempt(name, fn):
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, hard))
        try:
            fn()
            res = "no error"
        except StorageError as e:
            res = str(e)
        except BaseException as e:
            res = f"RAW {type(e).__name__}: {e}"
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        print(json.dumps([name, res]), flush=True)

    rng = np.random.default_rng(0)
    hist = {"train/loss": rng.normal(size=(2, 3000)), "val/accuracy": rng.uniform(size=(2, 50)),
            "eval_step": np.arange(1, 51) * 60}
    from dlcore.cli._outputs import write_csv, write_history
    from dlcore import manifest, plots, tracking

    attempt("results.csv", lambda: write_csv(os.path.join(out, "results.csv"),
                                             [{"seed": i, "h": "x" * 64} for i in range(100)]))
    attempt("history.npz", lambda: write_history(os.path.join(out, "history.npz"), hist, [0, 1]))
    attempt("manifest.json", lambda: manifest.write_json_atomic(os.path.join(out, "manifest.json"),
                                                                {"k": list(range(2000))}))
    attempt("curves.png", lambda: plots.plot_learning_curves(hist, os.path.join(out, "curves.png")))
    attempt("tb", lambda: tracking.write_scalars(os.path.join(out, "tb"), hist, [0, 1], train_every=1))
    attempt("scalars.csv", lambda: tracking.write_scalars(os.path.join(out, "tbcsv"), hist, [0, 1], train_every=1,
                                                          kinds=("csv",)))
    """
)


def test_every_output_writer_turns_a_size_limit_into_one_storage_error(tmp_path):
    """Each writer of a run directory, past a real 2 KiB file-size limit: StorageError naming the file."""
    import json

    env = _env(tmp_path / "cache")
    p = subprocess.run([sys.executable, "-c", WRITERS, str(tmp_path)], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    got = dict(json.loads(line) for line in p.stdout.splitlines() if line.startswith("["))
    assert set(got) == {"results.csv", "history.npz", "manifest.json", "curves.png", "tb", "scalars.csv"}
    for name in ("results.csv", "history.npz", "manifest.json", "curves.png"):
        assert got[name] == f"cannot write {tmp_path / name}: File too large; raise the file-size limit (ulimit -f) " \
                            "or free space", got[name]
        assert not (tmp_path / name).exists()
    assert got["tb"].startswith(f"cannot write {tmp_path}/tb/seed_0/events.out.tfevents."), got["tb"]
    assert got["scalars.csv"].startswith(f"cannot write {tmp_path}/tbcsv/seed_0/scalars.csv: File too large")
    _no_temporaries(tmp_path)


def test_size_limit_from_the_start_fails_before_training_and_leaves_nothing(tmp_path):
    """Like `ulimit -f 1`: the run directory's write probe fails; no empty run directory is left."""
    p = _start("start", tmp_path / "runs", None, limit=1024)  # no compilation cache: its writes would fail too
    rc, out, err = _finish(p)
    _assert_one_line(rc, err, 2, f"dlcore: error: cannot write the run directory {tmp_path}/runs/tiny/",
                     "File too large")
    assert list((tmp_path / "runs" / "tiny").iterdir()) == []


# Run in a fresh interpreter (not in a forked child of this multithreaded process): drop
# CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set, so root obeys file modes in the
# program it then executes.
WITHOUT_DAC = textwrap.dedent(
    """
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
    os.execv(sys.argv[1], sys.argv[1:])
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.getuid() != 0,
                    reason="as root, read-only modes only bind once the DAC capabilities are dropped (Linux)")
def test_read_only_directories(tmp_path):
    """--out in a read-only directory fails before training; `report` of a read-only run directory too."""
    ro = tmp_path / "ro"
    run_dir = ro / "tiny" / "20260101-000000"
    run_dir.mkdir(parents=True)
    (run_dir / "results.csv").write_text("seed,status,val/accuracy,params_sha256\n0,ok,0.5,ab\n1,ok,0.7,cd\n")
    (run_dir / "manifest.json").write_text('{"experiment": "tiny", "seeds": [0, 1]}\n')
    for d in (run_dir, ro / "tiny", ro):
        d.chmod(0o555)
    env = _env(None)
    cmd = [sys.executable, "-c", WITHOUT_DAC, sys.executable, "-m", "dlcore.cli"]
    try:
        a = subprocess.run([*cmd, "run", "tiny", "--out", str(ro), "--no-progress"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=180)
        b = subprocess.run([*cmd, "report", str(run_dir)], env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=180)
    finally:
        for d in (ro, ro / "tiny", run_dir):
            d.chmod(0o755)
    _assert_one_line(a.returncode, a.stderr, 2, f"cannot write the run directory {ro}/tiny/", "Permission denied",
                     "--out DIR")
    assert sorted(p.name for p in (ro / "tiny").iterdir()) == [run_dir.name]  # no new (empty) run directory
    _assert_one_line(b.returncode, b.stderr, 2, f"cannot write {run_dir}/summary.txt: Permission denied")
    assert sorted(p.name for p in run_dir.iterdir()) == ["manifest.json", "results.csv"]


def test_concurrent_runs_get_distinct_run_directories(tmp_path):
    """Eight processes claim a run directory at the same instant: eight distinct directories."""
    child = textwrap.dedent(
        """
        import sys, time
        from dlcore.cli._outputs import make_run_dir
        start = float(sys.argv[2])
        while time.time() < start:
            pass
        print(make_run_dir(sys.argv[1], "exp"))
        """
    )
    start = time.time() + 3.0
    procs = [subprocess.Popen([sys.executable, "-c", child, str(tmp_path), str(start)], env=_env(tmp_path / "c"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    dirs = [o.strip() for o, _ in outs]
    assert len(set(dirs)) == 8 and sorted(os.listdir(tmp_path / "exp")) == sorted(os.path.basename(d) for d in dirs)
