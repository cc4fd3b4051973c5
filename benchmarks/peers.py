"""dlcore vs its peers, side by side: PyTorch (a loop over seeds, all seeds batched with ``bmm``),
the ``dlcore run`` command as a whole process, and a hand-written ``jit(vmap(scan))``.

MNIST-1D MLP 40-100-100-10, Adam 1e-2, batch 100, 6000 steps, 32 seeds (the ``mnist1d_mlp``
experiment), the same data for everyone: MNIST-1D is loaded once through
``dlcore.data.load_dataset`` (the CLI's split: 3600 train / 400 validation / 1000 test,
standardized) and handed to the peers as NumPy arrays in a ``.npz`` file. Every peer is its own
process, timed from start to exit by this script (``process_s``); each also reports its training
phase (``train_s``: initialisation, compilation where there is one, training, the validation
evaluation every 500 steps and the final test evaluation):

* ``torch_loop``   PyTorch eager, a Python loop over seeds (``nn.Linear``, ``torch.optim.Adam``);
* ``torch_bmm``    PyTorch, all seeds as stacked weights ``[S, in, out]`` and ``baddbmm``, one Adam
                   over the stacked tensors (element-wise, so each seed's update is its own),
                   ``torch.set_flush_denormal(True)``;
* ``dlcore``       ``dlcore run mnist1d_mlp --seeds S --no-progress --no-tensorboard --out TMP`` (the
                   default placement; ``train_s`` is the ``wall`` it prints);
* ``jax_vmap``     hand-written single-device ``jit(vmap(scan))``: the whole run one ``lax.scan``,
                   vmapped over seeds, optax Adam (``train_s`` includes compilation).

Same initialisation everywhere: Flax's ``Dense`` default (LeCun normal, truncated at 2σ, zero
bias). Data order: a fresh permutation per epoch and seed (each framework its own generator).
Peers run interleaved (the order rotates every round), ``--rounds`` times; the medians and the
ratios are printed (> 1: dlcore is faster). The machine is noisy: compare ratios from one run.

    .venv/bin/python benchmarks/peers.py                       # full size: 32 seeds, 6000 steps, 3 rounds
    .venv/bin/python benchmarks/peers.py --seeds 4 --steps 600 --rounds 2 --json runs/peers.json

Needs the ``bench`` extra (``pip install -e '.[bench]'``: a CPU build of PyTorch); without torch
the PyTorch peers are skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WIDTHS = (40, 100, 100, 10)
B = 100
LR = 1e-2
EVAL_EVERY = 500
PEERS = ("torch_loop", "torch_bmm", "dlcore", "jax_vmap")
_HOST_FLAG = "--xla_force_host_platform_device_count"


def have_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def export_data(path: str) -> dict:
    """Load MNIST-1D as ``dlcore run mnist1d_mlp`` does and save the NumPy arrays to ``path``."""
    import numpy as np

    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    from mnist1d_mlp import get_config

    from dlcore.cli._build import build_dataset

    data = build_dataset(get_config().dataset)
    arrays = {k: np.asarray(getattr(data, k)) for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
    np.savez(path, **arrays)
    return {k: list(v.shape) for k, v in arrays.items()}


def load_data(path: str) -> dict:
    import numpy as np

    with np.load(path) as f:
        return {k: np.array(f[k]) for k in f.files}  # writable copies (torch.as_tensor warns otherwise)


# ---------------------------------------------------------------------------------------------
# PyTorch peers (importable: benchmarks/gpu.py runs them on the accelerator)


def _torch_lecun_(w, fan_in: int, gen):
    """Flax's default kernel init: truncated normal (±2σ), variance 1/fan_in (std corrected for truncation)."""
    import torch

    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
    with torch.no_grad():
        torch.nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std, generator=gen)
    return w


def _torch_data(data: dict, device: str):
    """Flush-to-zero on, and the splits as tensors on ``device``: train, val, test inputs and labels."""
    import torch

    torch.set_flush_denormal(True)
    out = []
    for split in ("train", "val", "test"):
        out += [torch.as_tensor(data[f"x_{split}"], device=device),
                torch.as_tensor(data[f"y_{split}"], device=device).long()]
    return out


def torch_loop(data: dict, seeds: int, steps: int, device: str = "cpu") -> dict:
    """One ``nn.Sequential`` MLP per seed, trained one after another (eager PyTorch)."""
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    x, y, xv, yv, xt, yt = _torch_data(data, device)
    n = x.shape[0]
    spe = n // B
    accs = []
    for s in range(seeds):
        gen = torch.Generator().manual_seed(s)
        layers = []
        for i, (a, b) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:])):
            lin = torch.nn.Linear(a, b)
            _torch_lecun_(lin.weight, a, gen)
            torch.nn.init.zeros_(lin.bias)
            layers += [lin, torch.nn.ReLU()] if i < len(WIDTHS) - 2 else [lin]
        model = torch.nn.Sequential(*layers).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        perm = None
        for t in range(steps):
            j = t % spe
            if j == 0:
                perm = torch.randperm(n, generator=gen).to(device)
            idx = perm[j * B:(j + 1) * B]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if (t + 1) % EVAL_EVERY == 0:
                with torch.no_grad():
                    float((model(xv).argmax(-1) == yv).float().mean())
        with torch.no_grad():
            accs.append(float((model(xt).argmax(-1) == yt).float().mean()))
    return dict(train_s=time.perf_counter() - t0, test_acc=sum(accs) / len(accs), test_acc_per_seed=accs,
                threads=torch.get_num_threads(), device=device)


def torch_bmm(data: dict, seeds: int, steps: int, device: str = "cpu") -> dict:
    """All seeds as stacked weights ``[S, in, out]``: ``baddbmm`` per layer, one Adam over the stacks."""
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    x, y, xv, yv, xt, yt = _torch_data(data, device)
    n = x.shape[0]
    spe = n // B
    gens = [torch.Generator().manual_seed(s) for s in range(seeds)]
    params = []
    for a, b in zip(WIDTHS[:-1], WIDTHS[1:]):
        w = torch.stack([_torch_lecun_(torch.empty(a, b), a, g) for g in gens]).to(device).requires_grad_()
        params += [w, torch.zeros(seeds, 1, b, device=device, requires_grad=True)]
    opt = torch.optim.Adam(params, lr=LR)

    def forward(xs):  # xs [S, N, 40] -> logits [S, N, 10]
        h = xs
        for i in range(0, len(params), 2):
            h = torch.baddbmm(params[i + 1], h, params[i])
            if i < len(params) - 2:
                h = torch.relu(h)
        return h

    def accuracy(xe, ye):
        with torch.no_grad():
            return (forward(xe.expand(seeds, *xe.shape)).argmax(-1) == ye).float().mean(-1)

    perm = None
    for t in range(steps):
        j = t % spe
        if j == 0:
            perm = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)  # [S, N]
        idx = perm[:, j * B:(j + 1) * B]  # [S, B]
        logits = forward(x[idx])
        # Sum over seeds of each seed's mean loss: every seed gets exactly its own gradient.
        loss = F.cross_entropy(logits.reshape(-1, WIDTHS[-1]), y[idx].reshape(-1), reduction="sum") / B
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (t + 1) % EVAL_EVERY == 0:
            accuracy(xv, yv).sum().item()
    accs = accuracy(xt, yt).cpu().tolist()
    return dict(train_s=time.perf_counter() - t0, test_acc=sum(accs) / len(accs), test_acc_per_seed=accs,
                threads=torch.get_num_threads(), device=device)


# ---------------------------------------------------------------------------------------------
# Hand-written JAX peer


def jax_vmap(data: dict, seeds: int, steps: int) -> dict:
    """Plain JAX + optax: the whole run one ``lax.scan``, ``jit(vmap)`` over seeds, one device."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    t0 = time.perf_counter()
    x, y = jnp.asarray(data["x_train"]), jnp.asarray(data["y_train"])
    xv, yv = jnp.asarray(data["x_val"]), jnp.asarray(data["y_val"])
    xt, yt = jnp.asarray(data["x_test"]), jnp.asarray(data["y_test"])
    n = x.shape[0]
    spe = n // B
    tx = optax.adam(LR)
    kinit = jax.nn.initializers.lecun_normal()  # Flax Dense's default

    def init(key):
        return [(kinit(jax.random.fold_in(key, i), (a, b)), jnp.zeros(b))
                for i, (a, b) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:]))]

    def apply(p, h):
        for w, bias in p[:-1]:
            h = jax.nn.relu(h @ w + bias)
        return h @ p[-1][0] + p[-1][1]

    def loss_fn(p, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(apply(p, xb), yb).mean()

    def run_one(key):
        params = init(key)
        n_ep = steps // spe + 1
        perms = jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(key, 10_000 + e), n))(jnp.arange(n_ep))
        idx = perms[:, : spe * B].reshape(-1, B)[:steps].reshape(-1, EVAL_EVERY, B) if steps % EVAL_EVERY == 0 \
            else perms[:, : spe * B].reshape(-1, B)[:steps].reshape(1, steps, B)

        def step(carry, i):
            p, o = carry
            loss, g = jax.value_and_grad(loss_fn)(p, x[i], y[i])
            u, o = tx.update(g, o, p)
            return (optax.apply_updates(p, u), o), loss

        def chunk(carry, idx_chunk):  # eval_every steps, then a validation evaluation (as dlcore does)
            carry, _ = jax.lax.scan(step, carry, idx_chunk)
            return carry, jnp.mean(jnp.argmax(apply(carry[0], xv), -1) == yv)

        (p, _), val = jax.lax.scan(chunk, (params, tx.init(params)), idx)
        return jnp.mean(jnp.argmax(apply(p, xt), -1) == yt), val

    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(seeds))
    fn = jax.jit(jax.vmap(run_one))
    t1 = time.perf_counter()
    compiled = fn.lower(keys).compile()
    t2 = time.perf_counter()
    acc, _ = jax.block_until_ready(compiled(keys))
    t3 = time.perf_counter()
    accs = np.asarray(acc).tolist()
    return dict(train_s=t3 - t0, compile_s=t2 - t1, run_s=t3 - t2, test_acc=float(np.mean(accs)),
                test_acc_per_seed=accs, devices=len(jax.devices()), backend=jax.default_backend())


# ---------------------------------------------------------------------------------------------
# Processes


def _env(host_devices: int | None) -> dict:
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if _HOST_FLAG not in f]
    if host_devices:
        flags.append(f"{_HOST_FLAG}={host_devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    return env


def _timed(cmd: list[str], env: dict, timeout: float) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    return time.perf_counter() - t0, p


def run_peer(name: str, seeds: int, steps: int, npz: str, tmp: str, timeout: float = 3600,
             device: str | None = None) -> dict:
    """Run one peer as a fresh process; ``process_s`` is its wall time from start to exit."""
    if name == "dlcore":
        out = os.path.join(tmp, "runs")
        cmd = [sys.executable, "-m", "dlcore.cli", "run", "mnist1d_mlp", "--seeds", str(seeds), "--no-progress",
               "--no-tensorboard", "--out", out, f"--config.num_steps={steps}"]
        wall, p = _timed(cmd, _env(None), timeout)  # the CLI chooses its own host devices
        if p.returncode != 0:
            raise RuntimeError(f"dlcore run failed (rc {p.returncode}):\n{p.stderr[-3000:]}")
        return dict(parse_dlcore_output(p.stdout), process_s=wall)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--seeds", str(seeds), "--steps", str(steps),
           "--data", npz] + (["--device", device] if device else [])
    wall, p = _timed(cmd, _env(1 if name == "jax_vmap" else None), timeout)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"{name} failed (rc {p.returncode}):\n{p.stderr[-3000:]}")
    return dict(json.loads(lines[-1][len("RESULT "):]), process_s=wall)


def parse_dlcore_output(stdout: str) -> dict:
    """Training phase, compile time, devices and the test accuracy from ``dlcore run``'s output."""
    res: dict = {}
    m = re.search(r"wall ([\d.]+) s \(compile ([\d.]+) s\)", stdout)
    if m:
        res["train_s"], res["compile_s"] = float(m.group(1)), float(m.group(2))
    m = re.search(r"(\w+) × (\d+) devices?", stdout)
    if m:
        res["backend"], res["devices"] = m.group(1), int(m.group(2))
    for key in ("startup_s", "outputs_s"):  # printed by the CLI once it measures them (issue 18)
        m = re.search(key.replace("_s", "") + r" ([\d.]+) s", stdout)
        if m:
            res[key] = float(m.group(1))
    m = re.search(r"outputs: (\S+)", stdout)
    if m and os.path.exists(os.path.join(m.group(1), "results.csv")):
        import csv

        with open(os.path.join(m.group(1), "results.csv")) as f:
            accs = [float(r["test/accuracy"]) for r in csv.DictReader(f) if r.get("test/accuracy")]
        if accs:
            res["test_acc"], res["test_acc_per_seed"] = sum(accs) / len(accs), accs
    if "test_acc" not in res:
        m = re.search(r"test/accuracy\s+([\d.]+)", stdout)
        if m:
            res["test_acc"] = float(m.group(1))
    return res


def ratio(a: float | None, b: float | None) -> float:
    return b / a if a and b else float("nan")


def summarize(results: dict[str, list[dict]]) -> dict:
    med = {}
    for name, rs in results.items():
        med[name] = {k: statistics.median(r[k] for r in rs) for k in ("process_s", "train_s", "test_acc")
                     if all(k in r for r in rs)}
    get = lambda p, k: med.get(p, {}).get(k)  # noqa: E731
    ratios = {
        "dlcore_process_vs_torch_bmm_process": ratio(get("dlcore", "process_s"), get("torch_bmm", "process_s")),
        "dlcore_train_vs_torch_bmm_train": ratio(get("dlcore", "train_s"), get("torch_bmm", "train_s")),
        "dlcore_process_vs_torch_loop_process": ratio(get("dlcore", "process_s"), get("torch_loop", "process_s")),
        "dlcore_process_vs_jax_vmap_process": ratio(get("dlcore", "process_s"), get("jax_vmap", "process_s")),
        "dlcore_train_vs_jax_vmap_train": ratio(get("dlcore", "train_s"), get("jax_vmap", "train_s")),
        "torch_bmm_vs_torch_loop_process": ratio(get("torch_bmm", "process_s"), get("torch_loop", "process_s")),
    }
    return {"median": med, "ratios": ratios}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=None, choices=PEERS, help="peers to run (default: all)")
    ap.add_argument("--json", default=None, help="also write medians, ratios and every round here")
    ap.add_argument("--worker", default=None, choices=PEERS, help=argparse.SUPPRESS)
    ap.add_argument("--data", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--device", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        data = load_data(args.data)
        fn = {"torch_loop": torch_loop, "torch_bmm": torch_bmm, "jax_vmap": jax_vmap}[args.worker]
        kw = {"device": args.device} if args.device and args.worker != "jax_vmap" else {}
        print("RESULT " + json.dumps(fn(data, args.seeds, args.steps, **kw)), flush=True)
        return

    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    peers = [p for p in (args.only or PEERS) if have_torch() or not p.startswith("torch")]
    if len(peers) < len(args.only or PEERS):
        print("torch is not installed (pip install -e '.[bench]'): PyTorch peers skipped")
    tmp = tempfile.mkdtemp(prefix="dlcore_peers_")
    try:
        npz = os.path.join(tmp, "mnist1d.npz")
        shapes = export_data(npz)
        print(f"MNIST-1D MLP {'-'.join(map(str, WIDTHS))}, Adam {LR:g}, batch {B}, {args.steps} steps, "
              f"{args.seeds} seeds; {os.cpu_count()} CPUs; data {shapes['x_train']} train / {shapes['x_test']} test; "
              f"every line a fresh process")
        print(f"{'round':>5} {'peer':<11}{'process s':>10}{'train s':>9}{'test acc':>10}")
        results: dict[str, list[dict]] = {p: [] for p in peers}
        for r in range(args.rounds):
            order = peers[r % len(peers):] + peers[: r % len(peers)]  # rotate: no peer always goes first
            for name in order:
                res = run_peer(name, args.seeds, args.steps, npz, tmp)
                shutil.rmtree(os.path.join(tmp, "runs"), ignore_errors=True)
                results[name].append(res)
                print(f"{r + 1:>5} {name:<11}{res['process_s']:>10.2f}{res.get('train_s', float('nan')):>9.2f}"
                      f"{res.get('test_acc', float('nan')):>10.4f}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = summarize(results)
    print(f"\nmedians over {args.rounds} rounds")
    for name, m in summary["median"].items():
        print(f"  {name:<11} process {m.get('process_s', float('nan')):7.2f} s   train {m.get('train_s', float('nan')):7.2f} s"
              f"   test acc {m.get('test_acc', float('nan')):.4f}")
    print("ratios (> 1: the first is faster)")
    for k, v in summary["ratios"].items():
        print(f"  {k:<40} {v:6.2f}×")
    print("targets: dlcore process vs torch_bmm process ≥ 1.5×; vs torch_loop process ≥ 6×; test acc ≈ 0.67 for all")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(dict(summary, config=dict(seeds=args.seeds, steps=args.steps, rounds=args.rounds,
                                                batch_size=B, learning_rate=LR, widths=WIDTHS, cpus=os.cpu_count()),
                           rounds=results), f, indent=1)


if __name__ == "__main__":
    main()
