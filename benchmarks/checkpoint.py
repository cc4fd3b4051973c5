"""Checkpoint cost: save/restore time and bytes, and the training slowdown of checkpointing.

1. Save and restore of (a) the MNIST-1D MLP's train state (40-100-100-10, Adam) and (b) a
   ResNet-18-sized state (11.2M parameters of random arrays + Adam's two moments, ~134 MB):
   time the training thread is blocked (``save`` returns after the host copy; the write is in a
   background thread), time until the step is committed, restore time, bytes on disk.
2. Training slowdown on MNIST-1D (MLP, Adam 1e-2, batch 100, 6000 steps, eval every 500): one run
   (``fit``) and an 8-seed sweep (``run_seeds``), without checkpoints vs with a checkpoint every
   500 steps (async and sync writes). Wall time minus compile time, runs interleaved, median over
   rounds (the machine is noisy: compare the ratios measured in one run). "training thread in
   save()" is what the training loop itself waits for; the rest of an async write (~30 ms of CPU
   for the MLP) runs in a background thread and costs wall time only when no core is free.

    .venv/bin/python benchmarks/checkpoint.py [--steps 6000] [--rounds 5] [--sweep-seeds 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import jax
import numpy as np

from dlcore import checkpoint as C
from dlcore.data import load_dataset
from dlcore.nn import MLP
from dlcore.optim import optimizer_fn
from dlcore.sweep import run_seeds
from dlcore.train import Recipe, TrainState, fit, init_state

# ResNet-18 (ImageNet head): conv kernels, batch-norm scales/biases and the classifier = 11.69M;
# the CIFAR variant has ~11.2M. Shapes only matter for the byte counts and the number of leaves.
RESNET18 = (
    [(7, 7, 3, 64)]
    + [(3, 3, 64, 64)] * 4
    + [(3, 3, 64, 128), (3, 3, 128, 128), (1, 1, 64, 128), (3, 3, 128, 128), (3, 3, 128, 128)]
    + [(3, 3, 128, 256), (3, 3, 256, 256), (1, 1, 128, 256), (3, 3, 256, 256), (3, 3, 256, 256)]
    + [(3, 3, 256, 512), (3, 3, 512, 512), (1, 1, 256, 512), (3, 3, 512, 512), (3, 3, 512, 512)]
    + [(512, 10)]
)


def du(path: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def resnet_state(rng) -> TrainState:
    params = {}
    for i, shape in enumerate(RESNET18):
        params[f"layer{i:02d}"] = {"kernel": rng.standard_normal(shape, dtype=np.float32),
                                   "scale": np.ones(shape[-1], np.float32), "bias": np.zeros(shape[-1], np.float32)}
    zeros = jax.tree.map(np.zeros_like, params)
    return TrainState(
        step=np.int32(0), params=params, model_state={}, opt_state=(np.int32(0), zeros, jax.tree.map(np.copy, zeros)),
        keys={"data": np.zeros(2, np.uint32), "dropout": np.zeros(2, np.uint32)},
        hparams={"learning_rate": np.float32(1e-3)}, status=np.int32(0), stop_step=np.int32(-1), extra={},
    )


def bench_save_restore(name: str, state, reps: int = 3) -> None:
    n_params = sum(int(np.prod(np.shape(a))) for a in jax.tree.leaves(state.params))
    root = tempfile.mkdtemp(prefix="dlcore-ckpt-bench-")
    try:
        blocked, total, cpu, restore_s = [], [], [], []
        with C.CheckpointManager(root, keep=reps + 1) as ckpt:
            ckpt.save(state.replace(step=np.int32(1)))  # warm-up: imports, first-use costs
            ckpt.wait()
            for r in range(reps):
                st = state.replace(step=np.int32(10 + r))
                c0, t0 = time.process_time(), time.perf_counter()
                ckpt.save(st)
                t1 = time.perf_counter()
                ckpt.wait()
                blocked.append(t1 - t0)
                total.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)  # all threads: the CPU the write takes
        step_dir = os.path.join(root, str(10 + reps - 1))
        abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), state)
        for _ in range(reps):
            t0 = time.perf_counter()
            r = C.restore(step_dir, abstract)
            jax.block_until_ready(r.state)
            restore_s.append(time.perf_counter() - t0)
        nbytes = du(step_dir)
        raw = sum(np.asarray(a).nbytes for a in jax.tree.leaves(state))
        print(f"{name:<14} {n_params / 1e6:6.2f}M params  state {raw / 1e6:7.1f} MB  on disk {nbytes / 1e6:7.1f} MB  "
              f"save: blocks {np.median(blocked) * 1e3:6.1f} ms, committed {np.median(total) * 1e3:6.1f} ms "
              f"(CPU {np.median(cpu) * 1e3:5.0f} ms)  "
              f"restore {np.median(restore_s) * 1e3:7.1f} ms  ({nbytes / np.median(total) / 1e6:5.0f} MB/s write)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def timed_fit(recipe, data, steps: int, mode: str, seeds: int = 0) -> tuple[float, float, float, int]:
    """``(wall minus compile, CPU s of the process, s the training thread spent in save(), skipped)``.

    ``seeds=0``: one run (``fit``); else a sweep of that many seeds (``run_seeds``, one program).
    """
    root = tempfile.mkdtemp(prefix="dlcore-ckpt-bench-")
    try:
        ckpt = None if mode == "none" else C.CheckpointManager(root, every=500, async_save=mode == "async")
        kw = dict(hparams={"learning_rate": 1e-2}, num_steps=steps, batch_size=100, eval_every=500, progress=False,
                  callbacks=[ckpt.callback(steps)] if ckpt else [])
        c0, t0 = time.process_time(), time.perf_counter()
        res = run_seeds(recipe, data, seeds, **kw) if seeds else fit(recipe, data, 0, **kw)
        if ckpt:
            ckpt.close()  # the last write is part of the cost
        wall = time.perf_counter() - t0 - res.timing["compile_s"]
        cpu = time.process_time() - c0  # all threads, compile included (the same in every mode)
        return wall, cpu, ckpt.save_s if ckpt else 0.0, len(ckpt.skipped_steps) if ckpt else 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sweep-seeds", type=int, default=8)
    args = ap.parse_args()
    print(f"jax {jax.__version__} · {jax.default_backend()} × {jax.device_count()} · cpus {os.cpu_count()}")

    data = load_dataset("mnist1d")
    recipe = Recipe(MLP(widths=(100, 100), num_outputs=10), optimizer_fn("adam"))
    mlp = jax.device_get(init_state(recipe, 0, {"learning_rate": 1e-2}, data.x_train[:1]))
    print("\n== save / restore (median of 3)")
    bench_save_restore("MNIST-1D MLP", mlp)
    bench_save_restore("ResNet-18-size", resnet_state(np.random.default_rng(0)))

    for seeds, modes in ((0, ("none", "async", "sync")), (args.sweep_seeds, ("none", "async"))):
        what = "fit (one run)" if not seeds else f"run_seeds ({seeds} seeds, one vmapped program)"
        print(f"\n== training slowdown: {what}, {args.steps} steps, checkpoint every 500 (wall minus compile, "
              f"median of {args.rounds} interleaved rounds)")
        timed_fit(recipe, data, 500, "async", seeds)  # warm-up (orbax imports, first save)
        times = {m: [] for m in modes}
        cpus = {m: [] for m in modes}
        blocked = {m: [] for m in modes}
        skipped = {}
        for _ in range(args.rounds):
            for m in modes:
                t, c, b, skipped[m] = timed_fit(recipe, data, args.steps, m, seeds)
                times[m].append(t)
                cpus[m].append(c)
                blocked[m].append(b)
        base, base_cpu = np.median(times["none"]), np.median(cpus["none"])
        for m, ts in times.items():
            med, b = np.median(ts), np.median(blocked[m])
            print(f"{m:<6} wall {med:5.2f} s ({args.steps / med:6,.0f} steps/s, slowdown {100 * (med / base - 1):+6.1f}%)  "
                  f"extra CPU {np.median(cpus[m]) - base_cpu:+5.2f} s  "
                  f"training thread in save() {b * 1e3:6.1f} ms ({100 * b / base:4.1f}% of the run)  "
                  f"[wall per round: {', '.join(f'{t:.2f}' for t in ts)}; superseded saves {skipped[m]}]")
    print("target: < 5% slowdown with async checkpointing every 500 steps")


if __name__ == "__main__":
    main()
