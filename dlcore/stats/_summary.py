"""Summaries across seeds: mean, standard deviation and a t-based confidence interval."""

from __future__ import annotations

import numpy as np
# scipy.special, not scipy.stats: the CLI prints this table, and scipy.stats costs ~1 s to import.
from scipy.special import stdtrit


def mean_ci(samples, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t-based confidence interval of the mean.

    ``mean ± t_{(1+c)/2, n-1} · s / √n`` with the sample standard deviation ``s`` (ddof=1).
    With one sample the interval is ``(nan, nan)``.

    >>> m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    >>> m, round(lo, 4), round(hi, 4)
    (2.0, -0.4841, 4.4841)
    """
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("mean_ci needs at least one sample")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    m = float(np.mean(x))
    if x.size < 2:
        return m, float("nan"), float("nan")
    half = float(stdtrit(x.size - 1, 0.5 + confidence / 2) * np.std(x, ddof=1) / np.sqrt(x.size))
    return m, m - half, m + half


def summarize(samples, confidence: float = 0.95) -> dict[str, float]:
    """``n, mean, std, ci_low, ci_high, min, max`` of a 1-D sample (non-finite values dropped)."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        nan = float("nan")
        return dict(n=0, mean=nan, std=nan, ci_low=nan, ci_high=nan, min=nan, max=nan)
    m, lo, hi = mean_ci(x, confidence)
    return dict(
        n=int(x.size),
        mean=m,
        std=float(np.std(x, ddof=1)) if x.size > 1 else 0.0,
        ci_low=lo,
        ci_high=hi,
        min=float(np.min(x)),
        max=float(np.max(x)),
    )
