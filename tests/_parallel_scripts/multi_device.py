"""Checks on 8 forced CPU devices for tests/test_parallel.py; writes results.json (+ params npy).

Usage: XLA_FLAGS=--xla_force_host_platform_device_count=8 python multi_device.py OUT_DIR
Run in a subprocess so the rest of the test suite keeps one device.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

OUT = sys.argv[1]
res: dict = {}

# --- An unreachable coordinator: a clear error within the timeout (before JAX starts). ---------
from dlcore.errors import DlcoreError  # noqa: E402
from dlcore.parallel import initialize  # noqa: E402

with socket.socket() as s:  # a port nobody listens on
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
t0 = time.monotonic()
try:
    initialize(f"127.0.0.1:{port}", num_processes=2, process_id=1, timeout_s=1.5)
    res["unreachable"] = {"error": None}
except DlcoreError as e:
    res["unreachable"] = {"error": str(e), "seconds": time.monotonic() - t0}

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

from dlcore import parallel as par  # noqa: E402
from dlcore import random as drandom  # noqa: E402
from dlcore.data import chunk_batch_indices, random_crop, random_flip  # noqa: E402
from dlcore.nn import Dropout, dropout  # noqa: E402
from dlcore.sweep import run_seeds  # noqa: E402
from dlcore.train import Loop, init_state, make_train_step  # noqa: E402

res["num_devices"] = jax.device_count()
T0 = time.perf_counter()
res["seconds"] = {}
DS = (1, 2, 4)

# --- Random streams: bitwise identical on 1, 2, 4, 8 devices. ------------------------------------
key = jax.random.PRNGKey(7)
x = jnp.asarray(np.random.default_rng(1).normal(size=(16, 12, 1)), jnp.float32)
draws = jax.jit(lambda k, x: {
    "dropout": dropout(drandom.step_key(k, 3), x, 0.5),
    "augment": random_crop(k, random_flip(k, x), padding=2),
})
ref = draws(key, x)
idx_fn = jax.jit(lambda k: chunk_batch_indices(k, 5, 30, 256, 32))
ref_idx = idx_fn(key)
streams = {}
for d in DS + (8,):
    mesh = par.make_mesh(1, d)
    xs = par.shard_batch({"x": x}, mesh)["x"]
    got = draws(key, xs)
    idx = jax.jit(lambda k: chunk_batch_indices(k, 5, 30, 256, 32),
                  out_shardings=NamedSharding(mesh, P(None, "data")))(key)
    # Per-shard code (shard_map): dropout through the interceptor, per-example draws by global index.
    def per_shard(xl):
        with nn.intercept_methods(par.dropout_interceptor("data")):
            y = Dropout(0.5).apply({}, xl, True, rngs={"dropout": key})
        ex = jax.vmap(lambda k: jax.random.normal(k, (3,)))(drandom.example_keys(key, par.global_index(xl.shape[0], "data")))
        return y, ex

    sm = jax.jit(jax.shard_map(per_shard, mesh=mesh, in_specs=P("data"), out_specs=P("data")))(xs)
    streams[d] = {
        "shards": len(xs.addressable_shards),
        "shard_rows": int(xs.addressable_shards[0].data.shape[0]),
        "dropout": bool(np.array_equal(got["dropout"], ref["dropout"])),
        "augment": bool(np.array_equal(got["augment"], ref["augment"])),
        "data_order": bool(np.array_equal(idx, ref_idx)),
        "shard_map_dropout": bool(np.array_equal(sm[0], Dropout(0.5).apply({}, x, True, rngs={"dropout": key}))),
        "shard_map_example_keys": bool(np.array_equal(
            sm[1], jax.vmap(lambda k: jax.random.normal(k, (3,)))(drandom.example_keys(key, jnp.arange(16))))),
    }
res["streams"] = streams
res["seconds"]["streams"] = time.perf_counter() - T0

# --- pmap == shard_map == mesh (jit) == one device, with batch norm, dropout and augmentation. --
R = common.recipe()
rng = np.random.default_rng(2)
xb = rng.normal(size=(3, 16, 8, 1)).astype(np.float32)
yb = rng.integers(0, 3, size=(3, 16)).astype(np.int32)
s0 = init_state(R, 3, common.HPARAMS, xb[0][:1])


def run3(step, put_state, put_batch, get):
    s = put_state(s0)
    for t in range(3):
        s, m = step(s, put_batch({"x": xb[t], "y": yb[t]}))
    return common.flat((get(s).params, get(s).model_state)), float(np.ravel(np.asarray(m["loss"]))[0])


ident = lambda s: s  # noqa: E731
ref_p, ref_loss = run3(jax.jit(make_train_step(R)), ident, ident, ident)
paths = {}
for d in (4,):  # 1, 2, 4 devices are compared through run_seeds below; here the three code paths
    mesh = par.make_mesh(1, d)
    rep, shb = (lambda s, m=mesh: par.replicate(s, m)), (lambda b, m=mesh: par.shard_batch(b, m))
    for name, (step, ps, pb, get) in {
        "mesh": (par.data_parallel_train_step(R, mesh), rep, shb, ident),
        "shard_map": (par.shard_map_train_step(R, mesh), rep, shb, ident),
        "pmap": (par.pmap_train_step(R, devices=jax.devices()[:d]), lambda s, d=d: par.replicate_for_pmap(s, d),
                 lambda b, d=d: par.split_for_pmap(b, d), par.unreplicate),
    }.items():
        p, loss = run3(step, ps, pb, get)
        paths[f"{name}{d}"] = {"max_dparam": float(np.max(np.abs(p - ref_p))), "dloss": abs(loss - ref_loss)}


# Negative control: the naive pmap step (per-device dropout masks, flips and BN statistics).
def naive_step(state, batch):
    new, m = make_train_step(R)(state, batch)
    return new, m


naive = jax.pmap(naive_step, axis_name="data", devices=jax.devices()[:4])
p_naive, _ = run3(naive, lambda s: par.replicate_for_pmap(s, 4), lambda b: par.split_for_pmap(b, 4), par.unreplicate)
paths["naive_pmap4"] = {"max_dparam": float(np.max(np.abs(p_naive - ref_p)))}

# Unequal shards (5, 3, 1, 7 real rows, padded and masked) == one device on the 16 rows.
pm4 = par.pmap_train_step(R, devices=jax.devices()[:4])
s = par.replicate_for_pmap(s0, 4)
for t in range(3):
    s, m = pm4(s, par.split_uneven_for_pmap({"x": xb[t], "y": yb[t]}, [5, 3, 1, 7]))
replicas = [common.flat((jax.tree.map(lambda a: a[i], s.params), jax.tree.map(lambda a: a[i], s.model_state)))
            for i in range(4)]
paths["uneven_pmap4"] = {
    "max_dparam": float(np.max(np.abs(replicas[0] - ref_p))),
    "replicas_bitwise_equal": all(np.array_equal(replicas[0], r) for r in replicas[1:]),
}
res["paths"] = paths
res["seconds"]["paths"] = time.perf_counter() - T0

# --- Batch norm statistics across devices vs one device on the same global batch. ----------------
xbn = jnp.asarray(np.random.default_rng(3).normal(size=(16, 5)) * 3 + 1, jnp.float32)
flax_bn = nn.BatchNorm(use_running_average=False, momentum=0.9)
v = flax_bn.init(jax.random.PRNGKey(0), xbn)
sync = par.SyncBatchNorm(use_running_average=False, momentum=0.9, axis_name="data")


def bn_case(sizes):
    real = jnp.concatenate([xbn[sum(sizes[:i]):sum(sizes[:i]) + n] for i, n in enumerate(sizes)])
    y_ref, st_ref = flax_bn.apply(v, real, mutable=["batch_stats"])
    sh = par.split_uneven_for_pmap({"x": np.asarray(xbn[:sum(sizes)])}, sizes)
    y, st = jax.pmap(lambda x, m: sync.apply(v, x, mask=m, mutable=["batch_stats"]), axis_name="data",
                     devices=jax.devices()[:len(sizes)])(sh["x"], sh["mask"])
    y_real = np.concatenate([np.asarray(y[i, :n]) for i, n in enumerate(sizes)])
    stats = st["batch_stats"]
    return {
        "max_dy": float(np.max(np.abs(y_real - np.asarray(y_ref)))),
        "max_dmean": float(np.max(np.abs(stats["mean"][0] - st_ref["batch_stats"]["mean"]))),
        "max_dvar": float(np.max(np.abs(stats["var"][0] - st_ref["batch_stats"]["var"]))),
        "replicas_equal": bool(all(np.array_equal(stats[k][0], stats[k][i]) for k in ("mean", "var")
                                   for i in range(len(sizes)))),
    }


res["bn"] = {"equal": bn_case([4, 4, 4, 4]), "unequal": bn_case([5, 3, 1, 7])}
res["seconds"]["bn"] = time.perf_counter() - T0

# --- Training through run_seeds: 1 seed data-parallel on 1, 2, 4 devices; a 2-seed sweep. --------
loops = []
_init = Loop.__init__


def _record(self, *a, **k):  # keep the Loop so its compiled chunk (HLO) can be inspected
    _init(self, *a, **k)
    loops.append(self)


Loop.__init__ = _record
data = common.dataset()
train = {}
params = {}


def chunk_hlo():
    return loops[-1]._compiled[common.RUN["eval_every"]].as_text()


for d in DS:
    r = run_seeds(R, data, [0], hparams=common.HPARAMS, data_devices=d, evaluate_test=False, **common.RUN)
    params[f"data{d}"] = common.flat(r.state.params)
    train[f"data{d}"] = {"all_reduce": "all-reduce" in chunk_hlo(), "val_acc": float(r.final["val/accuracy"][0])}
for name, kw in {"sweep1": dict(devices=jax.devices()[:1]), "seed2": dict(seed_devices=2, data_devices=1),
                 "seed2data2": dict(seed_devices=2, data_devices=2)}.items():
    r = run_seeds(R, data, [0, 1], hparams=common.HPARAMS, **kw, **common.RUN)
    params[name] = common.flat(r.state.params)
    from dlcore.cli._outputs import results_rows
    from dlcore.manifest import run_hashes

    rows = results_rows([0, 1], r.final, r.state, run_hashes(r.state.params, 2), r.history)
    train[name] = {
        "all_reduce": "all-reduce" in chunk_hlo(),
        "mesh": dict(loops[-1].state_sharding.mesh.shape) if loops[-1].state_sharding is not None else None,
        "final": {k: list(np.shape(v)) for k, v in r.final.items()},
        "history": {k: list(np.shape(v)) for k, v in r.history.items()},
        "table_columns": list(rows[0].keys()),
        "table_rows": len(rows),
    }
for name in ("data2", "data4"):
    train[name]["max_dparam_vs_data1"] = float(np.max(np.abs(params[name] - params["data1"])))
for name in ("seed2", "seed2data2"):
    train[name]["max_dparam_vs_sweep1"] = float(np.max(np.abs(params[name] - params["sweep1"])))
res["train"] = train
res["seconds"]["train"] = time.perf_counter() - T0
np.save(os.path.join(OUT, "params_data2.npy"), params["data2"])  # reference for the two-process run

with open(os.path.join(OUT, "results.json"), "w") as f:
    json.dump(res, f, indent=1)
print("done")
