"""Classic ML: dlcore's k-NN and closed-form least squares vs scikit-learn / NumPy, one run.

1. k-NN on digits: every test point (359) against the 1,438 training images (64 features,
   standardized), k = 5, L2 and L1: ``dlcore.classic.knn_predict`` (jitted, blocked ``lax.map``)
   vs ``KNeighborsClassifier(algorithm="brute")``. Predictions are checked equal.
2. Closed-form least squares on a random N × D problem (float32 for both sides): dlcore's
   ``lstsq`` (SVD), ``qr`` and ``normal`` paths vs ``numpy.linalg.lstsq`` and NumPy's normal
   equations (``solve(XᵀX, Xᵀy)``).

Calls are interleaved and repeated; each figure is the median over rounds and each ratio is taken
within this run (the machine is noisy: compare ratios, not absolute times across runs).

    .venv/bin/python benchmarks/classic.py [--rounds 7] [--n 20000] [--d 100] [--large]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np


def _time(fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _interleaved(fns: dict, rounds: int) -> dict[str, float]:
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            times[k] += _time(f, 1)
    return {k: float(np.median(v)) for k, v in times.items()}


def bench_knn(rounds: int, large: bool) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    from dlcore.classic import knn_predict
    from dlcore.data import fit_standardizer, generate_digits

    d = generate_digits()
    x_tr, x_te = d["x"].reshape(len(d["x"]), -1), d["x_test"].reshape(len(d["x_test"]), -1)
    s = fit_standardizer(x_tr)
    x_tr, x_te, y_tr = np.asarray(s(x_tr)), np.asarray(s(x_te)), d["y"]
    problems = [("digits", x_tr, y_tr, x_te)]
    if large:
        rng = np.random.default_rng(0)
        xl = rng.normal(size=(10_000, 64)).astype(np.float32)
        problems.append(("10k x 10k, D=64", xl, rng.integers(0, 10, 10_000), xl))
    print(f"== k-NN, k=5 (median of {rounds})")
    print(f"{'problem':<18}{'metric':<8}{'dlcore ms':>11}{'sklearn ms':>12}{'sklearn/dlcore':>16}  equal")
    for name, xt, yt, xq in problems:
        for metric, sk_metric in (("l2", "euclidean"), ("l1", "manhattan")):
            if name != "digits" and metric == "l1":
                continue  # L1 at 10k x 10k is left out to keep the run short
            sk = KNeighborsClassifier(n_neighbors=5, algorithm="brute", metric=sk_metric).fit(xt, yt)
            xt_j, yt_j, xq_j = jax.device_put(xt), jax.device_put(yt), jax.device_put(xq)

            def ours(xt_j=xt_j, yt_j=yt_j, xq_j=xq_j, metric=metric):
                return knn_predict(xt_j, yt_j, xq_j, k=5, metric=metric, num_classes=10).block_until_ready()

            def ref(sk=sk, xq=xq):
                return sk.predict(xq)

            equal = bool(np.array_equal(np.asarray(ours()), ref()))  # also warms up (compiles) ours
            t = _interleaved({"dlcore": ours, "sklearn": ref}, rounds)
            print(f"{name:<18}{metric:<8}{t['dlcore'] * 1e3:>11.2f}{t['sklearn'] * 1e3:>12.2f}"
                  f"{t['sklearn'] / t['dlcore']:>16.2f}  {equal}")


def bench_lstsq(rounds: int, n: int, dim: int) -> None:
    from dlcore.classic import least_squares

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = (x @ rng.normal(size=dim) + 0.1 * rng.normal(size=n)).astype(np.float32)
    xj, yj = jax.device_put(x), jax.device_put(y)
    fns, sols = {}, {}
    for method in ("lstsq", "qr", "normal"):
        f = jax.jit(lambda a, b, m=method: least_squares(a, b, method=m))
        sols[method] = np.asarray(f(xj, yj))  # compile outside the timing
        fns[f"dlcore {method}"] = lambda f=f: f(xj, yj).block_until_ready()
    fns["numpy lstsq"] = lambda: np.linalg.lstsq(x, y, rcond=None)
    fns["numpy normal"] = lambda: np.linalg.solve(x.T @ x, x.T @ y)
    ref = np.linalg.lstsq(x.astype(np.float64), y.astype(np.float64), rcond=None)[0]
    t = _interleaved(fns, rounds)
    print(f"\n== closed-form least squares, N={n}, D={dim}, float32 (median of {rounds})")
    print(f"{'solver':<16}{'ms':>10}{'vs numpy lstsq':>16}{'max |θ − θ_f64|':>18}")
    errs = {f"dlcore {m}": np.max(np.abs(sols[m] - ref)) for m in sols}
    errs["numpy lstsq"] = np.max(np.abs(np.linalg.lstsq(x, y, rcond=None)[0] - ref))
    errs["numpy normal"] = np.max(np.abs(np.linalg.solve(x.T @ x, x.T @ y) - ref))
    for k, v in t.items():
        print(f"{k:<16}{v * 1e3:>10.2f}{t['numpy lstsq'] / v:>15.2f}x{errs[k]:>18.2e}")
    print(f"(ratio > 1: faster than numpy.linalg.lstsq; dlcore lstsq / numpy lstsq time = "
          f"{t['dlcore lstsq'] / t['numpy lstsq']:.2f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--d", type=int, default=100)
    p.add_argument("--large", action="store_true", help="also k-NN (L2) on a 10k x 10k problem")
    a = p.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}")
    bench_knn(a.rounds, a.large)
    bench_lstsq(a.rounds, a.n, a.d)


if __name__ == "__main__":
    main()
