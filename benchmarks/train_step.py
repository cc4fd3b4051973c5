"""dlcore's training overhead vs a minimal hand-written jax+optax `lax.scan` loop.

Same work in both: MNIST-1D MLP 40-100-100-10, Adam 1e-2, batch 100, 6000 steps, per-epoch keyed
permutations, softmax cross-entropy. Runs are interleaved and repeated; the ratio is taken within
each round (the machine is noisy: compare ratios, not absolute times across runs).

    .venv/bin/python benchmarks/train_step.py [--steps 6000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlcore.data import load_dataset
from dlcore.nn import MLP
from dlcore.optim import optimizer_fn
from dlcore.train import Recipe, fit

WIDTHS = (40, 100, 100, 10)
B = 100


def flops_per_step(batch: int = B) -> float:
    # forward 2·B·Σ(in·out); backward ≈ 2× forward (grads w.r.t. inputs and weights)
    return 3 * 2 * batch * sum(a * b for a, b in zip(WIDTHS[:-1], WIDTHS[1:]))


def handwritten(data, steps: int, seed: int = 0):
    """A minimal jax+optax scan loop: the baseline dlcore must stay close to."""
    key = jax.random.PRNGKey(seed)
    params = []
    for i, (a, b) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:])):
        k = jax.random.fold_in(key, i)
        params.append((jax.random.normal(k, (a, b)) * np.sqrt(1 / a), jnp.zeros(b)))
    tx = optax.adam(1e-2)
    x, y = data.x_train, data.y_train
    n = x.shape[0]
    spe = n // B

    def loss_fn(p, xb, yb):
        h = xb
        for w, bias in p[:-1]:
            h = jax.nn.relu(h @ w + bias)
        logits = h @ p[-1][0] + p[-1][1]
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    @jax.jit
    def run(params, key):
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
        return p, losses

    run(params, key)[1].block_until_ready()  # compile
    t0 = time.perf_counter()
    run(params, key)[1].block_until_ready()
    return steps / (time.perf_counter() - t0)


def dlcore_fit(data, steps: int, eval_every: int):
    r = Recipe(MLP(widths=(100, 100), num_outputs=10), optimizer_fn("adam"))
    res = fit(r, data, 0, hparams={"learning_rate": 1e-2}, num_steps=steps, batch_size=B,
              eval_every=eval_every, progress=False)
    return res.timing["steps_per_s"], float(res.final["test/accuracy"])


def dlcore_fit_unguarded(data, steps: int):
    """Ablation: dlcore's loop without the NaN guard and per-step metrics (where the overhead goes).

    The guard selects (``jnp.where``) the parameters and model state of every step, so a
    non-finite step leaves the run at its last finite parameters; it used to select the optimizer
    state too, which cost 12% of this 9-MFLOP step (its moments then have two consumers and are
    materialised twice). Not a supported mode.
    """
    import optax

    from dlcore.train import _step

    def unguarded(recipe, state, hp, grads, total, new_ms):
        gn = optax.global_norm(grads)
        u, o = recipe.optimizer(hp).update(grads, state.opt_state, state.params)
        return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, u), opt_state=o,
                             model_state=new_ms), gn

    guarded, _step.apply_gradients = _step.apply_gradients, unguarded
    try:
        r = Recipe(MLP(widths=(100, 100), num_outputs=10), optimizer_fn("adam"), metrics=None)
        res = fit(r, data, 0, hparams={"learning_rate": 1e-2}, num_steps=steps, batch_size=B,
                  eval_every=steps, progress=False)
    finally:
        _step.apply_gradients = guarded
    return res.timing["steps_per_s"]


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    a = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    data = load_dataset("mnist1d")
    peak = matmul_peak()
    rows = []
    for r in range(args.rounds):
        base = handwritten(data, args.steps)
        one_chunk, acc = dlcore_fit(data, args.steps, args.steps)
        chunked, _ = dlcore_fit(data, args.steps, 500)
        bare = dlcore_fit_unguarded(data, args.steps)
        rows.append((base, one_chunk, chunked, bare, acc))
        print(f"round {r}: hand-written {base:8.0f} steps/s | dlcore fit 1 chunk {one_chunk:8.0f} "
              f"| dlcore fit chunks of 500 (+eval) {chunked:8.0f} | ablation: no guard/metrics {bare:8.0f} "
              f"| test acc {acc:.3f}")
    base, one, chunk, bare, acc = np.median(np.asarray(rows), axis=0)
    ratio_one = np.median([r[1] / r[0] for r in rows])
    ratio_chunk = np.median([r[2] / r[0] for r in rows])
    ratio_bare = np.median([r[3] / r[0] for r in rows])
    f = flops_per_step()
    print()
    print(f"float32 matmul peak (2048², jnp.dot): {peak:.0f} GFLOP/s")
    print(f"MLP step: {f / 1e6:.1f} MFLOP")
    print(f"{'loop':<40}{'steps/s':>10}{'GFLOP/s':>10}{'% peak':>9}{'vs hand':>9}")
    for name, sps, ratio in (("hand-written jax+optax lax.scan", base, 1.0),
                             ("dlcore.fit, one chunk", one, ratio_one),
                             ("dlcore.fit, eval every 500 steps", chunk, ratio_chunk),
                             ("ablation: no NaN guard, no step metrics", bare, ratio_bare)):
        print(f"{name:<40}{sps:>10.0f}{sps * f / 1e9:>10.1f}{100 * sps * f / 1e9 / peak:>8.1f}%{ratio:>9.2f}")
    print(f"overhead ratio (target >= 0.9): {ratio_one:.2f} one chunk, {ratio_chunk:.2f} with evaluation; "
          f"{ratio_bare:.2f} without the NaN guard and per-step metrics (what the rest of the gap is)")


if __name__ == "__main__":
    main()
