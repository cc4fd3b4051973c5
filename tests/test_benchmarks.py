"""The benchmark scripts that feed the README and the accelerator run: they run and say sane things.

``benchmarks/gpu.py --tiny`` is the accelerator benchmark at toy sizes on the CPU; the lead's
``make bench-gpu`` on a lent accelerator runs the same code at full size.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import peers  # noqa: E402  (benchmarks/peers.py)


def _finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_gpu_benchmark_tiny_writes_sane_json(tmp_path):
    out = tmp_path / "gpu.json"
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu.py"), "--tiny", "--json", str(out)],
                       env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["tiny"] is True and r["jax"]["backend"] == "cpu"
    sw, seeds = r["seed_sweep"], r["config"]["sweep_seeds"]
    one, many = sw["seeds_1"], sw[f"seeds_{seeds}"]
    for row in (one, many):
        assert _finite_positive(row["seed_steps_per_s"]) and _finite_positive(row["compile_s"])
        assert 0.2 < row["test_acc"] <= 1.0  # 100 steps of Adam: well above chance (0.1)
    assert sw["seed_throughput_ratio"] == pytest.approx(many["seed_steps_per_s"] / one["seed_steps_per_s"])
    assert r["jax_vmap"]["seeds"] == seeds and 0.2 < r["jax_vmap"]["test_acc"] <= 1.0
    assert set(r["zoo"]) == set(r["config"]["zoo"])
    for name, z in r["zoo"].items():
        assert _finite_positive(z["steps_per_s"]) and z["params"] > 0, name
        assert z["examples_per_s"] == pytest.approx(z["steps_per_s"] * z["input"][0])
    if importlib.util.find_spec("torch") is None:
        assert "skipped" in r["torch"]
    else:
        assert r["torch"]["device"] == "cpu"
        for name, s in (("bmm", seeds), ("loop", r["config"]["loop_seeds"])):
            t = r["torch"][name]
            assert t["seeds"] == s and _finite_positive(t["seed_steps_per_s"]), name
            assert 0.2 < t["test_acc"] <= 1.0, name  # same data, same init scheme: learns as dlcore does
        assert _finite_positive(r["dlcore_vs_torch_bmm_seed_steps"])
    assert r["total_s"] > 0


def test_peers_parses_dlcore_run_output(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.csv").write_text("seed,status,test/accuracy\n0,running,0.5\n1,running,0.75\n")
    stdout = (
        "mnist1d_mlp · 2 seeds · 6000 steps · cpu × 2 devices\n"
        "metric              mean      std   95% CI                 min      max\n"
        "test/accuracy     0.6250   0.1768   [0.0, 1.0]          0.5000   0.7500\n"
        "wall 14.7 s (compile 2.1 s) · 2,000 steps/s · 4,000 seed-steps/s\n"
        f"outputs: {run_dir}\n"
    )
    r = peers.parse_dlcore_output(stdout)
    assert r["train_s"] == 14.7 and r["compile_s"] == 2.1
    assert r["backend"] == "cpu" and r["devices"] == 2
    assert r["test_acc_per_seed"] == [0.5, 0.75] and r["test_acc"] == 0.625


def test_peers_summary_ratios():
    rounds = {
        "dlcore": [dict(process_s=10.0, train_s=8.0, test_acc=0.67), dict(process_s=12.0, train_s=9.0, test_acc=0.67),
                   dict(process_s=30.0, train_s=9.5, test_acc=0.67)],
        "torch_bmm": [dict(process_s=15.0, train_s=12.0, test_acc=0.67)] * 3,
    }
    s = peers.summarize(rounds)
    assert s["median"]["dlcore"]["process_s"] == 12.0  # the median ignores the one slow round
    assert s["ratios"]["dlcore_process_vs_torch_bmm_process"] == pytest.approx(15.0 / 12.0)
    assert s["ratios"]["dlcore_train_vs_torch_bmm_train"] == pytest.approx(12.0 / 9.0)
    assert math.isnan(s["ratios"]["dlcore_process_vs_torch_loop_process"])  # peer not run
