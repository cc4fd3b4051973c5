"""``dlcore report RUN_DIR``: re-print the statistics table and re-draw the plots from a run's files.

Everything is recomputed from ``results.csv``, ``history.npz`` and ``manifest.json`` (the bootstrap
is seeded by the study seed), so re-running the report prints the same text and draws the same
plots; ``dlcore run`` prints this very report at the end of a study.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
from typing import Sequence

import numpy as np

from dlcore.errors import ConfigError, DlcoreError


def add_arguments(p) -> None:
    p.add_argument("run_dir", help="a run directory written by `dlcore run` (holds results.csv and manifest.json)")
    p.add_argument("--no-plots", action="store_true", help="print the table only (writes nothing)")
    p.add_argument("more_run_dirs", nargs="*", help=argparse.SUPPRESS)  # --catalog takes several
    p.add_argument("--catalog", metavar="README", default=None,
                   help="write the studies catalog (claim, command, CIs, verdict) of the run dirs to README")


def cmd_report(args, overrides) -> int:
    if overrides:
        raise ConfigError("dlcore report takes no --config overrides; it re-reads the run directory's files")
    if getattr(args, "catalog", None) or getattr(args, "more_run_dirs", None):
        from dlcore.cli._catalog import cmd_catalog

        return cmd_catalog(args)
    print(report_run(args.run_dir, plots=not args.no_plots))
    return 0


def _read(run_dir: str):
    if not os.path.isdir(run_dir):
        raise DlcoreError(f"run directory {run_dir!r} does not exist; give a directory printed by `dlcore run`")
    paths = {f: os.path.join(run_dir, f) for f in ("results.csv", "manifest.json")}
    for f, p in paths.items():
        if not os.path.isfile(p):
            raise DlcoreError(f"{run_dir!r} has no {f}; is it a run directory written by `dlcore run`?")
    fix = "re-run the experiment (or restore the file from a copy)"
    try:
        with open(paths["results.csv"], newline="") as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            if None in r or None in r.values():  # a row longer or shorter than the header
                raise ValueError("rows do not match the header")
    except (OSError, ValueError, csv.Error, UnicodeDecodeError) as e:
        raise DlcoreError(f"{paths['results.csv']} is damaged ({e}); {fix}") from None
    try:
        with open(paths["manifest.json"]) as f:
            man = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise DlcoreError(f"{paths['manifest.json']} is damaged (not valid JSON: {e}); {fix}") from None
    if not isinstance(man, dict):
        raise DlcoreError(f"{paths['manifest.json']} is damaged (a JSON {type(man).__name__}, not an object); {fix}")
    hist_path = os.path.join(run_dir, "history.npz")
    history = {}
    if os.path.isfile(hist_path):
        try:
            with np.load(hist_path) as h:
                history = {k: np.asarray(h[k]) for k in h.files}
        except Exception as e:  # noqa: BLE001 - zipfile/zlib/numpy raise many kinds for a damaged file
            raise DlcoreError(f"{hist_path} is damaged ({type(e).__name__}: {str(e)[:200]}); {fix}, "
                              "or delete it to report without learning curves") from None
    return rows, man, history


def report_run(run_dir: str, plots: bool = True) -> str:
    """The report text of a run directory; with ``plots`` it re-draws the plots and saves the text
    as ``summary.txt`` (without, it only returns the text and writes nothing)."""
    rows, man, history = _read(run_dir)
    try:
        if "study" in man:
            text = _study_report(run_dir, rows, man, history, plots)
        else:
            text = _seed_report(run_dir, rows, man, history, plots)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        if isinstance(e, DlcoreError):
            raise
        # Readable files that do not fit together (an edited or half-restored run directory).
        raise DlcoreError(f"the files of {run_dir} do not fit together ({type(e).__name__}: {str(e)[:200]}); "
                          "re-run the experiment or restore manifest.json, results.csv and history.npz "
                          "from one run") from None
    if not plots:
        return text
    from dlcore.errors import atomic_path

    with atomic_path(os.path.join(run_dir, "summary.txt")) as tmp:
        with open(tmp, "w") as f:
            f.write(text + "\n")
    return text


def _seed_report(run_dir, rows, man, history, plots) -> str:
    from dlcore.cli._outputs import summary_table

    keys = [k for k in rows[0] if k.startswith(("val/", "test/"))] if rows else []
    final = {k: np.asarray([float(r[k]) for r in rows]) for k in keys}
    ok = np.asarray([r.get("status", "ok") == "ok" for r in rows])
    if plots and history:
        from dlcore import plots as dplots

        dplots.plot_learning_curves({k: v for k, v in history.items() if k != "seeds"},
                                    os.path.join(run_dir, "curves.png"), title=man.get("experiment", ""))
    head = f"{man.get('experiment', '')} · {len(rows)} seed{'s' * (len(rows) != 1)}"
    return head + "\n" + summary_table(final, ok_mask=ok if ok.any() else None)


# ---------------------------------------------------------------------------------------------
# Studies


def _axes(meta) -> list:
    from dlcore.sweep import Axis

    out = []
    for name, d in meta["axes"].items():
        d = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        if "values" in d:
            d["values"] = tuple(tuple(v) if isinstance(v, list) else v for v in d["values"])
        out.append(Axis(**d))
    return out


def _value(axis, s: str):
    if axis.numeric:
        v = float(s)
        return int(round(v)) if axis.integer else v
    for v in axis.values or ():
        if str(v) == s:
            return v
    return s


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _f(v: float, spec: str = ".4f") -> str:
    return "nan" if v is None or not math.isfinite(v) else format(v, spec)


def _stats_cols(d: dict) -> str:
    t_ci = "[" + _f(d["t_low"]) + ", " + _f(d["t_high"]) + "]"
    b_ci = "[" + _f(d["boot_low"]) + ", " + _f(d["boot_high"]) + "]"
    return f"{d['n']:>3}{_f(d['mean']):>9}{_f(d['std']):>9}   {t_ci:<20}{b_ci:<20}{_f(d['iqm']):>8}"


class _Point:
    def __init__(self, idx: int):
        self.idx, self.values, self.stage, self.selected = idx, {}, 0, False
        self.metrics: dict[str, list[float]] = {}
        self.status: list[str] = []
        self.seeds: list[int] = []

    def arr(self, key: str) -> np.ndarray:
        return np.asarray(self.metrics.get(key, []), np.float64)


def _points(rows, axes) -> list[_Point]:
    pts: dict[int, _Point] = {}
    for r in rows:
        i = int(r["point"])
        p = pts.setdefault(i, _Point(i))
        p.values = {a.name: _value(a, r[a.name]) for a in axes}
        p.stage, p.selected = int(r["stage"]), r["selected"] == "1"
        p.seeds.append(int(r["seed"]))
        p.status.append(r["status"])
        for k, v in r.items():
            if k.startswith(("val/", "test/", "train/", "weights/")):
                p.metrics.setdefault(k, []).append(float(v) if v != "" else math.nan)
    return [pts[i] for i in sorted(pts)]


def _label(p: _Point, names: Sequence[str]) -> str:
    return f"#{p.idx} " + " ".join(f"{n}={_fmt(p.values[n])}" for n in names)


def _group_key(p: _Point, group_by: Sequence[str]) -> tuple:
    return tuple(repr(p.values[g]) for g in group_by)


def _study_report(run_dir, rows, man, history, plots) -> str:
    from dlcore.stats import compare, comparison_table, describe

    meta = man["study"]
    axes = _axes(meta)
    names = [a.name for a in axes]
    sel = meta["select"]
    metric, hib = sel["metric"], bool(sel["higher_is_better"])
    conf, seed, nres = float(meta["confidence"]), int(meta["study_seed"]), int(meta["bootstrap_resamples"])
    c = int(round(conf * 100))
    pts = _points(rows, axes)
    seeds = pts[0].seeds if pts else []
    group_by = list(sel.get("group_by") or [])
    same_seeds = all(p.seeds == seeds for p in pts)
    stat = sel.get("statistic", "mean")

    lines = []
    n_runs = len(rows)
    lines.append(f"Study {man.get('experiment', '')}: {meta['strategy']} search, {len(pts)} points × "
                 f"{len(seeds)} seeds ({', '.join(map(str, seeds))}) = {n_runs} runs")
    lines.append(f"Selection: {metric} ({'max' if hib else 'min'} of the {stat} over seeds, validation split only"
                 + (f", within each {', '.join(group_by)}" if group_by else "") + "); test split evaluated once, "
                 "for the selected point" + ("s" if group_by else ""))
    for a in axes:
        kind = "vectorized: one program for all values" if a.vectorized else "structural: one program per value"
        rng = f"{a.low:g}…{a.high:g}" if a.low is not None else ", ".join(map(str, a.values or ()))
        lines.append(f"  axis {a.name} = config.{a.path} ({a.scale}{', log-spaced' if a.log else ''}; {rng}; {kind})")

    # Per point: the selection metric across seeds.
    descs = {p.idx: describe(p.arr(metric), conf, seed=seed, n_resamples=nres) for p in pts}
    widths = {n: max(len(n), *(len(_fmt(p.values[n])) for p in pts)) + 2 for n in names}
    lines.append("")
    lines.append(f"{metric} per point ({c}% CIs over seeds: t, and bootstrap percentile with {nres} resamples)")
    head = f"{'point':<7}{'stage':<7}" + "".join(f"{n:<{widths[n]}}" for n in names)
    head += f"{'n':>3}{'mean':>9}{'std':>9}   {f't {c}% CI':<20}{f'boot {c}% CI':<20}{'IQM':>8}{'failed':>8}"
    lines.append(head)
    for p in pts:
        d = descs[p.idx]
        failed = sum(s == "diverged" for s in p.status)
        mark = "*" if p.selected else " "
        row = f"{mark}{p.idx:<6}{p.stage:<7}" + "".join(f"{_fmt(p.values[n]):<{widths[n]}}" for n in names)
        row += _stats_cols(d) + f"{failed:>8}"
        lines.append(row)
    lines.append("(* selected; failed = diverged runs, which keep their last finite parameters and count as they are)")
    if len(seeds) < 10:
        lines.append(f"(with {len(seeds)} seeds the bootstrap intervals are too narrow; trust the t intervals)")

    # Each point against the best of its group.
    groups: dict[tuple, list[_Point]] = {}
    for p in pts:
        groups.setdefault(_group_key(p, group_by), []).append(p)
    selected = [p for p in pts if p.selected]
    best_of = {_group_key(p, group_by): p for p in selected}
    for key, members in groups.items():
        best = best_of.get(key)
        if best is None or len(members) < 2:
            continue
        samples = {_label(best, names): best.arr(metric)}
        samples.update({_label(p, names): p.arr(metric) for p in members if p is not best})
        lines.append("")
        title = "each point vs the best" + (" of " + " ".join(f"{g}={_fmt(best.values[g])}" for g in group_by)
                                            if group_by else "")
        lines.append(f"{title}:")
        lines.append(comparison_table(samples, _label(best, names), metric=metric, paired=same_seeds,
                                      confidence=conf, higher_is_better=hib, seed=seed, n_resamples=nres))
        # Which values of each numeric axis are not resolved worse than the best.
        close = [best] + [p for p in members if p is not best and not compare(
            best.arr(metric), p.arr(metric), paired=same_seeds, confidence=conf, higher_is_better=hib, seed=seed,
            n_resamples=nres).resolved]
        for a in axes:
            if a.name in group_by or not a.numeric:
                continue
            vals = sorted({p.values[a.name] for p in close})
            lines.append(f"  {a.name} not resolved worse than the best: " + (
                f"{_fmt(vals[0])} – {_fmt(vals[-1])}" if len(vals) > 1 else _fmt(vals[0]))
                + f" ({len(close)} of {len(members)} points)")

    # Answer lines: best value of each numeric axis per group, as ratios for log axes.
    if group_by and len(selected) > 1:
        lines.append("")
        for a in axes:
            if a.name in group_by or not a.numeric:
                continue
            ref = selected[0].values[a.name]
            parts = []
            for p in selected:
                g = " ".join(f"{n}={_fmt(p.values[n])}" for n in group_by)
                v = p.values[a.name]
                ratio = f" ({float(v) / float(ref):.3g}× the first)" if a.log and p is not selected[0] else ""
                parts.append(f"{g}: {_fmt(v)}{ratio}")
            lines.append(f"best {a.name} per group — " + "; ".join(parts))

    # Edges: the optimum may lie outside the searched range.
    for p in selected:
        for a in axes:
            if not a.numeric or a.name in group_by:
                continue
            tried = sorted({q.values[a.name] for q in pts})
            v = p.values[a.name]
            if len(tried) < 3 or v not in (tried[0], tried[-1]) or a.low is None or a.high <= a.low:
                continue
            f = math.log if a.log else float
            frac = (f(v) - f(a.low)) / (f(a.high) - f(a.low))
            if frac <= 0.1 or frac >= 0.9:  # the most extreme value tried, next to a bound of the axis
                lines.append(f"note: {_label(p, names)} has {a.name} at the edge of the searched values "
                             f"({_fmt(tried[0])} – {_fmt(tried[-1])}); the optimum may lie beyond — widen the axis")

    # The test split, evaluated once for each selected point.
    test_keys = sorted({k for p in selected for k in p.metrics if k.startswith("test/")})
    lines.append("")
    lines.append(f"test split (evaluated once, for the selected point{'s' * (len(selected) != 1)}; "
                 f"{c}% CIs over seeds)")
    lines.append(f"{'point':<{max(len(_label(p, names)) for p in selected) + 2}}{'metric':<16}{'n':>3}{'mean':>9}"
                 f"{'std':>9}   {f't {c}% CI':<20}{f'boot {c}% CI':<20}{'IQM':>8}")
    for p in selected:
        for k in test_keys:
            d = describe(p.arr(k), conf, seed=seed, n_resamples=nres)
            lw = max(len(_label(q, names)) for q in selected) + 2
            lines.append(f"{_label(p, names):<{lw}}{k:<16}" + _stats_cols(d))
    # Per-run measurements after training (config.measure): the training-side ones, every point.
    measured = sorted({k for p in pts for k in p.metrics if k.startswith("train/") and k != "train/loss_last"})
    if measured:
        lines.append("")
        lines.append(f"measured after training (every point; {c}% CIs over seeds)")
        lw = max(len(_label(p, names)) for p in pts) + 2
        mw = max(16, max(len(k) for k in measured) + 2)
        lines.append(f"{'point':<{lw}}{'metric':<{mw}}{'n':>3}{'mean':>9}{'std':>9}   {f't {c}% CI':<20}"
                     f"{f'boot {c}% CI':<20}{'IQM':>8}")
        for p in pts:
            for k in measured:
                d = describe(p.arr(k), conf, seed=seed, n_resamples=nres)
                lines.append(f"{_label(p, names):<{lw}}{k:<{mw}}" + _stats_cols(d))
    test_metric = "test/" + metric.split("/", 1)[1]
    if len(selected) > 1 and all(len(p.arr(test_metric)) for p in selected):
        lines.append("")
        lines.append("selected points compared on the test split:")
        samples = {_label(p, names): p.arr(test_metric) for p in selected}
        lines.append(comparison_table(samples, _label(selected[0], names), metric=test_metric, paired=same_seeds,
                                      confidence=conf, higher_is_better=hib, seed=seed, n_resamples=nres))

    if plots:
        lines.append("")
        written = _study_plots(run_dir, pts, axes, meta, history, metric, conf, man.get("experiment", ""))
        lines.append("plots: " + ", ".join(written))
    return "\n".join(lines)


def _safe(s: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in s)


def _study_plots(run_dir, pts, axes, meta, history, metric, conf, exp) -> list[str]:
    from dlcore import plots as dplots

    names = [a.name for a in axes]
    points = [p.values for p in pts]
    vals = np.stack([p.arr(metric) for p in pts]) if pts else np.zeros((0, 0))
    sel = [i for i, p in enumerate(pts) if p.selected]
    written = []
    for a in axes:
        if len({repr(p[a.name]) for p in points}) < 2:
            continue
        f = f"{_safe(metric)}_vs_{a.name}.png"
        dplots.plot_metric_vs_axis(points, vals, a.name, metric=metric, log_x=a.log, confidence=conf, selected=sel,
                                   path=os.path.join(run_dir, f), title=exp)
        written.append(f)
    first = [p for p in pts if p.stage == 0]
    if len(axes) == 2 and len(first) == np.prod([len({repr(p.values[n]) for p in first}) for n in names]) > 1:
        f = f"heatmap_{_safe(metric)}.png"
        idx = [i for i, p in enumerate(pts) if p.stage == 0]
        dplots.plot_heatmap([points[i] for i in idx], vals[idx], names[0], names[1], metric=metric,
                            selected=[idx.index(i) for i in sel if i in idx], path=os.path.join(run_dir, f))
        written.append(f)
    if history:
        # At most 12 curves: the selected points first, then the best by mean.
        means = np.asarray([np.nanmean(v) if np.isfinite(v).any() else -np.inf for v in vals])
        hib = meta["select"]["higher_is_better"]
        order = sel + [int(i) for i in np.argsort(-means if hib else means, kind="stable") if int(i) not in sel]
        order = order[:12]
        hs, labels = [], []
        for i in order:
            p = pts[i]
            h = {k.split("/", 1)[1]: v for k, v in history.items() if k.startswith(f"point{p.idx}/")}
            if h:
                hs.append(h)
                labels.append(_label(p, names) + (" *" if p.selected else ""))
        if hs:
            f = "point_curves.png"
            dplots.plot_point_curves(hs, labels, metric=metric, confidence=conf, path=os.path.join(run_dir, f),
                                     title=f"{exp}: {len(hs)} of {len(pts)} points")
            written.append(f)
    return written
