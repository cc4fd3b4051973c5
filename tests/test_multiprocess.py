"""``dlcore run --distributed`` with two processes on localhost: checkpoints, a real kill, resume.

Each test starts real ``dlcore`` processes (``jax.distributed`` over TCP, gloo collectives on CPU)
and kills every one it started when it fails or runs past its time limit, so the suite never hangs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 240  # per launch, on a loaded 2-core machine (a healthy launch takes ~15 s)
SEEDS = "16"  # 8 runs per process: on CPU the single-process rule splits 16 seeds over 2 devices the same way
STEPS = "200"


_CACHE: dict[str, str] = {}  # one persistent compilation cache per test: later launches skip compiling


def _env(host_devices: int, **extra) -> dict:
    env = dict(os.environ)
    if _CACHE:
        env.update(JAX_COMPILATION_CACHE_DIR=_CACHE["dir"], JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f)
    env.pop("DLCORE_CHECKPOINT_TEST_FAULT", None)
    env.update(JAX_PLATFORMS="cpu", DLCORE_HOST_DEVICES=str(host_devices),
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]), **extra)
    return env


@pytest.fixture(autouse=True)
def _compilation_cache(tmp_path):
    _CACHE["dir"] = str(tmp_path / "jax_cache")
    yield
    _CACHE.clear()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cmd(out, *args) -> list[str]:
    return [sys.executable, "-m", "dlcore.cli", "run", "tiny", "--seeds", SEEDS, f"--config.num_steps={STEPS}",
            "--out", str(out), "--no-progress", "--no-tensorboard", *args]


def _start_pair(out, host_devices, *args, fault=None, env=None) -> list[subprocess.Popen]:
    port = _free_port()
    procs = []
    for pid in (0, 1):
        extra = dict(env or {}, **({"DLCORE_CHECKPOINT_TEST_FAULT": fault} if fault and pid == 0 else {}))
        procs.append(subprocess.Popen(
            _cmd(out, "--distributed", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                 "--process-id", str(pid), "--coordinator-timeout", "60", *args),
            cwd=ROOT, env=_env(host_devices, **extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def _finish(procs, limit=LIMIT_S) -> list[tuple[str, str]]:
    """Wait for every process (killing all of them on a timeout); each must exit 0."""
    deadline = time.monotonic() + limit
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=max(1.0, deadline - time.monotonic())))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, f"exit {p.returncode}\n{out[-1500:]}\n{err[-3000:]}"
    return outs


def _run_dir(out) -> Path:
    dirs = list((Path(out) / "tiny").iterdir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def _hashes(run_dir) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())["params_sha256"]


def _kill_after_first_checkpoint(procs, out) -> list[int]:
    """SIGKILL both processes once a checkpoint is committed; returns the committed steps then."""
    deadline = time.monotonic() + LIMIT_S
    try:
        while time.monotonic() < deadline:
            root = Path(out) / "tiny"
            ck = [d / "checkpoints" for d in root.iterdir()] if root.is_dir() else []
            steps = sorted(int(s.name) for c in ck if c.is_dir() for s in c.iterdir()
                           if s.name.isdigit() and (s / "dlcore_files.json").exists())
            if steps:
                alive = [p.poll() is None for p in procs]
                assert all(alive), [p.communicate() for p in procs]  # a real kill, of running processes
                for p in procs:
                    p.send_signal(signal.SIGKILL)
                return steps
            assert all(p.poll() is None for p in procs), [p.communicate()[1][-3000:] for p in procs]
            time.sleep(0.02)
        raise AssertionError("no checkpoint appeared in time")
    finally:
        for p in procs:
            if p.poll() is None and p.returncode is None:
                p.kill()
            p.communicate()


@pytest.mark.parametrize("host_devices", [1, 2])
def test_killed_pair_resumes_to_the_uninterrupted_result(tmp_path, host_devices):
    # Reference: one process on the same total number of devices (seed-parallel either way: each device
    # trains 8 whole runs), so the two-process result must be bit-identical, not merely close.
    t0 = time.monotonic()
    ref = subprocess.run(_cmd(tmp_path / "single"), cwd=ROOT, env=_env(2 * host_devices), capture_output=True,
                         text=True, timeout=LIMIT_S)
    assert ref.returncode == 0, ref.stderr[-3000:]
    want = _hashes(_run_dir(tmp_path / "single"))
    print(f"single process: {time.monotonic() - t0:.1f} s")
    assert len(want) == 16 and len(set(want.values())) == 16

    out = tmp_path / "pair"
    # The writer stalls before committing step 100, so the run cannot end before it is killed.
    procs = _start_pair(out, host_devices, "--checkpoint-every", "20", fault="pause-in-commit:100")
    t0 = time.monotonic()
    steps = _kill_after_first_checkpoint(procs, out)
    print(f"killed pair after {time.monotonic() - t0:.1f} s at steps {steps}")
    assert all(p.returncode == -signal.SIGKILL for p in procs)
    run_dir = _run_dir(out)
    assert steps and max(steps) < int(STEPS) and not (run_dir / "manifest.json").exists()

    if host_devices == 1:  # a copy to resume on another layout: one process with both devices
        shutil.copytree(run_dir, tmp_path / "moved" / "tiny" / run_dir.name)
    t0 = time.monotonic()
    outs = _finish(_start_pair(out, host_devices, "--checkpoint-every", "20", "--resume", str(run_dir),
                               "--fallback"))
    assert "resumed from the checkpoint at step" in outs[0][0]
    assert "outputs:" not in outs[1][0] and "test/accuracy" not in outs[1][0]  # process 1 prints no summary
    assert _hashes(run_dir) == want
    print(f"resumed pair: {time.monotonic() - t0:.1f} s")
    res = (run_dir / "results.csv").read_text().splitlines()
    assert len(res) == 1 + 16
    assert sorted(int(s.name) for s in (run_dir / "checkpoints").iterdir() if s.name.isdigit())[-1] == int(STEPS)

    if host_devices == 1:  # the checkpoint of two processes resumed by one (same runs per device: bitwise)
        moved = _run_dir(tmp_path / "moved")
        p = subprocess.run(_cmd(tmp_path / "moved", "--checkpoint-every", "20", "--resume", str(moved), "--fallback"),
                           cwd=ROOT, env=_env(2), capture_output=True, text=True, timeout=LIMIT_S)
        assert p.returncode == 0, p.stderr[-3000:]
        assert "resumed from the checkpoint at step" in p.stdout
        assert _hashes(moved) == want

    if host_devices == 1:  # the same pair uninterrupted
        out2 = tmp_path / "pair_uninterrupted"
        _finish(_start_pair(out2, host_devices, "--checkpoint-every", "20"))
        assert _hashes(_run_dir(out2)) == want


_BIG = """
import sys
import numpy as np
from dlcore.data import _mnist1d as m

def big():  # MNIST-1D's format (40 features, 10 classes) with 10x the examples
    n = 40_000
    x = np.random.default_rng(0).standard_normal((n, 40), dtype=np.float32)
    y = np.arange(n) % 10
    return dict(x=x, y=y, x_test=x[:1000], y_test=y[:1000])

m.generate_mnist1d = big
m.prepare_mnist1d(sys.argv[1])
"""


def test_data_parallel_pair_reads_only_its_rows(tmp_path):
    # One seed on two processes: they share each batch (data axis across processes), so each process
    # must read and hold only its half of the training rows — measured, on a 6.5 MB training split.
    tfds_dir = tmp_path / "tfds"
    p = subprocess.run([sys.executable, "-c", _BIG, str(tfds_dir)], cwd=ROOT, env=_env(1), capture_output=True,
                       text=True, timeout=LIMIT_S)
    assert p.returncode == 0, p.stderr[-3000:]
    out = tmp_path / "runs"
    outs = _finish(_start_pair(out, 1, "--seeds", "1", "--config.num_steps=20", "--config.eval_every=20",
                               "--config.dataset.val_fraction=0.01", "--config.dataset.standardize=false", env={"TFDS_DATA_DIR": str(tfds_dir)}))
    n, row_bytes = 39_600, 40 * 4 + 4
    for pid, (_, err) in enumerate(outs):
        line = [ln for ln in err.splitlines() if ln.startswith(f"dlcore: process {pid} of 2: training rows")]
        assert line, err[-2000:]
        m = re.search(r"training rows (\d+):(\d+) of (\d+) .*?, ([\d.]+) MB at peak to read and place them", line[0])
        assert m, line[0]
        start, stop, total, peak_mb = int(m[1]), int(m[2]), int(m[3]), float(m[4])
        assert total == n and (start, stop) == ((0, n // 2) if pid == 0 else (n // 2, n))
        full_mb, shard_mb = n * row_bytes / 1e6, n // 2 * row_bytes / 1e6
        assert shard_mb * 0.95 <= peak_mb < 0.75 * full_mb, (peak_mb, shard_mb, full_mb)  # its half, not all
    assert "outputs:" in outs[0][0]
    assert _hashes(_run_dir(out)).keys() == {"0"}
