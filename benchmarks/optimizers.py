"""Optimizers side by side, and what early stopping and the LR finder cost.

1. Full-batch iterations to reach a tolerance on the ravine quadratic (κ = 100) and Rosenbrock, for
   the first-order optimizers (tuned rates as stated) and Newton / L-BFGS / (for a curve fit) GN /
   LM — the lectures' "when you can, use a 2nd order method: it's just faster".
2. MNIST-1D MLP (40-100-100-10, Adam 1e-2, batch 100) sweep of 8 seeds: steps/s with and without
   the early-stopping hook (interleaved rounds; compare ratios within a round).
3. Wall time of :func:`lr_find` (100 steps) and :func:`lr_drop_check` (4 rates × 100 steps).

    .venv/bin/python benchmarks/optimizers.py [--steps 2000] [--rounds 2] [--plot runs/opt.png]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.data import load_dataset
from dlcore.nn import MLP
from dlcore.optim import least_squares, minimize, optimizer_fn
from dlcore.train import EarlyStopping, lr_drop_check, lr_find
from dlcore.sweep import run_seeds
from dlcore.train import Recipe


def ravine(x):
    return 0.5 * (x[0] ** 2 + 100.0 * x[1] ** 2)


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


def first_hit(losses, tol):
    hit = np.nonzero(np.asarray(losses) <= tol)[0]
    return int(hit[0]) if hit.size else None


def part1(plot: str | None):
    print("== iterations to reach the tolerance (full batch) ==")
    cases = {
        "ravine f<1e-6 from (1,1)": (ravine, jnp.array([1.0, 1.0]), 1e-6, 2000, {
            "sgd (α=2/101)": ("sgd", dict(learning_rate=2 / 101)),
            "momentum (α=.019, β=.9)": ("momentum", dict(learning_rate=0.019, momentum=0.9)),
            "heavy ball tuned (α=4/121, β=(9/11)²)": (
                "momentum", dict(learning_rate=4 / 121, momentum=(9 / 11) ** 2)),
            "nesterov (α=.01, β=.9)": ("nesterov", dict(learning_rate=0.01, momentum=0.9)),
            "rmsprop (α=.01)": ("rmsprop", dict(learning_rate=0.01)),
            "adam (α=.1)": ("adam", dict(learning_rate=0.1)),
            "newton": ("newton", {}),
            "lbfgs": ("lbfgs", {}),
        }),
        "rosenbrock f<1e-6 from (-1.2,1)": (rosenbrock, jnp.array([-1.2, 1.0]), 1e-6, 20000, {
            "sgd (α=1e-3)": ("sgd", dict(learning_rate=1e-3)),
            "momentum (α=1e-3, β=.9)": ("momentum", dict(learning_rate=1e-3, momentum=0.9)),
            "adam (α=.02)": ("adam", dict(learning_rate=0.02)),
            "newton": ("newton", {}),
            "lbfgs": ("lbfgs", {}),
        }),
    }
    results = {}
    for case, (f, x0, tol, steps, methods) in cases.items():
        print(f"-- {case} (budget {steps})")
        for label, (m, opts) in methods.items():
            n = steps if m not in ("newton", "lbfgs") else 100
            t0 = time.perf_counter()
            r = minimize(f, x0, method=m, num_steps=n, **opts)
            dt = time.perf_counter() - t0
            k = first_hit(r.losses, tol)
            print(f"   {label:42s} {('>' + str(n)) if k is None else k:>7} iters   final f={float(r.fun):.2e}   "
                  f"{dt:.2f} s incl. compile")
            if case.startswith("rosenbrock"):
                results[label] = r
    t = jnp.linspace(0, 3, 40)
    y = 2.5 * jnp.exp(-1.3 * t) + 0.5
    print("-- curve fit a·exp(−b t)+c, ½‖r‖² < 1e-10 from (1, .5, 0)")
    for m in ("gauss_newton", "levenberg_marquardt"):
        r = least_squares(lambda p: p[0] * jnp.exp(-p[1] * t) + p[2] - y, jnp.array([1.0, 0.5, 0.0]), method=m,
                          num_steps=100)
        print(f"   {m:42s} {first_hit(r.losses, 1e-10)!s:>7} iters   final f={float(r.fun):.2e}")
    if plot:
        from dlcore.plots import plot_trajectories

        plot_trajectories(rosenbrock, results, plot, bounds=((-1.6, 1.4), (-0.5, 1.5)), title="Rosenbrock")
        print(f"   trajectories plotted to {plot}")


def part2(steps: int, rounds: int):
    print("== MNIST-1D MLP sweep, 8 seeds: early-stopping hook overhead ==")
    data = load_dataset("mnist1d")
    r = Recipe(MLP(widths=(100, 100), num_outputs=10), optimizer_fn("adam"))
    kw = dict(hparams={"learning_rate": 1e-2}, num_steps=steps, batch_size=100, eval_every=steps // 10,
              progress=False, evaluate_test=False)
    for rnd in range(rounds):
        base = run_seeds(r, data, 8, **kw)
        # patience larger than the number of evaluations: the hook runs every time, nothing stops.
        es = run_seeds(r, data, 8, early_stopping=EarlyStopping(patience=100), **kw)
        b, e = base.timing["steps_per_s"], es.timing["steps_per_s"]
        print(f"   round {rnd}: plain {b:,.0f} steps/s, with early stopping {e:,.0f} steps/s, ratio {e / b:.3f}")
    # The hook alone (jitted, vmapped over 8 seeds), against one chunk of eval_every steps.
    from dlcore.sweep import init_states
    from dlcore.train import Loop
    loop = Loop(r, data, num_steps=steps, batch_size=100, eval_every=steps // 10, batched=True,
                early_stopping=EarlyStopping(patience=100))
    st = loop.start(init_states(r, list(range(8)), kw["hparams"], data.x_train[:1]))
    val = loop.evaluate(st)
    jax.block_until_ready(loop.after_eval(st, val))
    t0 = time.perf_counter()
    for _ in range(50):
        st = jax.block_until_ready(loop.after_eval(st, val))
    hook = (time.perf_counter() - t0) / 50
    st, _ = loop.run_chunk(st, 0, steps // 10)
    jax.block_until_ready(st)
    t0 = time.perf_counter()
    st, _ = loop.run_chunk(st, steps // 10, steps // 10)
    jax.block_until_ready(st)
    chunk = time.perf_counter() - t0
    print(f"   hook {hook * 1e3:.2f} ms per evaluation vs {chunk * 1e3:.0f} ms per {steps // 10}-step chunk "
          f"({100 * hook / chunk:.2f}%)")
    stop = run_seeds(r, data, 8, early_stopping=EarlyStopping(patience=3, metric="accuracy", mode="max"),
                     **{**kw, "num_steps": 4 * steps})
    print(f"   accuracy, patience 3, {4 * steps} steps: stop steps {np.asarray(stop.state.stop_step).tolist()}, "
          f"loop ended at step {int(stop.history['eval_step'][-1])}, best val acc "
          f"{np.round(stop.final['val/accuracy'], 3).tolist()}")
    return data, r


def part3(data, r):
    print("== LR finder ==")
    t0 = time.perf_counter()
    res = lr_find(r, data, 0, batch_size=100, min_lr=1e-5, max_lr=10.0, num_steps=100)
    t1 = time.perf_counter()
    chk = lr_drop_check(r, data, 0, batch_size=100)
    t2 = time.perf_counter()
    print(f"   lr_find: {t1 - t0:.2f} s, suggestion {res.suggestion:.3g}, loss minimum at {res.lr_at_min:.3g}, "
          f"diverged at step {res.diverged_at}")
    print(f"   lr_drop_check: {t2 - t1:.2f} s, initial loss {chk.initial_loss[0]:.3f} (log C = "
          f"{chk.expected_initial_loss:.3f})")
    for lr, f, d in zip(chk.learning_rates, chk.final_loss, chk.dropped):
        print(f"     lr {lr:g}: loss after 100 its {f:.3f}  dropped={bool(d)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--plot", default=None)
    a = ap.parse_args()
    part1(a.plot)
    data, r = part2(a.steps, a.rounds)
    part3(data, r)


if __name__ == "__main__":
    main()
