"""Honest statistics across seeds: bootstrap CIs, the interquartile mean, probability of
improvement, paired comparisons, and a table saying which differences are resolved.

Everything random here (the bootstrap) is seeded from an explicit ``seed`` argument, so a report
recomputed from the same files prints the same numbers.

Which test when:

* two points run with the **same seeds** (a study runs every point with the same seeds, so the
  initial weights and data order of seed ``k`` are shared): *paired* — the differences
  ``a_k - b_k`` cancel the seed's luck, so fewer seeds resolve a difference;
* different seeds: *unpaired* (Welch's t interval, which does not assume equal variances).

A difference is **resolved** at confidence ``c`` when the two-sided ``c`` t-interval of the mean
difference excludes 0. ```P(A > B)`` (the probability that a run of A beats a run of B; ties count
½) is reported with an interval (Wilson's for paired seeds, a bootstrap otherwise) as an effect
size that does not assume normality.

Bootstrap intervals are too narrow with few seeds (below ~10 the percentile bootstrap of a mean
undercovers badly; with 2 seeds it spans only the two values): the t interval is the one to trust
there, and the reports print both.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np

from dlcore.stats._summary import mean_ci


def _st():
    """``scipy.stats``, imported on first use: it costs ~1 s, and ``dlcore run`` needs none of it."""
    import scipy.stats

    return scipy.stats

DEFAULT_RESAMPLES = 2000


def _as_1d(samples, name: str = "samples") -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError(f"{name} is empty; need at least one value")
    return x


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def iqm(samples) -> float:
    """Interquartile mean: the mean of the middle 50% (``scipy.stats.trim_mean(x, 0.25)``).

    Robust to a diverged or lucky seed, yet less noisy than the median.

    >>> iqm([0.0, 1.0, 2.0, 3.0, 100.0, 4.0, 5.0, 6.0])
    3.5
    """
    return float(_st().trim_mean(_as_1d(samples), 0.25))


_STATISTICS: dict[str, Callable] = {
    "mean": np.mean,
    "median": np.median,
    "iqm": lambda x, axis=-1: _st().trim_mean(x, 0.25, axis=axis),
}


def bootstrap_ci(
    samples,
    confidence: float = 0.95,
    *,
    seed: int,
    statistic: str | Callable = "mean",
    n_resamples: int = DEFAULT_RESAMPLES,
    method: str = "percentile",
) -> tuple[float, float]:
    """Bootstrap confidence interval of a statistic (``scipy.stats.bootstrap``).

    Args:
      samples: 1-D values (one per seed).
      confidence: two-sided level.
      seed: seeds the resampling (``rng=np.random.default_rng(seed)``): same inputs, same interval.
      statistic: ``"mean"``, ``"median"``, ``"iqm"`` or a vectorized ``f(x, axis) -> stat``.
      n_resamples: bootstrap resamples.
      method: ``"percentile"`` (default; stable for few seeds), ``"basic"`` or ``"BCa"``.
    Returns:
      ``(low, high)``; ``(nan, nan)`` with one sample; ``(v, v)`` when all samples equal ``v``.

    >>> bootstrap_ci([1.0, 1.0, 1.0], seed=0)
    (1.0, 1.0)
    """
    _check_confidence(confidence)
    x = _as_1d(samples)
    if x.size < 2:
        return float("nan"), float("nan")
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])  # every resample is identical: the interval is a point
    fn = _STATISTICS[statistic] if isinstance(statistic, str) else statistic
    res = _st().bootstrap(
        (x,), fn, n_resamples=n_resamples, confidence_level=confidence, method=method,
        vectorized=True, rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def describe(samples, confidence: float = 0.95, *, seed: int, n_resamples: int = DEFAULT_RESAMPLES) -> dict:
    """Per-point summary: ``n, mean, std, t_low, t_high, boot_low, boot_high, iqm, median, min, max``.

    Non-finite values (a run whose metric is NaN) are dropped and counted in ``n_dropped``.
    The t interval is :func:`mean_ci`; the bootstrap interval is of the mean (percentile method).

    >>> d = describe([0.6, 0.62, 0.61, 0.65], seed=0)
    >>> d["n"], round(d["mean"], 4), d["t_low"] < d["mean"] < d["t_high"]
    (4, 0.62, True)
    """
    _check_confidence(confidence)
    x = np.asarray(samples, dtype=np.float64).ravel()
    finite = x[np.isfinite(x)]
    nan = float("nan")
    out = dict(n=int(finite.size), n_dropped=int(x.size - finite.size))
    if finite.size == 0:
        return dict(out, mean=nan, std=nan, t_low=nan, t_high=nan, boot_low=nan, boot_high=nan, iqm=nan,
                    median=nan, min=nan, max=nan)
    m, lo, hi = mean_ci(finite, confidence)
    blo, bhi = bootstrap_ci(finite, confidence, seed=seed, n_resamples=n_resamples)
    return dict(
        out, mean=m, std=float(np.std(finite, ddof=1)) if finite.size > 1 else 0.0, t_low=lo, t_high=hi,
        boot_low=blo, boot_high=bhi, iqm=iqm(finite), median=float(np.median(finite)),
        min=float(np.min(finite)), max=float(np.max(finite)),
    )


def _p_unpaired(a, b, axis=-1):
    # P(X_a > X_b) over all pairs, ties ½ (= Mann-Whitney U / (n_a n_b)); vectorized over resamples.
    a = np.moveaxis(np.asarray(a), axis, -1)[..., :, None]
    b = np.moveaxis(np.asarray(b), axis, -1)[..., None, :]
    return np.mean((a > b) + 0.5 * (a == b), axis=(-2, -1))


def _p_paired(a, b, axis=-1):
    # P(a_k > b_k) over seeds k, ties ½.
    a, b = np.asarray(a), np.asarray(b)
    return np.mean((a > b) + 0.5 * (a == b), axis=axis)


def prob_improvement(
    a, b, *, paired: bool = False, confidence: float = 0.95, seed: int, n_resamples: int = DEFAULT_RESAMPLES
) -> tuple[float, float, float]:
    """Probability of improvement ``P(A > B)`` with a confidence interval.

    Unpaired: the probability that a random run of A beats a random run of B (ties ½), i.e.
    ``U / (n_a n_b)`` of the Mann-Whitney test; the CI is a percentile bootstrap resampling A and B
    independently (too narrow with few seeds: with every A above every B it is ``[1, 1]``).
    Paired (same seeds): the fraction ``k/n`` of seeds on which A beats B (ties ½); the CI is
    Wilson's score interval for a proportion (as ``scipy.stats.binomtest(k, n).proportion_ci(
    method="wilson")``), honest even when every seed agrees (2 of 2 wins: [0.34, 1.0]).

    Returns:
      ``(p, low, high)``; 0.5 means no improvement either way (an interval containing 0.5 is
      unresolved). ``seed`` and ``n_resamples`` are used by the unpaired bootstrap.

    >>> prob_improvement([3.0, 4.0], [1.0, 2.0], seed=0)[0]
    1.0
    >>> [round(v, 3) for v in prob_improvement([3.0, 4.0], [1.0, 2.0], paired=True, seed=0)]
    [1.0, 0.342, 1.0]
    """
    _check_confidence(confidence)
    a, b = _as_1d(a, "a"), _as_1d(b, "b")
    if paired and a.size != b.size:
        raise ValueError(f"paired samples need equal sizes (same seeds), got {a.size} and {b.size}")
    fn = _p_paired if paired else _p_unpaired
    p = float(fn(a, b))
    if paired:
        return (p,) + wilson_interval(p * a.size, a.size, confidence)
    if min(a.size, b.size) < 2:
        return p, float("nan"), float("nan")
    if np.all(a == a[0]) and np.all(b == b[0]):
        return p, p, p  # every resample is identical
    res = _st().bootstrap(
        (a, b), fn, paired=False, n_resamples=n_resamples, confidence_level=confidence, method="percentile",
        vectorized=True, rng=np.random.default_rng(seed),
    )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    # A degenerate bootstrap distribution (every resample equal) gives nan: use the point.
    return p, (lo if np.isfinite(lo) else p), (hi if np.isfinite(hi) else p)


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n`` (fractional successes allowed: ties).

    Equals ``scipy.stats.binomtest(k, n).proportion_ci(confidence, method="wilson")`` for integer k.

    >>> [round(v, 4) for v in wilson_interval(2, 2)]
    [0.3424, 1.0]
    """
    _check_confidence(confidence)
    if n < 1:
        return float("nan"), float("nan")
    z = float(_st().norm.ppf(0.5 + confidence / 2))
    ph = successes / n
    denom = 1 + z * z / n
    centre = (ph + z * z / (2 * n)) / denom
    half = z * np.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


class Comparison(NamedTuple):
    """``A - B`` on one metric: difference of means, its t-interval, a p-value and ``P(A > B)``.

    ``resolved`` is True when the interval excludes 0 (the sign of the difference is known at
    ``confidence``); ``better`` is ``"a"``, ``"b"`` or ``""`` (unresolved).
    """

    diff: float
    low: float
    high: float
    p_value: float
    prob: float
    prob_low: float
    prob_high: float
    paired: bool
    resolved: bool
    better: str
    n_a: int
    n_b: int
    confidence: float


def compare(
    a,
    b,
    *,
    paired: bool,
    confidence: float = 0.95,
    higher_is_better: bool = True,
    seed: int,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> Comparison:
    """Compare samples ``a`` and ``b`` (one value per seed).

    Paired: ``scipy.stats.ttest_rel`` on the per-seed differences (``a[k]`` and ``b[k]`` must come
    from the same seed). Unpaired: Welch's ``scipy.stats.ttest_ind(equal_var=False)``.
    Identical samples give a zero-width interval ``[0, 0]``, which is *not* resolved.

    >>> c = compare([0.70, 0.71, 0.72, 0.73], [0.60, 0.61, 0.62, 0.63], paired=True, seed=0)
    >>> round(c.diff, 4), c.resolved, c.better, c.prob
    (0.1, True, 'a', 1.0)
    """
    _check_confidence(confidence)
    a, b = _as_1d(a, "a"), _as_1d(b, "b")
    if paired and a.size != b.size:
        raise ValueError(f"paired samples need equal sizes (same seeds), got {a.size} and {b.size}")
    nan = float("nan")
    diff = float(np.mean(a) - np.mean(b))
    lo = hi = pv = nan
    if paired and a.size >= 2:
        d = a - b
        if np.all(d == d[0]):
            lo = hi = float(d[0])  # no spread: the difference is exact (resolved iff nonzero)
            pv = 1.0 if d[0] == 0 else 0.0
        else:
            r = _st().ttest_rel(a, b)
            ci = r.confidence_interval(confidence)
            lo, hi, pv = float(ci.low), float(ci.high), float(r.pvalue)
    elif not paired and a.size >= 2 and b.size >= 2:
        if np.all(a == a[0]) and np.all(b == b[0]):
            lo = hi = diff
            pv = 1.0 if diff == 0 else 0.0
        else:
            r = _st().ttest_ind(a, b, equal_var=False)
            ci = r.confidence_interval(confidence)
            lo, hi, pv = float(ci.low), float(ci.high), float(r.pvalue)
    p, plo, phi = prob_improvement(a, b, paired=paired, confidence=confidence, seed=seed, n_resamples=n_resamples)
    resolved = bool(np.isfinite(lo) and (lo > 0 or hi < 0))
    better = ""
    if resolved:
        a_higher = lo > 0
        better = "a" if a_higher == higher_is_better else "b"
    return Comparison(diff, lo, hi, pv, p, plo, phi, bool(paired), resolved, better, int(a.size), int(b.size),
                      float(confidence))


def compare_to_reference(
    samples: Mapping[str, Sequence[float]],
    reference: str,
    *,
    paired: bool,
    confidence: float = 0.95,
    higher_is_better: bool = True,
    seed: int,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> dict[str, Comparison]:
    """``compare(reference, other)`` for every other entry of ``samples`` (name -> values)."""
    if reference not in samples:
        raise ValueError(f"reference {reference!r} is not one of {sorted(samples)}")
    return {
        name: compare(samples[reference], x, paired=paired, confidence=confidence,
                      higher_is_better=higher_is_better, seed=seed, n_resamples=n_resamples)
        for name, x in samples.items() if name != reference
    }


def _f(v: float, spec: str = ".4f") -> str:
    return "nan" if not np.isfinite(v) else format(v, spec)


def comparison_table(
    samples: Mapping[str, Sequence[float]],
    reference: str,
    *,
    metric: str = "metric",
    paired: bool,
    confidence: float = 0.95,
    higher_is_better: bool = True,
    seed: int,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> str:
    """A text table: each entry against ``reference`` — difference, CI, P(ref > other), resolved?

    Rows say ``resolved`` (the CI of the difference excludes 0: the reference is better or worse
    at this confidence) or ``unresolved`` (more seeds needed to tell them apart).

    >>> print(comparison_table({"A": [1.0, 1.1, 1.2], "B": [1.0, 1.1, 1.2]}, "A", paired=True, seed=0))
    ... # doctest: +NORMALIZE_WHITESPACE
    metric: ref = A; Δ = ref − other (95% CI, paired by seed; resolved = the CI excludes 0)
    other   Δ mean    95% CI               P(ref>other) [95% CI]    verdict
    B       0.0000    [0.0000, 0.0000]     0.50 [0.13, 0.87]        unresolved
    """
    comps = compare_to_reference(samples, reference, paired=paired, confidence=confidence,
                                 higher_is_better=higher_is_better, seed=seed, n_resamples=n_resamples)
    c = int(round(confidence * 100))
    w = max([len("other")] + [len(n) for n in comps]) + 3
    how = "paired by seed" if paired else "unpaired, Welch"
    lines = [
        f"{metric}: ref = {reference}; Δ = ref − other ({c}% CI, {how}; resolved = the CI excludes 0)",
        f"{'other':<{w}}{'Δ mean':<10}{f'{c}% CI':<21}{f'P(ref>other) [{c}% CI]':<25}verdict",
    ]
    for name, r in comps.items():
        ci = f"[{_f(r.low)}, {_f(r.high)}]"
        pr = f"{_f(r.prob, '.2f')} [{_f(r.prob_low, '.2f')}, {_f(r.prob_high, '.2f')}]"
        if r.resolved:
            verdict = f"resolved: ref {'better' if r.better == 'a' else 'worse'}"
        else:
            verdict = "unresolved"
        lines.append(f"{name:<{w}}{_f(r.diff):<10}{ci:<21}{pr:<25}{verdict}")
    return "\n".join(lines)
