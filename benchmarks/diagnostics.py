"""Cost of collecting per-layer statistics inside the compiled loop (target: < 10% at every 100 steps).

MNIST-1D MLP 40-100-100-10, Adam 1e-2, batch 100, 6000 steps; runs interleaved, ratio per round.

    .venv/bin/python benchmarks/diagnostics.py [--rounds 3]
"""

from __future__ import annotations

import argparse

import numpy as np

from dlcore.data import load_dataset
from dlcore.diagnostics import layer_stats_fn, time_recipe
from dlcore.nn import MLP
from dlcore.optim import optimizer_fn
from dlcore.train import Recipe, fit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6000)
    args = ap.parse_args()
    data = load_dataset("mnist1d")
    r = Recipe(MLP(widths=(100, 100), num_outputs=10), optimizer_fn("adam"))
    kw = dict(hparams={"learning_rate": 1e-2}, num_steps=args.steps, batch_size=100, eval_every=500, progress=False)
    print(time_recipe(r, data, hparams=kw["hparams"], batch_size=100, num_steps=args.steps, probe_steps=500))
    ratios = []
    for i in range(args.rounds):
        plain = fit(r, data, 0, **kw).timing["steps_per_s"]
        every100 = fit(r, data, 0, stats_fn=layer_stats_fn(r, "relu"), stats_every=100, **kw).timing["steps_per_s"]
        every10 = fit(r, data, 0, stats_fn=layer_stats_fn(r, "relu"), stats_every=10, **kw).timing["steps_per_s"]
        ratios.append((plain / every100 - 1, plain / every10 - 1))
        print(f"round {i}: plain {plain:,.0f} steps/s | stats every 100: {every100:,.0f} | every 10: {every10:,.0f}")
    c100, c10 = np.median(np.asarray(ratios), axis=0)
    print(f"extra time for statistics: every 100 steps {100 * c100:+.1f}% (target < 10%), every 10 steps {100 * c10:+.1f}%")


if __name__ == "__main__":
    main()
