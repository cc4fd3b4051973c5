"""dlcore.stats against scipy on fixed arrays, and on constructed cases: identical samples are
unresolved, well-separated samples are resolved."""

import numpy as np
import pytest
import scipy.stats

from dlcore.stats import (
    bootstrap_ci,
    compare,
    comparison_table,
    describe,
    iqm,
    mean_ci,
    prob_improvement,
    summarize,
    wilson_interval,
)

A = np.array([0.671, 0.664, 0.690, 0.652, 0.681, 0.675, 0.659, 0.668])
B = np.array([0.655, 0.661, 0.676, 0.640, 0.672, 0.660, 0.650, 0.664])  # same seeds, a bit worse


def test_t_interval_matches_scipy():
    m, lo, hi = mean_ci(A, 0.95)
    ref = scipy.stats.t.interval(0.95, A.size - 1, loc=A.mean(), scale=scipy.stats.sem(A))
    np.testing.assert_allclose([lo, hi], ref, rtol=1e-12)
    d = describe(A, 0.9, seed=0)
    np.testing.assert_allclose([d["t_low"], d["t_high"]],
                               scipy.stats.t.interval(0.9, A.size - 1, loc=A.mean(), scale=scipy.stats.sem(A)))
    assert d["std"] == pytest.approx(np.std(A, ddof=1)) and d["median"] == np.median(A)
    assert summarize(A)["ci_low"] == pytest.approx(lo)


@pytest.mark.parametrize("statistic,fn", [("mean", np.mean), ("median", np.median)])
def test_bootstrap_matches_scipy_and_is_seeded(statistic, fn):
    lo, hi = bootstrap_ci(A, 0.95, seed=3, statistic=statistic, n_resamples=999)
    ref = scipy.stats.bootstrap((A,), fn, n_resamples=999, confidence_level=0.95, method="percentile",
                                rng=np.random.default_rng(3)).confidence_interval
    np.testing.assert_allclose([lo, hi], [ref.low, ref.high], rtol=1e-12)
    assert bootstrap_ci(A, seed=3, statistic=statistic) == bootstrap_ci(A, seed=3, statistic=statistic)
    assert bootstrap_ci(A, seed=3) != bootstrap_ci(A, seed=4)
    assert lo <= fn(A) <= hi
    assert bootstrap_ci([2.0, 2.0, 2.0], seed=0) == (2.0, 2.0)
    assert all(np.isnan(bootstrap_ci([1.0], seed=0)))


def test_iqm_matches_scipy_trim_mean():
    x = np.array([5.0, 1.0, 9.0, 3.0, 100.0, 2.0, 7.0, -50.0])
    assert iqm(x) == pytest.approx(scipy.stats.trim_mean(x, 0.25))
    assert iqm(x) == pytest.approx(np.mean(np.sort(x)[2:6]))  # the middle half
    assert iqm(A) == pytest.approx(scipy.stats.trim_mean(A, 0.25))
    assert describe(x, seed=0)["iqm"] == pytest.approx(iqm(x))


def test_compare_paired_and_unpaired_match_scipy():
    c = compare(A, B, paired=True, seed=0)
    r = scipy.stats.ttest_rel(A, B)
    ci = r.confidence_interval(0.95)
    np.testing.assert_allclose([c.low, c.high, c.p_value], [ci.low, ci.high, r.pvalue], rtol=1e-10)
    assert c.diff == pytest.approx(np.mean(A - B))
    u = compare(A, B, paired=False, seed=0)
    r = scipy.stats.ttest_ind(A, B, equal_var=False)
    ci = r.confidence_interval(0.95)
    np.testing.assert_allclose([u.low, u.high, u.p_value], [ci.low, ci.high, r.pvalue], rtol=1e-10)
    # Pairing by seed removes the seeds' shared luck: the paired interval is narrower here.
    assert c.high - c.low < u.high - u.low
    assert c.resolved and not u.resolved  # same data: pairing resolves what the unpaired test cannot


def test_prob_improvement_matches_mann_whitney_and_wilson():
    p, lo, hi = prob_improvement(A, B, paired=False, seed=0)
    u = scipy.stats.mannwhitneyu(A, B).statistic
    assert p == pytest.approx(u / (A.size * B.size))
    assert lo <= p <= hi
    ref = scipy.stats.bootstrap((A, B), lambda a, b, axis: np.mean(
        (a[..., :, None] > b[..., None, :]) + 0.5 * (a[..., :, None] == b[..., None, :]), axis=(-2, -1)),
        n_resamples=2000, method="percentile", rng=np.random.default_rng(0)).confidence_interval
    np.testing.assert_allclose([lo, hi], [ref.low, ref.high], rtol=1e-12)
    pp, plo, phi = prob_improvement(A, B, paired=True, seed=0)
    wins = int(np.sum(A > B))
    assert pp == wins / A.size
    ci = scipy.stats.binomtest(wins, A.size).proportion_ci(0.95, method="wilson")
    np.testing.assert_allclose([plo, phi], [ci.low, ci.high], rtol=1e-10)
    for k, n in [(0, 5), (3, 7), (10, 10)]:
        ci = scipy.stats.binomtest(k, n).proportion_ci(0.9, method="wilson")
        np.testing.assert_allclose(wilson_interval(k, n, 0.9), [ci.low, ci.high], rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("paired", [True, False])
def test_identical_samples_are_unresolved(paired):
    c = compare(A, A.copy(), paired=paired, seed=0)
    assert not c.resolved and c.better == "" and c.diff == 0.0
    assert c.low <= 0.0 <= c.high
    assert c.prob == 0.5 and c.prob_low <= 0.5 <= c.prob_high
    table = comparison_table({"A": A, "A again": A.copy()}, "A", paired=paired, seed=0)
    assert table.splitlines()[-1].endswith("unresolved")


@pytest.mark.parametrize("paired", [True, False])
def test_well_separated_samples_are_resolved(paired):
    rng = np.random.default_rng(0)
    good, bad = 0.8 + 0.01 * rng.standard_normal(10), 0.6 + 0.01 * rng.standard_normal(10)
    c = compare(good, bad, paired=paired, seed=0)
    assert c.resolved and c.better == "a" and c.low > 0.15
    assert c.prob == 1.0 and c.prob_low > 0.5  # P(good > bad) resolved too
    # Lower is better (a loss): the same numbers make `a` the worse one.
    assert compare(good, bad, paired=paired, higher_is_better=False, seed=0).better == "b"
    table = comparison_table({"good": good, "bad": bad}, "good", paired=paired, seed=0)
    assert "resolved: ref better" in table


def test_pairing_resolves_what_seed_luck_hides():
    # Each seed moves both points alike (its initial weights and data order are shared).
    a3, b3 = np.array([0.70, 0.74, 0.66]), np.array([0.69, 0.73, 0.65])
    assert not compare(a3, b3, paired=False, seed=0).resolved  # unpaired: seed luck swamps a 0.01 gap
    assert compare(a3, b3, paired=True, seed=0).resolved  # paired: every seed says +0.01
    rng = np.random.default_rng(1)
    base = rng.standard_normal(64) * 0.02
    a, b = 0.70 + base + 0.004 * rng.standard_normal(64), 0.69 + base + 0.004 * rng.standard_normal(64)
    assert compare(a, b, paired=True, seed=0).resolved  # 64 paired seeds resolve a 0.01 gap despite noise


def test_bad_input():
    with pytest.raises(ValueError, match="paired samples need equal sizes"):
        compare([1.0, 2.0], [1.0], paired=True, seed=0)
    with pytest.raises(ValueError, match="confidence must be in"):
        bootstrap_ci(A, 1.5, seed=0)
    with pytest.raises(ValueError, match="empty"):
        iqm([])
    d = describe([0.5, np.nan, 0.7], seed=0)
    assert d["n"] == 2 and d["n_dropped"] == 1 and d["mean"] == pytest.approx(0.6)


def test_summary_needs_no_scipy_stats():
    """The CLI's table (mean_ci/summarize) uses scipy.special's t quantile: scipy.stats costs ~1 s to import."""
    import subprocess
    import sys

    code = ("import sys; from dlcore.stats import summarize, mean_ci\n"
            "s = summarize([0.6, 0.7, 0.65]); m, lo, hi = mean_ci([1.0, 2.0, 3.0])\n"
            "print('scipy.stats' in sys.modules, round(lo, 4), round(s['ci_high'], 4))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    lo, hi = mean_ci([1.0, 2.0, 3.0])[1], summarize([0.6, 0.7, 0.65])["ci_high"]
    assert lo == pytest.approx(2.0 - scipy.stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3))
    assert p.stdout.split() == ["False", f"{round(lo, 4)}", f"{round(hi, 4)}"]
