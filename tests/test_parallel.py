"""dlcore.parallel: placement, data/seed parallelism, pmap, cross-device batch norm, multi-host.

Multi-device checks run in subprocesses with 8 forced CPU devices (the rest of the suite keeps one
device): ``tests/_parallel_scripts/multi_device.py`` runs once (shared by the xdist workers) and
writes its measurements; two real processes train over localhost with ``two_process.py``.
Every subprocess has a timeout, so CI never hangs.

Float tolerance for "equal" parameters across device counts and code paths: max |Δ| <= 1e-6
after a few SGD steps (observed: <= 1.2e-7 — the all-reduce sums in another order). Random
streams (dropout masks, flips/crops, data order, per-example keys) are compared bit for bit.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore import parallel as par
from dlcore.errors import ConfigError, DlcoreError
from dlcore.nn import MLP
from dlcore.optim import optimizer_fn
from dlcore.train import Loop, Recipe, init_state, make_train_step, run_loop

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "tests" / "_parallel_scripts"
TOL = 1e-6
SCRIPT_TIMEOUT_S = 420  # a loaded 2-core machine; a healthy run takes ~40 s


def _env(devices: int | None) -> dict:
    env = dict(os.environ)
    flags = " ".join(f for f in env.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f)
    if devices:
        flags += f" --xla_force_host_platform_device_count={devices}"
    env["XLA_FLAGS"] = flags.strip()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _produce_multi_device(out: Path) -> None:
    try:
        p = subprocess.run([sys.executable, str(SCRIPTS / "multi_device.py"), str(out)], env=_env(8),
                           capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"multi_device.py did not finish in {SCRIPT_TIMEOUT_S} s")
    if p.returncode != 0:
        pytest.fail(f"multi_device.py failed (rc {p.returncode}):\n{p.stderr[-4000:]}")


@pytest.fixture(scope="module")
def md(tmp_path_factory):
    """The multi-device measurements, computed once per session even across xdist workers."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        out = tmp_path_factory.mktemp("multi_device")
        _produce_multi_device(out)
    else:  # workers share the session's base directory; the first one runs the script
        out = tmp_path_factory.getbasetemp().parent / "multi_device"
        out.mkdir(exist_ok=True)
        try:
            os.close(os.open(out / "LOCK", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            owner = True
        except FileExistsError:
            owner = False
        if owner:
            try:
                _produce_multi_device(out)
            finally:
                (out / "DONE").write_text("done")
        deadline = time.monotonic() + SCRIPT_TIMEOUT_S + 30
        while not (out / "DONE").exists():
            if time.monotonic() > deadline:
                pytest.fail("timed out waiting for another worker's multi_device.py")
            time.sleep(0.5)
    if not (out / "results.json").exists():
        pytest.fail("multi_device.py failed in another worker (see its test)")
    res = json.loads((out / "results.json").read_text())
    res["dir"] = out
    return res


# ---------------------------------------------------------------------------------- placement


@pytest.mark.parametrize("seeds,devices,batch,platform,expected", [
    (8, 8, 128, "gpu", (8, 1)),   # one seed per device
    (1, 8, 128, "gpu", (1, 8)),   # pure data parallel
    (2, 8, 128, "gpu", (2, 4)),   # seeds first, data over the rest
    (3, 8, 128, "gpu", (3, 2)),   # 3 seeds x 2 shards (6 of the 8 devices)
    (1, 8, 12, "gpu", (1, 6)),    # the data axis divides the batch
    (16, 4, 32, "tpu", (4, 1)),
    (1, 8, 128, "cpu", (1, 1)),   # CPU: no data axis unless asked (host devices share cores)
    (6, 4, 32, "cpu", (1, 1)),    # CPU: < 8 runs per host device stay on one device (measured slower)
    (32, 2, 100, "cpu", (2, 1)),  # the main job: 16 runs per device
    (8, 2, 100, "cpu", (1, 1)),
    (24, 4, 100, "cpu", (3, 1)),  # 8 runs per device
])
def test_plan_placement_rules(seeds, devices, batch, platform, expected):
    assert tuple(par.plan_placement(seeds, devices, batch, platform=platform)) == expected


def test_plan_placement_overrides():
    assert par.plan_placement(1, 4, 32, data_devices=4, platform="cpu") == (1, 4)
    assert par.plan_placement(8, 8, 32, data_devices=2, platform="gpu") == (4, 2)
    assert par.plan_placement(8, 8, 32, seed_devices=2, platform="gpu") == (2, 4)


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_seeds=1, num_devices=4, batch_size=30, data_devices=4), "not divisible by the data-axis size 4"),
    (dict(num_seeds=4, num_devices=4, batch_size=32, seed_devices=3), "does not divide the 4 seeds"),
    (dict(num_seeds=4, num_devices=2, batch_size=32, seed_devices=4), "only 2 exist"),
    (dict(num_seeds=1, num_devices=2, batch_size=32, data_devices=4), "only 2 exist"),
    (dict(num_seeds=0, num_devices=2), "positive integer"),
])
def test_plan_placement_bad_input(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        par.plan_placement(**kwargs, platform="gpu")


@pytest.mark.parametrize("seeds,devices,procs,batch,platform,expected", [
    (2, 2, 2, 50, "cpu", (2, 1)),     # one whole run per process (the CPU 8-runs rule is per process)
    (16, 4, 2, 50, "cpu", (2, 1)),    # 8 runs per process stay on one of its two devices
    (32, 4, 2, 50, "cpu", (4, 1)),    # 16 per process: the single-host rule inside each process
    (1, 4, 2, 50, "cpu", (1, 2)),     # one run: the two processes share its batch (data axis across them)
    (2, 8, 4, 64, "cpu", (2, 2)),     # pairs of processes share each run
    (8, 16, 2, 64, "gpu", (8, 2)),    # 4 runs per process, each over 2 of its 8 GPUs
    (1, 16, 2, 64, "gpu", (1, 16)),   # one run data-parallel over both hosts
])
def test_plan_placement_across_processes(seeds, devices, procs, batch, platform, expected):
    pl = par.plan_placement(seeds, devices, batch, platform=platform, num_processes=procs)
    assert tuple(pl) == expected
    assert pl.num_devices % procs == 0 and seeds % pl.seed == 0 and batch % pl.data == 0


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_seeds=1, num_devices=4, batch_size=25), "cannot split evenly; use a number of seeds divisible by 2"),
    (dict(num_seeds=2, num_devices=3, batch_size=32), "not shared equally by 2 processes"),
    (dict(num_seeds=3, num_devices=4, batch_size=32, seed_devices=3), "cannot be shared equally by 2"),
])
def test_plan_placement_across_processes_bad_input(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        par.plan_placement(**kwargs, platform="cpu", num_processes=2)


def test_mesh_is_2d_auto_and_checks_device_count():
    mesh = par.make_mesh(1, 1)
    assert mesh.axis_names == ("seed", "data")
    assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)  # not make_mesh's Explicit
    with pytest.raises(ConfigError, match="needs 4 devices but only 1 exist"):
        par.make_mesh(2, 2)
    assert "1 seed x 1 data on 1 cpu device" in par.describe(mesh)


def test_run_seeds_rejects_bad_data_axis(tiny_data):
    from dlcore.sweep import run_seeds

    r = Recipe(MLP(widths=(4,), num_outputs=3), optimizer_fn("sgd"))
    with pytest.raises(ConfigError, match="batch size 31 is not divisible by the data-axis size 2"):
        run_seeds(r, tiny_data, [0], hparams={"learning_rate": 0.1}, num_steps=2, batch_size=31,
                  data_devices=2, progress=False)
    with pytest.raises(ConfigError, match="only 1 exist"):
        run_seeds(r, tiny_data, [0], hparams={"learning_rate": 0.1}, num_steps=2, batch_size=32,
                  data_devices=2, progress=False)


def test_pmap_split_helpers():
    with pytest.raises(ConfigError, match="batch size 10 is not divisible by the data-axis size 4"):
        par.split_for_pmap({"x": np.zeros((10, 3))}, 4)
    b = par.split_uneven_for_pmap({"x": np.arange(6.0), "y": np.arange(6)}, [1, 0, 5])
    assert b["x"].shape == (3, 5) and b["mask"].sum(axis=1).tolist() == [1, 0, 5]
    assert b["x"][2].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    with pytest.raises(ConfigError, match="sum to the batch size"):
        par.split_uneven_for_pmap({"x": np.arange(6.0)}, [2, 2])


# ------------------------------------------------------- per-shard semantics, emulated in-process
# vmap with an axis name runs the same collectives (psum, all_gather, axis_index) as shard_map/pmap
# over that many "devices", so the per-shard code is checked here without extra devices.


def test_global_moments_masked_vs_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6, 3)).astype(np.float32) * 2 + 1  # 4 shards x 6 rows x 3 features
    mask = (np.arange(6)[None, :] < np.array([6, 2, 0, 5])[:, None]).astype(np.float32)
    mean, var, count = jax.vmap(lambda a, m: par.global_moments(a, mask=m, axis_name="data"),
                                axis_name="data")(x, mask)
    real = x[mask.astype(bool)]
    np.testing.assert_allclose(mean[0], real.mean(0), rtol=1e-6)
    np.testing.assert_allclose(var[0], real.var(0), rtol=1e-5)  # biased (flax's convention)
    assert count[0].tolist() == [13.0] * 3
    for k in range(1, 4):  # every "replica" holds the same statistics
        np.testing.assert_array_equal(mean[k], mean[0])
        np.testing.assert_array_equal(var[k], var[0])


def test_sync_batchnorm_unequal_shards_equals_global_batch():
    import flax.linen as nn

    rng = np.random.default_rng(1)
    sizes = [3, 5, 1, 7]
    x = rng.normal(size=(16, 4)).astype(np.float32) * 3
    bn = nn.BatchNorm(use_running_average=False, momentum=0.8)
    v = bn.init(jax.random.PRNGKey(0), x)
    y_ref, st_ref = bn.apply(v, x, mutable=["batch_stats"])
    sh = par.split_uneven_for_pmap({"x": x}, sizes)
    sync = par.SyncBatchNorm(use_running_average=False, momentum=0.8, axis_name="data")
    y, st = jax.vmap(lambda a, m: sync.apply(v, a, mask=m, mutable=["batch_stats"]), axis_name="data")(
        sh["x"], sh["mask"])
    y_real = np.concatenate([y[i, :n] for i, n in enumerate(sizes)])
    np.testing.assert_allclose(y_real, y_ref, atol=1e-5)
    for k in ("mean", "var"):
        np.testing.assert_allclose(st["batch_stats"][k][0], st_ref["batch_stats"][k], atol=1e-6)
    # Per-device ("virtual batch") statistics would differ clearly: the check can fail.
    local = jax.vmap(lambda a, m: par.global_moments(a, mask=m)[0])(sh["x"], sh["mask"])
    assert np.max(np.abs(local[3] - x.mean(0))) > 1e-2


def test_sharded_step_equals_single_device_step(key):
    from functools import partial

    from dlcore.data import random_flip

    r = Recipe(MLP(widths=(8,), num_outputs=3, norm="batch", dropout_rate=0.3), optimizer_fn("sgd"),
               augment=partial(random_flip, prob=0.5))
    x = jax.random.normal(key, (12, 5, 1))
    y = jax.random.randint(jax.random.fold_in(key, 1), (12,), 0, 3)
    s0 = init_state(r, 0, {"learning_rate": 0.1}, x[:1])
    ref, m_ref = jax.jit(make_train_step(r))(s0, {"x": x, "y": y})
    step = par.make_sharded_train_step(r, "data")
    shards = par.split_uneven_for_pmap({"x": np.asarray(x), "y": np.asarray(y)}, [4, 2, 6])
    got, m = jax.jit(jax.vmap(step, in_axes=(None, 0), axis_name="data"))(s0, shards)
    for a, b in zip(jax.tree.leaves((ref.params, ref.model_state)), jax.tree.leaves((got.params, got.model_state))):
        np.testing.assert_allclose(b[0], a, atol=TOL)
        np.testing.assert_array_equal(b[1], b[0])  # replicas identical
    np.testing.assert_allclose(m["loss"][0], m_ref["loss"], atol=TOL)


def test_blocking_pieces_give_the_same_run(tiny_data):
    r = Recipe(MLP(widths=(8,), num_outputs=3), optimizer_fn("sgd"))
    s0 = init_state(r, 1, {"learning_rate": 0.1}, tiny_data.x_train[:1])
    kw = dict(num_steps=20, batch_size=16, progress=False, evaluate_test=False)
    whole = run_loop(Loop(r, tiny_data, **kw), s0)
    s0 = init_state(r, 1, {"learning_rate": 0.1}, tiny_data.x_train[:1])
    loop = Loop(r, tiny_data, block_every=7, **kw)
    pieces = run_loop(loop, s0)
    assert sorted(loop._compiled) == [6, 7]  # 20 steps ran as 7 + 7 + 6 with a block in between
    np.testing.assert_array_equal(whole.history["train/loss"], pieces.history["train/loss"])
    for a, b in zip(jax.tree.leaves(whole.state.params), jax.tree.leaves(pieces.state.params)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="block_every"):
        Loop(r, tiny_data, block_every=0, **kw)


# ------------------------------------------------------------------------- distributed (1 process)


def test_initialize_bad_input(monkeypatch):
    with pytest.raises(ConfigError, match="give all of coordinator_address"):
        par.initialize("127.0.0.1:1234")
    with pytest.raises(ConfigError, match="HOST:PORT"):
        par.initialize("nohost", 2, 0)
    with pytest.raises(ConfigError, match="process_id must be in 0..1"):
        par.initialize("127.0.0.1:1234", 2, 2)
    jax.devices()  # the backend runs in this process, so initialize must refuse (and never connect)
    with pytest.raises(DlcoreError, match="JAX has already started"):
        par.initialize("127.0.0.1:1234", 2, 0)
    for k in ("SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri", "KUBERNETES_SERVICE_HOST", "TPU_WORKER_HOSTNAMES",
              "JAX_COORDINATOR_ADDRESS"):
        monkeypatch.delenv(k, raising=False)
    assert par.initialize() == par.DistributedInfo(0, 1, None, "single")


def test_detect_cluster():
    assert par.detect_cluster({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4", "SLURM_PROCID": "1"}) == "slurm"
    assert par.detect_cluster({"TPU_WORKER_HOSTNAMES": "a,b"}) == "tpu"
    assert par.detect_cluster({"SLURM_JOB_ID": "7"}) is None  # an interactive allocation is not a launch


def test_wait_for_coordinator_bounded():
    port = _free_port()
    t0 = time.monotonic()
    with pytest.raises(DlcoreError, match=f"cannot reach the coordinator at 127.0.0.1:{port} within 0.5 s"):
        par.wait_for_coordinator(f"127.0.0.1:{port}", 0.5)
    assert time.monotonic() - t0 < 5
    with socket.socket() as srv:  # something listening: returns at once
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        par.wait_for_coordinator(f"127.0.0.1:{srv.getsockname()[1]}", 5)


def test_single_process_helpers(tmp_path):
    assert par.is_main_process()
    assert par.main_process_only(lambda: 7)() == 7
    assert par.broadcast_string("runs/x") == "runs/x"
    host = par.to_host({"a": jnp.arange(3)})
    assert isinstance(host["a"], np.ndarray) and host["a"].tolist() == [0, 1, 2]
    mesh = par.make_mesh(1, 1)
    arr = np.arange(12.0).reshape(6, 2)
    read = []
    g = par.shard_rows(lambda a, b: (read.append((a, b)), arr[a:b])[1], par.batch_sharding(mesh), num_rows=6)
    np.testing.assert_array_equal(g, arr)
    assert (0, 6) in read


# ------------------------------------------------------------- 8 forced CPU devices (subprocess)


def test_unreachable_coordinator_clear_error_not_hang(md):
    u = md["unreachable"]
    assert u["error"] and "cannot reach the coordinator" in u["error"] and "start process 0" in u["error"]
    assert u["seconds"] < 10


@pytest.mark.parametrize("d", ["1", "2", "4", "8"])
def test_random_streams_bitwise_on_1_2_4_8_devices(md, d):
    assert md["num_devices"] == 8
    s = md["streams"][d]
    assert (s["shards"], s["shard_rows"]) == (int(d), 16 // int(d))  # the batch really is split
    for what in ("dropout", "augment", "data_order", "shard_map_dropout", "shard_map_example_keys"):
        assert s[what], f"{what} differs on {d} devices"


def test_data_parallel_really_splits_and_all_reduces(md):
    t = md["train"]
    assert not t["data1"]["all_reduce"]
    assert t["data2"]["all_reduce"] and t["data4"]["all_reduce"]
    assert not t["seed2"]["all_reduce"]  # seeds on their own devices need no collectives
    assert t["seed2data2"]["all_reduce"]
    assert t["seed2"]["mesh"] == {"seed": 2, "data": 1} and t["seed2data2"]["mesh"] == {"seed": 2, "data": 2}


def test_final_params_equal_on_1_2_4_devices(md):
    t = md["train"]
    assert t["data2"]["max_dparam_vs_data1"] <= TOL
    assert t["data4"]["max_dparam_vs_data1"] <= TOL
    assert t["data1"]["val_acc"] == t["data2"]["val_acc"] == t["data4"]["val_acc"]


def test_sweep_results_table_structure_identical(md):
    t = md["train"]
    ref = t["sweep1"]
    for name in ("seed2", "seed2data2"):
        for k in ("final", "history", "table_columns", "table_rows"):
            assert t[name][k] == ref[k], f"{name}: {k} differs from the 1-device sweep"
        assert t[name]["max_dparam_vs_sweep1"] <= TOL
    assert ref["table_rows"] == 2 and ref["history"]["train/loss"] == [2, 40]


def test_pmap_and_shard_map_equal_mesh_path(md):
    p = md["paths"]
    for name in ("mesh4", "shard_map4", "pmap4", "uneven_pmap4"):
        assert p[name]["max_dparam"] <= TOL, name
    assert p["uneven_pmap4"]["replicas_bitwise_equal"]
    # Per-device dropout masks/flips/BN statistics (a naive pmap) do change the run: the check can fail.
    assert p["naive_pmap4"]["max_dparam"] > 1e-3


@pytest.mark.parametrize("case", ["equal", "unequal"])
def test_cross_device_bn_equals_single_device(md, case):
    b = md["bn"][case]
    assert b["max_dy"] <= 1e-5 and b["max_dmean"] <= TOL and b["max_dvar"] <= 1e-5
    assert b["replicas_equal"]


def test_two_processes_match_one_process_two_devices(request, tmp_path):
    port = _free_port()
    env = _env(None)
    procs = [subprocess.Popen([sys.executable, str(SCRIPTS / "two_process.py"), str(i), str(port), str(tmp_path)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in (0, 1)]
    outs = []
    try:
        md = request.getfixturevalue("md")  # the one-process reference, computed while they run
        for p in procs:
            outs.append(p.communicate(timeout=SCRIPT_TIMEOUT_S))
    except subprocess.TimeoutExpired:
        pytest.fail("the two-process run did not finish in time")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    summaries = [json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1]) for out, _ in outs]
    assert [s["rows_read"] for s in summaries] == [[[0, 128]], [[128, 256]]]  # each loads only its half
    assert all(s["devices"] == 2 and s["local_devices"] == 1 for s in summaries)
    assert sorted(os.listdir(tmp_path)) == ["params.npy", "result.json"]  # written once, by process 0
    assert json.loads((tmp_path / "result.json").read_text())["process"] == 0
    two_proc = np.load(tmp_path / "params.npy")
    one_proc = np.load(md["dir"] / "params_data2.npy")
    np.testing.assert_allclose(two_proc, one_proc, atol=TOL)


def test_cli_distributed_unreachable_coordinator(tmp_path):
    port = _free_port()
    cmd = [sys.executable, "-m", "dlcore.cli", "run", "tiny", "--out", str(tmp_path), "--distributed",
           "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "1",
           "--coordinator-timeout", "1"]
    p = subprocess.run(cmd, cwd=ROOT, env=_env(None), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "cannot reach the coordinator" in p.stderr
    assert not any(tmp_path.iterdir())  # failed before writing anything
