"""Seed sweeps: vmapped vs one after another, dlcore vs a hand-written ``jit(vmap(scan))``, 1 vs 2
host devices, and a 4 learning rates × 8 seeds grid — measured in one run.

MNIST-1D MLP 40-100-100-10, Adam 1e-2, batch 100 (the issue's setup; 6000 steps by default).
Every configuration runs in its own subprocess (``XLA_FLAGS`` must be set before JAX is
imported, and ``ru_maxrss`` is per process), one after another:

* ``dlcore vmap 1dev``      ``dlcore.sweep.run_seeds`` on ONE host device, S = 1, 8, 32;
* ``dlcore sequential``     the same library, the S seeds one after another (one compiled
                            ``Loop`` reused, so compilation is paid once);
* ``jax jit(vmap(scan))``   a plain hand-written JAX baseline: the whole run is one
                            ``lax.scan``, vmapped over 32 seeds, on one device;
* ``dlcore default``        ``run_seeds`` with the seeds split over 2 host devices
                            (``--xla_force_host_platform_device_count=2``; the ``dlcore`` CLI's
                            default on a 2-core machine) — target ≥ 1.6× the JAX baseline;
* ``dlcore grid 4×8``       ``dlcore.sweep.run_study``: 4 learning rates × 8 seeds (vectorized
                            learning rate: one program), 2 host devices.

Times: ``run`` excludes compilation, ``total`` is the whole call (init, compile, run, evaluation).
Each configuration's GFLOP/s (9.0 MFLOP per seed-step, as ``train_step.py`` counts) is also given as
a percentage of this machine's float32 matmul peak, measured first in its own subprocess.
Peak memory: ``ru_maxrss`` of the subprocess (includes the JAX runtime, ~0.3–0.5 GB).

    .venv/bin/python benchmarks/seed_sweep.py [--steps 6000] [--only NAME ...]

``--models``: seed sweeps of a CNN and an RNN — ``ConvBase1D`` on MNIST-1D, LeNet-5 on the digits
(8×8 upsampled to 32×32) and a GRU (MNIST-1D read as 40 steps of one feature, 32 hidden) — each
*vmapped* (``jit(vmap(scan))``), *sequential* (one compiled ``jit(scan)`` run per seed) and
*grouped*: vmapped with ``dlcore.nn.conv_as_matmul`` (each convolution as patches @ kernel, so
the seeds fold into the batch axis of the patch extraction and into a batched matmul, instead of
the feature-grouped convolution that ``vmap`` makes). A hand-written Adam loop, batch 100, one
process, rounds interleaved; seed-steps/s (compilation excluded) and the pick per model:

    .venv/bin/python benchmarks/seed_sweep.py --models [--seeds 8] [--steps 1000] [--rounds 3]

``--compile-levels``: dlcore's training chunk (an MLP sweep and a grouped ConvBase1D sweep) compiled
at LLVM -O3 (XLA's default), -O2 (dlcore's training programs on CPU) and -O1 (its run-once
programs): compile seconds, run seconds and whether the results have the same bits.

The machine is noisy (and shared): compare the ratios printed by one run, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WIDTHS = (40, 100, 100, 10)
B = 100


def _data():
    os.environ.setdefault("TFDS_DATA_DIR", os.path.join(ROOT, "runs", "tensorflow_datasets"))
    from dlcore.data import load_dataset

    return load_dataset("mnist1d")


def _recipe():
    from dlcore.nn import MLP
    from dlcore.optim import optimizer_fn
    from dlcore.train import Recipe

    return Recipe(MLP(widths=WIDTHS[1:-1], num_outputs=WIDTHS[-1]), optimizer_fn("adam"))


def worker_dlcore_vmap(seeds: int, steps: int) -> dict:
    import jax

    from dlcore.sweep import run_seeds

    data = _data()
    t0 = time.perf_counter()
    res = run_seeds(_recipe(), data, seeds, hparams={"learning_rate": 1e-2}, num_steps=steps, batch_size=B,
                    eval_every=500, progress=False)
    jax.block_until_ready(res.state.params)
    total = time.perf_counter() - t0
    return dict(total_s=total, run_s=res.timing["run_s"], compile_s=res.timing["compile_s"],
                test_acc=float(res.final["test/accuracy"].mean()), devices=len(jax.devices()))


def worker_dlcore_sequential(seeds: int, steps: int) -> dict:
    import jax

    from dlcore.train import Loop, init_state, run_loop

    data, recipe = _data(), _recipe()
    loop = Loop(recipe, data, num_steps=steps, batch_size=B, eval_every=500, progress=False)  # compiled once, reused
    t0 = time.perf_counter()
    run_s, accs = 0.0, []
    for s in range(seeds):
        state = init_state(recipe, s, {"learning_rate": 1e-2}, data.x_train[:1])
        res = run_loop(loop, state)
        jax.block_until_ready(res.state.params)
        run_s += res.timing["run_s"]
        accs.append(float(res.final["test/accuracy"]))
    total = time.perf_counter() - t0
    return dict(total_s=total, run_s=run_s, compile_s=loop.compile_s, test_acc=sum(accs) / len(accs),
                devices=len(jax.devices()))


def worker_jax_baseline(seeds: int, steps: int) -> dict:
    """Plain JAX: hand-written MLP + optax Adam, the whole run one lax.scan, jit(vmap) over seeds."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import NamedSharding, PartitionSpec as P

    data = _data()
    x, y = data.x_train, data.y_train
    n = x.shape[0]
    spe = n // B
    tx = optax.adam(1e-2)

    def init(key):
        params = []
        for i, (a, b) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:])):
            params.append((jax.random.normal(jax.random.fold_in(key, i), (a, b)) * np.sqrt(1 / a), jnp.zeros(b)))
        return params

    def loss_fn(p, xb, yb):
        h = xb
        for w, bias in p[:-1]:
            h = jax.nn.relu(h @ w + bias)
        return optax.softmax_cross_entropy_with_integer_labels(h @ p[-1][0] + p[-1][1], yb).mean()

    def run_one(key):
        params = init(key)
        opt = tx.init(params)
        n_ep = steps // spe + 1
        perms = jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(key, e), n))(jnp.arange(n_ep))
        idx = perms[:, : spe * B].reshape(-1, B)[:steps]

        def body(carry, i):
            p, o = carry
            loss, g = jax.value_and_grad(loss_fn)(p, x[i], y[i])
            u, o = tx.update(g, o, p)
            return (optax.apply_updates(p, u), o), loss

        (p, _), losses = jax.lax.scan(body, (params, opt), idx)
        h = data.x_test
        for w, bias in p[:-1]:
            h = jax.nn.relu(h @ w + bias)
        acc = jnp.mean(jnp.argmax(h @ p[-1][0] + p[-1][1], -1) == data.y_test)
        return acc, losses

    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(seeds))
    devs = jax.devices()
    kw = {}
    if len(devs) > 1 and seeds % len(devs) == 0:  # seeds split over host devices, no collectives
        mesh = jax.make_mesh((len(devs),), ("s",), axis_types=(jax.sharding.AxisType.Auto,))
        keys = jax.device_put(keys, NamedSharding(mesh, P("s")))
        kw = dict(out_shardings=NamedSharding(mesh, P("s")))
    fn = jax.jit(jax.vmap(run_one), **kw)
    t0 = time.perf_counter()
    compiled = fn.lower(keys).compile()
    t1 = time.perf_counter()
    acc, losses = compiled(keys)
    jax.block_until_ready((acc, losses))
    t2 = time.perf_counter()
    return dict(total_s=t2 - t0, run_s=t2 - t1, compile_s=t1 - t0, test_acc=float(acc.mean()), devices=len(devs))


def worker_dlcore_grid(seeds: int, steps: int) -> dict:
    import jax

    from dlcore.sweep import Setup, run_study, space_from_spec
    from dlcore.train import RunOptions

    data, recipe = _data(), _recipe()
    space = space_from_spec({"learning_rate": {"scale": "log", "values": (1e-3, 3e-3, 1e-2, 3e-2)}})
    setup = Setup(recipe, RunOptions(num_steps=steps, batch_size=B, eval_every=500), {"learning_rate": 1e-2})
    t0 = time.perf_counter()
    res = run_study(space, lambda s: setup, data, seeds, keep_states=False, progress=False)
    total = time.perf_counter() - t0
    return dict(total_s=total, run_s=res.timing["run_s"], compile_s=res.timing["compile_s"],
                test_acc=float(res.metrics["test/accuracy"][res.selected[0]].mean()), devices=len(jax.devices()),
                best_lr=res.points[res.selected[0]]["learning_rate"])


def worker_peak(seeds: int, steps: int) -> dict:
    """The float32 matmul peak of this machine (2048² ``jnp.dot``, best of 5, every core)."""
    sys.path.insert(0, HERE)
    from train_step import matmul_peak

    return dict(gflops=matmul_peak())


def flops_per_seed_step() -> float:
    # forward 2·B·Σ(in·out); backward ≈ 2× forward: the figure benchmarks/train_step.py uses
    return 3 * 2 * B * sum(a * b for a, b in zip(WIDTHS[:-1], WIDTHS[1:]))


WORKERS = {
    "peak": worker_peak,
    "dlcore_vmap": worker_dlcore_vmap,
    "dlcore_sequential": worker_dlcore_sequential,
    "jax_baseline": worker_jax_baseline,
    "dlcore_grid": worker_dlcore_grid,
}

# (label, worker, seeds, host devices)
CONFIGS = [
    ("dlcore vmap 1dev S=1", "dlcore_vmap", 1, 1),
    ("dlcore sequential S=1", "dlcore_sequential", 1, 1),
    ("dlcore vmap 1dev S=8", "dlcore_vmap", 8, 1),
    ("dlcore sequential S=8", "dlcore_sequential", 8, 1),
    ("dlcore vmap 1dev S=32", "dlcore_vmap", 32, 1),
    ("dlcore sequential S=32", "dlcore_sequential", 32, 1),
    ("jax jit(vmap(scan)) 1dev S=32", "jax_baseline", 32, 1),
    ("jax jit(vmap(scan)) 2dev S=32", "jax_baseline", 32, 2),
    ("dlcore default 2dev S=32", "dlcore_vmap", 32, 2),
    ("dlcore grid 4lr×8 2dev", "dlcore_grid", 8, 2),
]


def _worker_main(name: str, seeds: int, steps: int) -> None:
    import resource

    out = WORKERS[name](seeds, steps)
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out), flush=True)


def _spawn(name: str, seeds: int, devices: int, steps: int) -> dict:
    env = dict(os.environ)
    flags = " ".join(f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f)
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--seeds", str(seeds), "--steps", str(steps)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"{name} S={seeds} failed (rc {p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def _model_cases():
    import numpy as np

    from dlcore.data import generate_digits
    from dlcore.models import ConvBase1D, LeNet5
    from dlcore.nn import RNNModel

    d = _data()
    mnist = (np.asarray(d.x_train), np.asarray(d.y_train))
    g = generate_digits()
    x = np.kron(g["x"] / 16.0, np.ones((1, 4, 4, 1), np.float32)).astype(np.float32)  # 8x8 -> 32x32
    digits = (x, np.asarray(g["y"], np.int32))
    return {
        "convbase1d": (ConvBase1D(), mnist),
        "lenet5_digits": (LeNet5(), digits),
        "gru": (RNNModel(hidden_size=32, num_outputs=10, cell="gru"), mnist),
    }


def _model_programs(model, data, seeds: int, steps: int) -> dict:
    """name -> a function that trains ``seeds`` runs of ``model`` for ``steps`` steps (compiled)."""
    import jax
    import jax.numpy as jnp
    import optax

    from dlcore.nn import conv_as_matmul

    x, y = jnp.asarray(data[0]), jnp.asarray(data[1])
    n = x.shape[0]
    tx = optax.adam(1e-3)

    def make_run(grouped: bool):
        def apply(p, xb):
            if grouped:
                with conv_as_matmul():
                    return model.apply({"params": p}, xb, train=True)
            return model.apply({"params": p}, xb, train=True)

        def run(key):
            p = model.init(key, x[:1], train=False)["params"]

            def step(c, t):
                p, o = c
                i = jax.random.randint(jax.random.fold_in(key, t), (B,), 0, n)
                loss, g = jax.value_and_grad(
                    lambda p: optax.softmax_cross_entropy_with_integer_labels(apply(p, x[i]), y[i]).mean())(p)
                u, o = tx.update(g, o, p)
                return (optax.apply_updates(p, u), o), loss

            (_, _), losses = jax.lax.scan(step, (p, tx.init(p)), jnp.arange(steps))
            return losses[-100:].mean()

        return run

    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(seeds))
    one = jax.jit(make_run(False)).lower(keys[0]).compile()
    vm = jax.jit(jax.vmap(make_run(False))).lower(keys).compile()
    gr = jax.jit(jax.vmap(make_run(True))).lower(keys).compile()
    return {
        "vmapped": lambda: vm(keys),
        "sequential": lambda: jnp.stack([one(k) for k in keys]),
        "grouped": lambda: gr(keys),
    }


def models_main(seeds: int, steps: int, rounds: int, only=None) -> dict:
    import statistics

    import jax

    out = {}
    print(f"seed sweeps of a CNN and an RNN: {seeds} seeds, {steps} steps, batch {B}, Adam 1e-3; "
          f"seed-steps/s, median of {rounds} interleaved rounds, compilation excluded")
    print(f"{'model':<15}{'vmapped':>10}{'sequential':>12}{'grouped':>10}   {'vmap/seq':>9}{'grouped/seq':>12}  pick"
          f"   final loss (vmapped, grouped)")
    for name, (model, data) in _model_cases().items():
        if only and not any(o in name for o in only):
            continue
        progs = _model_programs(model, data, seeds, steps)
        times = {k: [] for k in progs}
        losses = {}
        for r in range(rounds):
            for k in (list(progs) if r % 2 == 0 else list(reversed(progs))):
                t0 = time.perf_counter()
                losses[k] = jax.block_until_ready(progs[k]())
                times[k].append(time.perf_counter() - t0)
        rate = {k: seeds * steps / statistics.median(v) for k, v in times.items()}
        pick = max(rate, key=rate.get)
        out[name] = dict(seed_steps_per_s=rate, pick=pick,
                         final_loss={k: float(v.mean()) for k, v in losses.items()})
        print(f"{name:<15}{rate['vmapped']:>10,.0f}{rate['sequential']:>12,.0f}{rate['grouped']:>10,.0f}   "
              f"{rate['vmapped'] / rate['sequential']:>9.2f}{rate['grouped'] / rate['sequential']:>12.2f}  {pick:<10}"
              f" {float(losses['vmapped'].mean()):.4f}, {float(losses['grouped'].mean()):.4f}", flush=True)
    print("grouped = vmapped with dlcore.nn.conv_as_matmul (the GRU has no convolution: grouped == vmapped)")
    return out


def compile_levels_main(rounds: int) -> dict:
    """LLVM optimization levels (XLA's ``xla_backend_optimization_level``) for dlcore's training chunk
    on CPU: compile seconds and run seconds per level, one process, runs interleaved. dlcore compiles
    its training programs at ``dlcore.host.TRAIN_COMPILER_OPTIONS`` and run-once programs
    (initialisers, data splits) at ``ONCE_COMPILER_OPTIONS`` on CPU."""
    import statistics

    import jax
    import jax.numpy as jnp
    import numpy as np

    from dlcore.models import ConvBase1D
    from dlcore.nn import MLP
    from dlcore.optim import optimizer_fn
    from dlcore.sweep import init_states
    from dlcore.train import Recipe
    from dlcore.train._fit import _chunk_fn

    data = _data()
    cases = {
        "MLP sweep, 16 seeds × 500 steps": (Recipe(MLP(widths=(100, 100), num_outputs=10), optimizer_fn("adam")), 16, 500),
        "ConvBase1D sweep (matmul), 8 seeds × 100 steps": (
            Recipe(ConvBase1D(), optimizer_fn("adam"), conv_impl="matmul"), 8, 100),
    }
    out = {}
    print(f"dlcore's training chunk compiled at each LLVM level (1 device; median of {rounds} interleaved runs)")
    print(f"{'program':<48}{'level':>6}{'compile s':>11}{'run s':>9}{'run vs -O3':>12}  same bits as -O3")
    for name, (recipe, seeds, steps) in cases.items():
        st = init_states(recipe, np.arange(seeds), {"learning_rate": np.full(seeds, 1e-2, np.float32)},
                         data.x_train[:1])
        fn = jax.jit(jax.vmap(_chunk_fn(recipe, B, steps), in_axes=(0, None, None, None)))
        args = (st, jnp.int32(0), data.x_train, data.y_train)
        low = fn.lower(*args)
        comp, compile_s = {}, {}
        for lv in (3, 2, 1):
            t0 = time.perf_counter()
            comp[lv] = low.compile(compiler_options={"xla_backend_optimization_level": lv})
            compile_s[lv] = time.perf_counter() - t0
        times, outs = {lv: [] for lv in comp}, {}
        for _ in range(rounds):
            for lv, c in comp.items():
                jax.block_until_ready(c(*args))  # warm
                t0 = time.perf_counter()
                outs[lv] = jax.block_until_ready(c(*args))
                times[lv].append(time.perf_counter() - t0)
        row = {}
        for lv in comp:
            run = statistics.median(times[lv])
            same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(outs[lv]), jax.tree.leaves(outs[3])))
            row[f"O{lv}"] = dict(compile_s=compile_s[lv], run_s=run, same_bits_as_O3=same)
            print(f"{name:<48}{lv:>6}{compile_s[lv]:>11.2f}{run:>9.3f}{statistics.median(times[3]) / run:>11.2f}×  {same}",
                  flush=True)
        out[name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--models", action="store_true", help="CNN/RNN seed sweeps: vmapped vs sequential vs grouped")
    ap.add_argument("--rounds", type=int, default=3, help="with --models/--compile-levels: interleaved rounds")
    ap.add_argument("--compile-levels", action="store_true",
                    help="the training chunk compiled at LLVM -O3/-O2/-O1: compile and run time")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--only", nargs="*", default=None, help="labels (substrings) of the configurations to run")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--seeds", type=int, default=1, help="with --models: seeds per sweep (default 8)")
    args = ap.parse_args()
    if args.worker:
        _worker_main(args.worker, args.seeds, args.steps)
        return
    if args.compile_levels:
        res = compile_levels_main(args.rounds if args.rounds != 3 else 5)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1)
        return
    if args.models:
        res = models_main(args.seeds if args.seeds != 1 else 8, args.steps, args.rounds, args.only)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1)
        return

    print(f"MNIST-1D MLP {'-'.join(map(str, WIDTHS))}, Adam 1e-2, batch {B}, {args.steps} steps; "
          f"{os.cpu_count()} CPUs; each line a fresh subprocess")
    peak = _spawn("peak", 1, 1, 0)["gflops"]
    print(f"float32 matmul peak (2048² jnp.dot, all cores): {peak:.0f} GFLOP/s; a seed-step is "
          f"{flops_per_seed_step() / 1e6:.1f} MFLOP")
    print(f"{'configuration':<32}{'total s':>9}{'run s':>9}{'compile s':>11}{'seed-steps/s':>14}{'GFLOP/s':>9}"
          f"{'% peak':>8}{'peak MB':>9}{'test acc':>10}")
    res = {"matmul_peak_gflops": peak}
    for label, worker, seeds, devices in CONFIGS:
        if args.only and not any(o in label for o in args.only):
            continue
        r = _spawn(worker, seeds, devices, args.steps)
        runs = seeds * (4 if worker == "dlcore_grid" else 1)
        r["seed_steps_per_s"] = runs * args.steps / r["run_s"]
        r["gflops"] = r["seed_steps_per_s"] * flops_per_seed_step() / 1e9
        r["percent_of_peak"] = 100 * r["gflops"] / peak
        res[label] = r
        print(f"{label:<32}{r['total_s']:>9.1f}{r['run_s']:>9.1f}{r['compile_s']:>11.1f}"
              f"{r['seed_steps_per_s']:>14,.0f}{r['gflops']:>9.1f}{r['percent_of_peak']:>7.1f}%"
              f"{r['maxrss_mb']:>9.0f}{r['test_acc']:>10.4f}", flush=True)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)

    def ratio(a, b, key="run_s"):
        if a in res and b in res:
            return res[b][key] / res[a][key]
        return float("nan")

    print("\nratios (> 1: the first is faster / smaller)")
    for s in (1, 8, 32):
        a, b = f"dlcore vmap 1dev S={s}", f"dlcore sequential S={s}"
        print(f"  vmapped vs sequential, S={s:<3} run {ratio(a, b):5.2f}×   total {ratio(a, b, 'total_s'):5.2f}×   "
              f"peak memory {ratio(a, b, 'maxrss_mb'):5.2f}×")
    base = "jax jit(vmap(scan)) 1dev S=32"
    print(f"  dlcore default (2 host devices) vs JAX jit(vmap(scan)) 1 device, 32 seeds: run "
          f"{ratio('dlcore default 2dev S=32', base):.2f}×  total {ratio('dlcore default 2dev S=32', base, 'total_s'):.2f}×"
          "  (target ≥ 1.6×)")
    print(f"  dlcore vmap 1 device vs JAX jit(vmap(scan)) 1 device, 32 seeds: run "
          f"{ratio('dlcore vmap 1dev S=32', base):.2f}×  (dlcore's per-step extras: metrics, NaN guard, evaluation)")
    print(f"  JAX jit(vmap(scan)) 2 devices vs 1 device: run {ratio('jax jit(vmap(scan)) 2dev S=32', base):.2f}×")
    print(f"  dlcore 2 devices vs 1 device, 32 seeds: run {ratio('dlcore default 2dev S=32', 'dlcore vmap 1dev S=32'):.2f}×")
    print(f"  grid 4 lr × 8 seeds vs 32 seeds of one lr (both 2 devices): run "
          f"{ratio('dlcore grid 4lr×8 2dev', 'dlcore default 2dev S=32'):.2f}×")
    if "dlcore grid 4lr×8 2dev" in res:
        print(f"  grid: best learning rate {res['dlcore grid 4lr×8 2dev']['best_lr']:g} (validation)")


if __name__ == "__main__":
    main()
