"""``dlcore report --catalog README RUN_DIR...``: the studies catalog (``experiments/README.md``).

Generated from run directories, never typed: for every study in ``./experiments`` (a config with a
``sweep``) its claim, its run command, the measured result of the given run with 95% CIs, the
published figures beside them where the config records some (``config.reference``), and a verdict
— *held*, *not held*, *unresolved* or *not run* — from the checks the config states
(``config.claim.checks``). The text depends only on the run directories' files and the experiment
sources (no clock, no absolute paths), so writing it twice gives identical bytes.

A claim section in an experiment config::

    c.claim = dict(
        text="logistic < MLP < CNN ≈ GRU on MNIST-1D",
        checks=(
            # METRIC: POINT OP POINT — a point is "axis=value ..." (the values as the report prints them);
            # OP ">"/"<": the paired 95% CI of A − B lies above/below 0; "!=": it excludes 0;
            # ">="/"<=": it is not resolved below/above 0 (not worse); "~": it contains 0.
            # B may be a number: then the CI of A's mean is compared with it.
            "test/accuracy: model=mnist1d_cnn shuffled=False > model=mnist1d_mlp shuffled=False",
            "train/loss_last: loss=multiclass_hinge < 0.01",
        ),
    )

``config.reference = dict(metric=..., source=..., axes=(names...), values=((v1, v2, ..., figure), ...))``
puts a published figure beside each point's CI.
"""

from __future__ import annotations

import json
import math
import os
from typing import Sequence

import numpy as np

from dlcore.errors import ConfigError, DlcoreError

VERDICTS = ("held", "not held", "unresolved", "not run")
OPS = (" != ", " >= ", " <= ", " > ", " < ", " ~ ")


def _f(v: float, spec: str = ".4f") -> str:
    return "nan" if v is None or not math.isfinite(v) else format(v, spec)


def _experiment_doc(name: str) -> tuple[str, object]:
    """The experiment's docstring and its current default config (("", None) when not loadable)."""
    try:
        from dlcore.cli._config import load_experiment

        _, mod = load_experiment(name)
        return (mod.__doc__ or "").strip(), mod.get_config()
    except (DlcoreError, ImportError, SyntaxError, AttributeError):
        return "", None


def _claim_text(doc: str, cfg: dict) -> str:
    claim = (cfg or {}).get("claim") or {}
    if isinstance(claim, dict) and claim.get("text"):
        return str(claim["text"])
    para = doc.split("\n\n", 1)[0] if doc else ""
    return " ".join(para.split())


def _flat(d, prefix="") -> dict:
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = tuple(v) if isinstance(v, list) else v
    return out


def _norm(v):
    if isinstance(v, (list, tuple)):
        return tuple(_norm(x) for x in v)
    return v


def command_of(name: str, run_cfg: dict, default_cfg) -> str:
    """``dlcore run NAME`` plus the ``--config.*`` overrides that turn the default config into the run's."""
    cmd = f"dlcore run {name}"
    if default_cfg is None:
        return cmd
    run, base = _flat(run_cfg), _flat(default_cfg.to_dict())
    flags = []
    for k in sorted(set(run) | set(base)):
        if k not in run:
            continue
        if k in base and _norm(run[k]) == _norm(base[k]):
            continue
        if k == "seeds" or k.startswith(("claim.", "reference.")):
            continue
        v = run[k]
        flags.append(f"--config.{k}={v!r}" if isinstance(v, (str, tuple)) else f"--config.{k}={v}")
    return " ".join([cmd, *flags])


def _select(points, spec: str, names: Sequence[str]):
    want = {}
    for part in spec.split():
        if "=" not in part:
            raise ConfigError(f"claim check point {spec!r}: write axis=value pairs separated by spaces")
        k, v = part.split("=", 1)
        if k not in names:
            raise ConfigError(f"claim check point {spec!r}: {k!r} is not an axis (axes: {', '.join(names)})")
        want[k] = v
    from dlcore.cli._report import _fmt

    hits = [p for p in points if all(_fmt(p.values[k]) == v for k, v in want.items())]
    return hits[0] if len(hits) == 1 else None


def evaluate_check(check: str, points, names, *, confidence: float, seed: int, paired: bool) -> tuple[str, str]:
    """``(verdict, detail)`` of one ``"METRIC: A OP B"`` check on a study's points."""
    from dlcore.stats import compare

    if ": " not in check or not any(op in check for op in OPS):
        raise ConfigError(f"claim check {check!r}: write 'METRIC: POINT > POINT' "
                          "(ops: >, <, >=, <=, !=, ~; the right side may be a number)")
    metric, rest = check.split(": ", 1)
    op = next(op for op in OPS if op in rest)
    left, right = (s.strip() for s in rest.split(op, 1))
    op = op.strip()
    a = _select(points, left, names)
    try:
        value = float(right)
    except ValueError:
        value = None
    if value is not None:  # one sample against a number: where the t interval of the mean lies
        if a is None:
            return "not run", "point not in this run"
        from dlcore.stats import describe

        d = describe(a.arr(metric), confidence, seed=seed, n_resamples=200)
        if d["n"] < 2:
            return ("not run" if d["n"] == 0 else "unresolved"), f"{d['n']} finite runs"
        lo, hi = d["t_low"], d["t_high"]
        above, below = lo > value, hi < value
        detail = f"mean {_f(d['mean'])} [{_f(lo)}, {_f(hi)}]"
        if op == "~":
            return ("held" if not (above or below) else "not held"), detail
        if op == "!=":
            return ("held" if above or below else "unresolved"), detail
        if op in (">=", "<="):
            return ("not held" if (below if op == ">=" else above) else "held"), detail
        want, against = (above, below) if op == ">" else (below, above)
        return ("held" if want else "not held" if against else "unresolved"), detail
    b = _select(points, right, names)
    if a is None or b is None:
        return "not run", "point not in this run"
    xa, xb = a.arr(metric), b.arr(metric)
    if not (np.isfinite(xa).any() and np.isfinite(xb).any()):
        return "not run", f"{metric} not measured for both points"
    ok = np.isfinite(xa) & np.isfinite(xb) if paired and xa.size == xb.size else None
    if ok is not None:
        xa, xb = xa[ok], xb[ok]
    if min(xa.size, xb.size) < 2:
        return "unresolved", "fewer than 2 finite runs"
    c = compare(xa, xb, paired=ok is not None, confidence=confidence, seed=seed, n_resamples=200)
    detail = f"Δ = {_f(c.diff)} [{_f(c.low)}, {_f(c.high)}]"
    if op == "~":
        verdict = "not held" if c.resolved else "held"
    elif op in (">=", "<=") and not c.resolved:
        verdict = "held"
    elif not c.resolved:
        verdict = "unresolved"
    elif op == "!=":
        verdict = "held"
    elif op in (">=", "<="):
        verdict = "held" if (c.diff > 0) == (op == ">=") else "not held"
    else:
        verdict = "held" if (c.diff > 0) == (op == ">") else "not held"
    return verdict, detail


def _overall(verdicts: list[str]) -> str:
    if not verdicts:
        return "no checks stated"
    if "not held" in verdicts:
        return "not held"
    if all(v == "held" for v in verdicts):
        return "held"
    if all(v == "not run" for v in verdicts):
        return "not run"
    return "unresolved"


def _reference(cfg: dict, names) -> tuple[str, dict]:
    ref = (cfg or {}).get("reference") or {}
    axes = list(ref.get("axes") or [])
    if not ref or not set(axes) <= set(names):
        return "", {}
    from dlcore.cli._report import _fmt

    table = {}
    for row in ref.get("values") or []:
        *vals, fig = row
        table[tuple(_fmt(v) for v in vals)] = float(fig)
    return str(ref.get("metric", "")), dict(axes=axes, table=table, source=str(ref.get("source", "")))


def study_section(run_dir: str, label: str) -> tuple[str, str, list[str]]:
    """``(experiment, verdict, markdown lines)`` of one study run directory."""
    from dlcore.cli._report import _axes, _fmt, _points, _read
    from dlcore.stats import describe

    rows, man, _ = _read(run_dir)
    if "study" not in man:
        raise DlcoreError(f"{run_dir!r} is a seed run, not a study; the catalog lists studies (configs with a sweep)")
    if not rows:
        raise DlcoreError(f"{run_dir!r} has an empty results.csv; re-run the study")
    name = man.get("experiment", os.path.basename(os.path.dirname(os.path.abspath(run_dir))))
    meta = man["study"]
    cfg = man.get("config") or {}
    axes = _axes(meta)
    names = [a.name for a in axes]
    pts = _points(rows, axes)
    conf, seed = float(meta["confidence"]), int(meta["study_seed"])
    c = int(round(conf * 100))
    seeds = pts[0].seeds if pts else []
    paired = all(p.seeds == seeds for p in pts)
    doc, default_cfg = _experiment_doc(name)
    sel_metric = meta["select"]["metric"]
    test_metric = "test/" + sel_metric.split("/", 1)[1]
    ref_metric, ref = _reference(cfg, names)
    shown = [sel_metric, test_metric] + ([ref_metric] if ref_metric and ref_metric not in (sel_metric, test_metric)
                                         else [])
    claim = cfg.get("claim") or {}
    checks = list(claim.get("checks") or []) if isinstance(claim, dict) else []
    for chk in checks:  # the metrics the checks use are shown too (e.g. a measurement)
        m = chk.split(": ", 1)[0].strip()
        if m not in shown:
            shown.append(m)
    shown = [m for m in shown if any(np.isfinite(p.arr(m)).any() for p in pts)]

    lines = [f"## {name}", "", f"**Claim.** {_claim_text(doc, cfg)}", ""]
    lines.append(f"**Command.** `{command_of(name, cfg, default_cfg)}`")
    lines.append("")
    git = man.get("git") or {}
    commit = git.get("commit") if isinstance(git, dict) else None
    run_line = f"**Run.** `{label}` · {len(pts)} points × {len(seeds)} seeds"
    lines.append(run_line + (f" · commit {str(commit)[:10]}" if commit else ""))
    lines.append("")
    head = names + [f"{m} (mean, t {c}% CI)" for m in shown]
    if ref:
        head.append(f"published {ref_metric}")
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    inside = []
    for p in pts:
        cells = [_fmt(p.values[n]) + (" *" if p.selected and i == 0 else "") for i, n in enumerate(names)]
        for m in shown:
            d = describe(p.arr(m), conf, seed=seed, n_resamples=200)
            cells.append("–" if d["n"] == 0 else f"{_f(d['mean'])} [{_f(d['t_low'])}, {_f(d['t_high'])}]")
        if ref:
            fig = ref["table"].get(tuple(_fmt(p.values[n]) for n in ref["axes"]))
            d = describe(p.arr(ref_metric), conf, seed=seed, n_resamples=200)
            if fig is None:
                cells.append("–")
            else:
                where = ("inside" if d["t_low"] <= fig <= d["t_high"] else "outside") if d["n"] >= 2 else "n/a"
                inside.append(where == "inside")
                cells.append(f"{fig:g} ({where} the CI)")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"(* selected on {sel_metric}; the test split is evaluated for selected points only)")
    if ref:
        lines.append(f"Published figures ({ref['source']}): {sum(inside)} of {len(inside)} inside the run's "
                     f"{c}% CI.")
    verdicts = []
    if checks:
        lines.append("")
        lines.append(f"| check ({c}% CI: A − B paired by seed, or the mean of A vs a number) | measured | verdict |")
        lines.append("|---|---|---|")
        for chk in checks:
            v, detail = evaluate_check(chk, pts, names, confidence=conf, seed=seed, paired=paired)
            verdicts.append(v)
            lines.append(f"| `{chk}` | {detail} | {v} |")
    verdict = _overall(verdicts)
    lines.append("")
    lines.append(f"**Verdict: {verdict}.**")
    lines.append("")
    return name, verdict, lines


def build_catalog(run_dirs: Sequence[str]) -> str:
    """The catalog's markdown for ``run_dirs`` (for repeats of a study the last path in sorted order
    wins — the latest timestamp — so ``runs/*/*`` works; seed runs are skipped) plus a *not run*
    entry for every other study in ``./experiments``."""
    from dlcore.cli._config import available_experiments

    from dlcore.cli._report import _read

    by_name: dict[str, tuple[str, str, list[str]]] = {}
    for d in sorted(os.path.normpath(r) for r in run_dirs):
        if "study" not in _read(d)[1]:
            continue  # a seed run (`runs/*/*` picks those up too): the catalog lists studies
        name, verdict, lines = study_section(d, d)
        by_name[name] = (d, verdict, lines)
    studies = {}
    for n in available_experiments():
        doc, cfg = _experiment_doc(n)
        if cfg is not None and "sweep" in cfg:
            studies[n] = doc
    out = ["# Studies", "",
           "Generated by `dlcore report --catalog experiments/README.md RUN_DIR...` from the run directories "
           "(do not edit by hand). Each study is a seed sweep; intervals are 95% t intervals over seeds; a "
           "claim is *held* when every stated check is resolved in its direction, *not held* when one is "
           "resolved against it, *unresolved* otherwise.", "",
           "| study | claim | verdict |", "|---|---|---|"]
    for n in sorted(set(studies) | set(by_name)):
        doc = studies.get(n, "")
        cfg = {}
        if n in by_name:
            with open(os.path.join(by_name[n][0], "manifest.json")) as f:
                cfg = json.load(f).get("config") or {}
        claim = _claim_text(doc, cfg).replace("|", "\\|")
        out.append(f"| [{n}](#{n}) | {claim} | {by_name[n][1] if n in by_name else 'not run'} |")
    out.append("")
    for n in sorted(set(studies) | set(by_name)):
        if n in by_name:
            out.extend(by_name[n][2])
        else:
            _, cfg = _experiment_doc(n)
            claim = _claim_text(studies[n], cfg.to_dict() if cfg is not None else {})
            out.extend([f"## {n}", "", f"**Claim.** {claim}", "", f"**Command.** `dlcore run {n}`", "",
                        "**Verdict: not run.**", ""])
    return "\n".join(out).rstrip("\n") + "\n"


def write_catalog(path: str, run_dirs: Sequence[str]) -> str:
    """Write :func:`build_catalog` to ``path`` atomically; returns the text."""
    text = build_catalog(run_dirs)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return text


def cmd_catalog(args) -> int:
    """``dlcore report --catalog README RUN_DIR...`` (several run dirs need ``--catalog``)."""
    if not args.catalog:
        raise ConfigError("dlcore report takes one run directory; to list several studies give --catalog README")
    write_catalog(args.catalog, [args.run_dir, *args.more_run_dirs])
    print(f"catalog: {args.catalog}")
    return 0
