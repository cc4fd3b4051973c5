"""The accelerator benchmark (``make bench-gpu``, under 8 minutes): seed-throughput from vmapping,
the CNN zoo's steps/s and the PyTorch peers on the same device, written to one JSON file.

Sections (each on JAX's default backend; PyTorch on ``cuda`` when it sees one, else the CPU):

* ``seed_sweep``  ``dlcore.sweep.run_seeds`` on the MNIST-1D MLP (40-100-100-10, Adam 1e-2,
                  batch 100) with 1 and with 64 seeds: seed-steps/s of each (compilation
                  excluded) and their ratio (target ≥ 20× on a GPU: one small run leaves it idle);
* ``jax_vmap``    the hand-written ``jit(vmap(scan))`` of ``benchmarks/peers.py`` with 64 seeds;
* ``zoo``         forward+backward+SGD steps/s of CNN zoo models at the sizes of
                  ``benchmarks/models.py`` (median of rounds);
* ``torch``       ``benchmarks/peers.py``'s PyTorch peers on the same device: all seeds batched
                  with ``bmm`` (64 seeds) and the Python loop over seeds (a few seeds; seed-steps/s);
                  ``{"skipped": why}`` without torch.

``--tiny`` runs every section at toy sizes (CPU, < 60 s) — that is what the tests run.

On the accelerator machine, JAX needs its CUDA build (the project's dependencies install the CPU
one): ``.venv/bin/pip install -U "jax[cuda12]"`` (or ``jax[cuda13]``, matching the driver) before
``make bench-gpu``; the ``bench`` extra's ``torch==2.13.0`` from PyPI is already a CUDA build there.
The JSON records both backends; a run where JAX stayed on the CPU says so and warns.

    .venv/bin/python benchmarks/gpu.py --json runs/bench_gpu.json      # on the accelerator
    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/gpu.py --tiny --json /tmp/gpu_tiny.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT, os.path.join(ROOT, "experiments")]

FULL = dict(steps=6000, sweep_seeds=64, loop_seeds=4, zoo=("mnist1d_convbase", "lenet5", "simple_cnn_digits",
            "vgg11_small", "resnet18_small", "convnext_small", "unet_small"), zoo_seconds=2.0, zoo_rounds=3)
TINY = dict(steps=100, sweep_seeds=4, loop_seeds=2, zoo=("mnist1d_convbase", "simple_cnn_digits"), zoo_seconds=0.2,
            zoo_rounds=2)


def seed_sweep(data, steps: int, seeds: int) -> dict:
    from peers import B, LR, WIDTHS

    from dlcore.nn import MLP
    from dlcore.optim import optimizer_fn
    from dlcore.sweep import run_seeds
    from dlcore.train import Recipe

    recipe = Recipe(MLP(widths=WIDTHS[1:-1], num_outputs=WIDTHS[-1]), optimizer_fn("adam"))
    out = {}
    for s in (1, seeds):
        t0 = time.perf_counter()
        res = run_seeds(recipe, data, s, hparams={"learning_rate": LR}, num_steps=steps, batch_size=B,
                        eval_every=min(500, steps), progress=False)
        out[f"seeds_{s}"] = dict(
            seeds=s, total_s=time.perf_counter() - t0, compile_s=res.timing["compile_s"], run_s=res.timing["run_s"],
            seed_steps_per_s=s * steps / res.timing["run_s"], test_acc=float(res.final["test/accuracy"].mean()))
    out["seed_throughput_ratio"] = out[f"seeds_{seeds}"]["seed_steps_per_s"] / out["seeds_1"]["seed_steps_per_s"]
    out["target_ratio"] = 20.0
    return out


def zoo(names, seconds: float, rounds: int) -> dict:
    import jax
    import models as zoo_bench  # benchmarks/models.py

    cases = zoo_bench.cases()
    prepared = {}
    for name in names:
        model, shape, task = cases[name]
        compiled, carry, x, y, compile_s = zoo_bench.setup(model, shape, task)
        prepared[name] = dict(c=compiled, carry=carry, x=x, y=y, compile_s=compile_s, rates=[],
                              params=int(sum(a.size for a in jax.tree.leaves(carry[0]))))
    for _ in range(rounds):  # interleaved rounds, medians
        for p in prepared.values():
            p["carry"], sps = zoo_bench.time_steps(p["c"], p["carry"], p["x"], p["y"], seconds)
            p["rates"].append(sps)
    return {name: dict(input=list(p["x"].shape), params=p["params"], compile_s=p["compile_s"],
                       steps_per_s=statistics.median(p["rates"]),
                       examples_per_s=statistics.median(p["rates"]) * p["x"].shape[0])
            for name, p in prepared.items()}


def torch_peers(arrays: dict, steps: int, seeds: int, loop_seeds: int) -> dict:
    """The PyTorch peers, each in its own process (no thread pools or device memory shared with JAX)."""
    import subprocess
    import tempfile

    import numpy as np

    import peers

    if not peers.have_torch():
        return {"skipped": "torch is not installed (pip install -e '.[bench]')"}
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__, torch.cuda.is_available(), "
                            "torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"],
                           capture_output=True, text=True, check=True).stdout.split(maxsplit=2)
    device = "cuda" if probe[1] == "True" else "cpu"
    out = {"device": device, "version": probe[0], "device_name": probe[2].strip() if len(probe) > 2 else ""}
    with tempfile.TemporaryDirectory(prefix="dlcore_gpu_bench_") as tmp:
        npz = os.path.join(tmp, "mnist1d.npz")
        np.savez(npz, **arrays)
        for name, s in (("bmm", seeds), ("loop", loop_seeds)):
            r = peers.run_peer(f"torch_{name}", s, steps, npz, tmp, device=device)
            out[name] = dict(seeds=s, train_s=r["train_s"], process_s=r["process_s"],
                             seed_steps_per_s=s * steps / r["train_s"], test_acc=r["test_acc"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="toy sizes (CPU, < 60 s): what the tests run")
    ap.add_argument("--json", default=os.path.join(ROOT, "runs", "bench_gpu.json"), help="output file")
    ap.add_argument("--skip", nargs="*", default=(), choices=("seed_sweep", "jax_vmap", "zoo", "torch"))
    args = ap.parse_args()
    cfg = TINY if args.tiny else FULL
    os.environ.setdefault("TFDS_DATA_DIR", os.path.join(ROOT, "runs", "tensorflow_datasets"))
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave device memory to the torch peers
    t_start = time.perf_counter()
    import jax
    import numpy as np

    import peers
    from mnist1d_mlp import get_config  # experiments/

    from dlcore.cli._build import build_dataset

    data = build_dataset(get_config().dataset)
    arrays = {k: np.asarray(getattr(data, k)) for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
    dev = jax.devices()[0]
    result = dict(
        tiny=args.tiny, config=dict(cfg, batch_size=peers.B, learning_rate=peers.LR, widths=peers.WIDTHS),
        jax=dict(version=jax.__version__, backend=jax.default_backend(), device_kind=dev.device_kind,
                 device_count=jax.device_count()),
        host=dict(cpus=os.cpu_count(), machine=platform.machine(), python=platform.python_version()),
    )
    sections = {
        "seed_sweep": lambda: seed_sweep(data, cfg["steps"], cfg["sweep_seeds"]),
        "jax_vmap": lambda: dict(peers.jax_vmap(arrays, cfg["sweep_seeds"], cfg["steps"]), seeds=cfg["sweep_seeds"]),
        "zoo": lambda: zoo(cfg["zoo"], cfg["zoo_seconds"], cfg["zoo_rounds"]),
        "torch": lambda: torch_peers(arrays, cfg["steps"], cfg["sweep_seeds"], cfg["loop_seeds"]),
    }
    for name, fn in sections.items():
        if name in args.skip:
            continue
        t0 = time.perf_counter()
        result[name] = fn()
        print(f"{name}: {time.perf_counter() - t0:.1f} s", flush=True)
    if "jax_vmap" in result:
        r = result["jax_vmap"]
        r["seed_steps_per_s"] = r["seeds"] * cfg["steps"] / r["run_s"]
    sw, tb = result.get("seed_sweep"), result.get("torch", {}).get("bmm")
    if sw and tb:  # same seeds, same steps, same device class; compilation excluded for dlcore
        result["dlcore_vs_torch_bmm_seed_steps"] = (
            sw[f"seeds_{cfg['sweep_seeds']}"]["seed_steps_per_s"] / tb["seed_steps_per_s"])
    result["total_s"] = time.perf_counter() - t_start
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    tmp = f"{args.json}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, default=float)
    os.replace(tmp, args.json)
    if result["jax"]["backend"] == "cpu" and result.get("torch", {}).get("device") == "cuda":
        print("WARNING: PyTorch sees a GPU but JAX runs on the CPU: install jax[cuda12] (see the docstring)")
    if sw:
        print(f"seed-throughput {cfg['sweep_seeds']} seeds vs 1: {sw['seed_throughput_ratio']:.1f}× (target ≥ 20× on GPU)")
    if "dlcore_vs_torch_bmm_seed_steps" in result:
        print(f"dlcore {cfg['sweep_seeds']}-seed sweep vs PyTorch bmm, seed-steps/s: "
              f"{result['dlcore_vs_torch_bmm_seed_steps']:.2f}×")
    print(f"wrote {args.json} ({result['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
