"""Seed-parallel vs data-parallel throughput on 1, 2, 4 forced CPU devices, and weak scaling on paper.

MNIST-1D MLP 40-100-100-10, Adam 1e-2, batch 100. Each device count runs in its own subprocess
(``XLA_FLAGS=--xla_force_host_platform_device_count=D`` must be set before JAX starts), all in one
run of this script:

* seed-parallel: 4 seeds, split over the ``seed`` axis (no collectives) — seed-steps/s;
* data-parallel: 1 seed, its batch split over the ``data`` axis (gradient all-reduce every step,
  blocking every 50 steps on CPU) — steps/s, and the overhead per step against 1 device;
* the bytes all-reduced per step, read from the compiled HLO of the data-parallel step.

Weak scaling (fixed per-device batch) on paper for 8 and 64 devices: an all-reduce of ``V`` bytes
over ``N`` devices costs ``2(N−1)·α + 2(N−1)/N · V/β`` as a ring or ``2⌈log₂N⌉·(α + V/β)`` as a
tree (latency ``α``, link bandwidth ``β``; the faster is taken), so the efficiency is
``t_step / (t_step + t_allreduce)`` (no overlap of communication with the backward pass), with
``t_step`` the measured one-device step time and ``α, β`` of typical interconnects (assumed, printed). On 2 cores, expect no gain from more
host devices: the point here is the overhead.

    .venv/bin/python benchmarks/scaling.py [--steps 2000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B = 100
SEEDS = 4
_DTYPE_BYTES = {"f32": 4, "f16": 2, "bf16": 2, "f64": 8, "s32": 4, "u32": 4, "s8": 1, "u8": 1, "pred": 1}


def allreduce_bytes(hlo: str) -> tuple[int, int]:
    """(bytes, ops): the result sizes of all all-reduce instructions in an HLO module text."""
    total = ops = 0
    for line in hlo.splitlines():
        m = re.search(r"=\s*(.*?)\s+all-reduce(?:-start)?\(", line)
        if not m:
            continue
        ops += 1
        for dt, dims in re.findall(r"\b(f32|f16|bf16|f64|s32|u32|s8|u8|pred)\[([\d,]*)\]", m.group(1)):
            n = 1
            for d in filter(None, dims.split(",")):
                n *= int(d)
            total += n * _DTYPE_BYTES[dt]
    return total, ops


def child(devices: int, steps: int) -> dict:
    os.environ.setdefault("TFDS_DATA_DIR", os.path.join(ROOT, "runs", "tensorflow_datasets"))
    import jax

    from dlcore import parallel as par
    from dlcore.data import load_dataset
    from dlcore.nn import MLP
    from dlcore.optim import optimizer_fn
    from dlcore.sweep import init_states, run_seeds
    from dlcore.train import Recipe

    assert jax.device_count() == devices, jax.devices()
    data = load_dataset("mnist1d")
    recipe = Recipe(MLP(widths=(100, 100), num_outputs=10), optimizer_fn("adam"))
    hp = {"learning_rate": 1e-2}
    out = {"devices": devices}
    kw = dict(hparams=hp, num_steps=steps, batch_size=B, eval_every=steps, progress=False, evaluate_test=False)
    seed = run_seeds(recipe, data, list(range(SEEDS)), seed_devices=devices, data_devices=1, **kw)
    out["seed_parallel_seed_steps_per_s"] = seed.timing["steps_per_s"] * SEEDS
    dp = run_seeds(recipe, data, [0], seed_devices=1, data_devices=devices, **kw)
    out["data_parallel_steps_per_s"] = dp.timing["steps_per_s"]
    out["data_parallel_val_acc"] = float(dp.final["val/accuracy"][0])
    if devices > 1:
        mesh = par.make_mesh(1, devices)
        state = init_states(recipe, [0], hp, data.x_train[:1])
        state = jax.tree.map(lambda a: a[0], state)
        step = par.data_parallel_train_step(recipe, mesh)
        batch = {"x": data.x_train[:B], "y": data.y_train[:B]}
        hlo = step.lower(par.replicate(state, mesh), par.shard_batch(batch, mesh)).compile().as_text()
        out["allreduce_bytes_per_step"], out["allreduce_ops_per_step"] = allreduce_bytes(hlo)
    out["num_params"] = int(sum(a.size for a in jax.tree.leaves(dp.state.params)))
    return out


def run_child(devices: int, steps: int) -> dict:
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f]
    env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])
    p = subprocess.run([sys.executable, __file__, "--child", str(devices), "--steps", str(steps)], env=env,
                       capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise SystemExit(f"child with {devices} devices failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def allreduce_s(n: int, nbytes: float, alpha_s: float, beta_bps: float) -> float:
    """The faster of a ring (bandwidth-optimal) and a binary tree (latency-optimal) all-reduce."""
    ring = 2 * (n - 1) * alpha_s + 2 * (n - 1) / n * nbytes / beta_bps
    tree = 2 * math.ceil(math.log2(n)) * (alpha_s + nbytes / beta_bps)
    return min(ring, tree)


# Assumed interconnects (latency per hop, bandwidth per link): orders of magnitude, not measurements.
LINKS = {
    "NVLink-class GPU link (5 us, 100 GB/s)": (5e-6, 100e9),
    "TPU ICI-class link (5 us, 50 GB/s)": (5e-6, 50e9),
    "25 GbE between hosts (30 us, 3 GB/s)": (30e-6, 3e9),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.steps)))
        return
    t0 = time.perf_counter()
    rows = [run_child(d, args.steps) for d in (1, 2, 4)]
    base = rows[0]
    print(f"MNIST-1D MLP 40-100-100-10 ({base['num_params']:,} params), Adam, batch {B}, {args.steps} steps; "
          f"CPU host devices on {os.cpu_count()} cores")
    print(f"{'devices':>7} | {'seed-parallel seed-steps/s':>26} | {'x vs 1':>6} | {'data-parallel steps/s':>21} | "
          f"{'x vs 1':>6} | {'DP overhead ms/step':>19} | {'val acc':>7}")
    for r in rows:
        d_ms = (1 / r["data_parallel_steps_per_s"] - 1 / base["data_parallel_steps_per_s"]) * 1e3
        print(f"{r['devices']:>7} | {r['seed_parallel_seed_steps_per_s']:>26,.0f} | "
              f"{r['seed_parallel_seed_steps_per_s'] / base['seed_parallel_seed_steps_per_s']:>6.2f} | "
              f"{r['data_parallel_steps_per_s']:>21,.0f} | "
              f"{r['data_parallel_steps_per_s'] / base['data_parallel_steps_per_s']:>6.2f} | {d_ms:>19.3f} | "
              f"{r['data_parallel_val_acc']:>7.3f}")
    vol = max(r.get("allreduce_bytes_per_step", 0) for r in rows)
    ops = max(r.get("allreduce_ops_per_step", 0) for r in rows)
    print(f"\nall-reduced per data-parallel step (compiled HLO): {vol:,} bytes in {ops} all-reduce op(s) "
          f"(gradients: 4 B x {base['num_params']:,} params = {4 * base['num_params']:,} B, plus loss/metrics)")
    t_step = 1 / base["data_parallel_steps_per_s"]
    print(f"\nweak scaling on paper (per-device batch {B}, step compute {t_step * 1e6:.0f} us as measured on 1 CPU "
          f"device; all-reduce of {vol:,} B, the faster of ring and tree):")
    for name, (alpha, beta) in LINKS.items():
        cells = []
        for n in (8, 64):
            t_ar = allreduce_s(n, vol, alpha, beta)
            cells.append(f"{n} devices: {t_step / (t_step + t_ar):6.1%} (all-reduce {t_ar * 1e6:,.0f} us)")
        print(f"  {name:<40} " + " | ".join(cells))
    # The CPU host "interconnect" as measured: extra time per step against one device.
    for r in rows[1:]:
        extra = 1 / r["data_parallel_steps_per_s"] - t_step
        print(f"  CPU host devices, measured on {r['devices']}: +{extra * 1e6:,.0f} us/step for {vol:,} B "
              f"(effective {vol / max(extra, 1e-9) / 1e6:,.0f} MB/s; cores shared, threads synchronised per step)")
    print(f"\nratios to compare across runs: seed-parallel x{rows[1]['seed_parallel_seed_steps_per_s'] / base['seed_parallel_seed_steps_per_s']:.2f} "
          f"on 2 devices; data-parallel x{rows[1]['data_parallel_steps_per_s'] / base['data_parallel_steps_per_s']:.2f} on 2, "
          f"x{rows[2]['data_parallel_steps_per_s'] / base['data_parallel_steps_per_s']:.2f} on 4 "
          f"(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
