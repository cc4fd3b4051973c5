"""``dlcore run`` for a config with a ``sweep`` section: a study of points × seeds.

The sweep section (all keys optional except ``axes``)::

    c.sweep = ml_collections.ConfigDict(dict(
        axes=dict(                                   # name -> spec (see dlcore.sweep.axis_from_spec)
            learning_rate=dict(scale="log", low=1e-3, high=1e-1, steps="1-3"),  # path: hparams.<name>
            norm=dict(path="model.norm", values=("none", "batch")),             # structural
        ),
        strategy="grid",        # grid | random | refine
        seeds=4,                # seeds per point: a count, "0:8" or a list (--seeds overrides)
        study_seed=0,           # keys random search and the report's bootstrap
        num_points=0,           # random search: points (default: budget.max_points)
        refine=dict(start="grid", rounds=1, top_k=1, num=3),
        budget=dict(max_points=0, max_steps=0),     # 0 = unlimited; max_steps counts all runs' steps
        select=dict(metric="val/accuracy", mode="auto", statistic="mean", group_by=()),
        max_parallel=0,         # most runs in one program (0: all runs of a structure at once)
        confidence=0.95,
        bootstrap_resamples=2000,
    ))
"""

from __future__ import annotations

import json
import os

import ml_collections
import numpy as np

from dlcore.errors import ConfigError

SWEEP_KEYS = ("axes", "strategy", "seeds", "study_seed", "num_points", "refine", "budget", "select", "max_parallel",
              "confidence", "bootstrap_resamples")
FORBIDDEN_ROOTS = ("sweep", "seeds")


def _plain(v):
    if isinstance(v, ml_collections.ConfigDict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(x) for x in v)
    return v


def parse_sweep(config: ml_collections.ConfigDict, seeds_arg=None) -> dict:
    """Read and validate ``config.sweep``; returns the keyword arguments of the study."""
    from dlcore.sweep import Budget, Selection, check_selection, parse_seeds, search_plan, space_from_spec

    sw = _plain(config.sweep)
    if not isinstance(sw, dict):
        raise ConfigError("config.sweep must be a section (ml_collections.ConfigDict) with at least 'axes'")
    unknown = sorted(set(sw) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"sweep.{unknown[0]} is not a sweep setting; valid: {', '.join(SWEEP_KEYS)}")
    space = space_from_spec(sw.get("axes"))
    for a in space.axes:
        root = a.path.split(".")[0]
        if root in FORBIDDEN_ROOTS:
            why = "it is not a run setting"
            raise ConfigError(f"sweep.axes.{a.name}.path={a.path!r} cannot be swept ({why})")
        if not a.path.startswith("hparams."):
            _check_path(config, a.path, f"sweep.axes.{a.name}.path")
    budget_d = dict(sw.get("budget") or {})
    bad = sorted(set(budget_d) - {"max_points", "max_steps"})
    if bad:
        raise ConfigError(f"sweep.budget.{bad[0]} is not a budget setting; valid: max_points, max_steps")
    budget = Budget(**{k: budget_d[k] for k in ("max_points", "max_steps") if k in budget_d})
    sel_d = dict(sw.get("select") or {})
    bad = sorted(set(sel_d) - set(Selection._fields))
    if bad:
        raise ConfigError(f"sweep.select.{bad[0]} is not a selection setting; valid: {', '.join(Selection._fields)}")
    selection = check_selection(Selection(**sel_d), space)
    refine = dict(sw.get("refine") or {})
    strategy = sw.get("strategy", "grid")
    # Validate the strategy's options now (before any run directory or training).
    search_plan(space, strategy, study_seed=sw.get("study_seed", 0), num_points=sw.get("num_points", 0),
                budget=budget, **{k: v for k, v in refine.items() if k in ("rounds", "top_k", "num", "start")})
    confidence = sw.get("confidence", 0.95)
    if not isinstance(confidence, float) or not 0 < confidence < 1:
        raise ConfigError(f"sweep.confidence must be a number in (0, 1), got {confidence!r}")
    resamples = sw.get("bootstrap_resamples", 2000)
    if not isinstance(resamples, int) or resamples < 100:
        raise ConfigError(f"sweep.bootstrap_resamples must be an integer ≥ 100, got {resamples!r}")
    seeds_spec = seeds_arg if seeds_arg is not None else sw.get("seeds", config.get("seeds", 1))
    return dict(
        space=space, seeds=parse_seeds(seeds_spec), strategy=strategy, study_seed=int(sw.get("study_seed", 0)),
        num_points=int(sw.get("num_points", 0)), refine=refine, budget=budget, selection=selection,
        max_parallel=sw.get("max_parallel", 0), confidence=float(confidence), bootstrap_resamples=int(resamples),
    )


def _check_path(config, path: str, field: str) -> None:
    node = config
    parts = path.split(".")
    for j, part in enumerate(parts):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            where = "the config" if j == 0 else ".".join(parts[:j])
            valid = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else "none"
            raise ConfigError(f"{field}: {where} has no {part!r} (valid: {valid})")
        node = node[part]


def _set_path(cfg, path: str, value, field: str) -> None:
    parts = path.split(".")
    node = cfg
    for part in parts[:-1]:
        node = node[part]
    try:
        if parts[0] == "hparams":
            node[parts[-1]] = float(value)
        else:
            cur = node[parts[-1]] if parts[-1] in node else None
            if isinstance(cur, tuple) and isinstance(value, list):
                value = tuple(value)
            if isinstance(cur, float) and isinstance(value, int):
                value = float(value)
            if isinstance(cur, int) and not isinstance(cur, bool) and isinstance(value, float) and value.is_integer():
                value = int(value)
            node[parts[-1]] = value
    except (TypeError, ValueError, KeyError) as e:
        raise ConfigError(f"{field}: cannot set config.{path} to {value!r} ({e})") from None


def run_options(cfg):
    """The run section of a config as :class:`dlcore.train.RunOptions` (steps, batch, evaluation,
    and ``early_stopping=dict(patience=…, metric=…, mode=…)`` when the config has one; patience 0
    turns it off, so it can be a study axis)."""
    from dlcore.train import EarlyStopping, RunOptions

    es = cfg.get("early_stopping", None)
    hooks = ()
    if es and _plain(es).get("patience", 1) != 0:
        es = _plain(es)
        if not isinstance(es, dict):
            raise ConfigError(f"early_stopping must be a section like dict(patience=5, metric='loss'), got {es!r}")
        try:
            hooks = (EarlyStopping(**es),)
        except TypeError as e:
            raise ConfigError(f"early_stopping: {e}; valid keys: patience, metric, mode, min_delta, restore_best") \
                from None
    return RunOptions(num_steps=int(cfg.num_steps), batch_size=int(cfg.batch_size), eval_every=int(cfg.eval_every),
                      hooks=hooks)


class ConfigBuild:
    """The study's ``build(structure) -> Setup``: the config with the structural values set; one
    :class:`dlcore.sweep.Setup` per structure, built once (``built`` holds them)."""

    def __init__(self, config: ml_collections.ConfigDict, num_classes: int):
        self.base = config.copy_and_resolve_references()
        if "sweep" in self.base:
            del self.base["sweep"]
        self.num_classes = num_classes
        self.built: dict = {}

    def __call__(self, structure):
        from dlcore.cli._build import build_measure, build_recipe, validate_run_config
        from dlcore.sweep import Setup

        key = repr(sorted(structure.items()))
        if key not in self.built:  # one recipe per structure: the same object for every stage
            cfg = self.base.copy_and_resolve_references()
            for path, value in structure.items():
                _set_path(cfg, path, value, f"sweep.axes ({path})")
            validate_run_config(cfg)
            recipe = build_recipe(cfg, self.num_classes)
            data = None
            if any(path.split(".")[0] == "dataset" for path in structure):  # e.g. a synthetic task's lag
                from dlcore.cli._build import build_dataset, validate_data_fit

                data = build_dataset(cfg.dataset)
                validate_data_fit(cfg, data)
            self.built[key] = Setup(recipe, run_options(cfg), {k: float(v) for k, v in cfg.hparams.items()},
                                    build_measure(cfg, recipe), data)
        return self.built[key]


def make_build(config: ml_collections.ConfigDict, num_classes: int) -> ConfigBuild:
    """The study's ``build(structure) -> Setup`` (see :class:`ConfigBuild`)."""
    return ConfigBuild(config, num_classes)


def plain_spec(seeds) -> dict:
    """The study description of a plain run: no axes, one point, every seed."""
    from dlcore.sweep import Budget, Selection, Space

    return dict(space=Space(()), seeds=list(seeds), strategy="grid", study_seed=0, num_points=0, refine={},
                budget=Budget(), selection=Selection(), max_parallel=0, confidence=0.95, bootstrap_resamples=2000)


def validate_axes(config, spec: dict, build) -> None:
    """Check every grid value before any training: hyperparameter ranges and each structure's config."""
    import itertools

    from dlcore.cli._build import validate_run_config
    from dlcore.optim import check_hparams

    base = config.copy_and_resolve_references()
    if "sweep" in base:
        del base["sweep"]
    space = spec["space"]
    for a in space.vectorized():
        try:
            vals = a.grid()
        except ConfigError:
            vals = (a.low, a.high)  # random search: the bounds
        for v in vals:
            cfg = base.copy_and_resolve_references()
            _set_path(cfg, a.path, v, f"sweep.axes.{a.name}")
            try:
                validate_run_config(cfg)
                check_hparams({a.path.split(".", 1)[1]: np.float32(v)})
            except ConfigError as e:
                raise ConfigError(f"sweep.axes.{a.name} value {v:g}: {e}") from None
    grids = []
    for a in space.structural():
        try:
            grids.append([(a.path, v) for v in a.grid()])
        except ConfigError:
            grids.append([(a.path, a.low), (a.path, a.high)])
    for combo in itertools.islice(itertools.product(*grids), 256):
        build(dict(combo))


def _meta(spec: dict, result) -> dict:
    sel = result.selection
    return dict(
        strategy=spec["strategy"], study_seed=spec["study_seed"], axes=result.space.to_dict(),
        select=dict(metric=sel.metric, mode=sel.mode, statistic=sel.statistic, group_by=list(sel.group_by),
                    higher_is_better=sel.higher_is_better),
        confidence=spec["confidence"], bootstrap_resamples=spec["bootstrap_resamples"],
        max_parallel=spec["max_parallel"], budget=spec["budget"]._asdict(), seeds=list(result.seeds),
        points=result.points, stages=result.stages, selected=result.selected,
        structures=[dict(g, structure={k: v for k, v in g["structure"].items()}) for g in result.groups],
    )


def write_study_outputs(run_dir: str, name: str, config, spec: dict, result, *, tensorboard: bool = True,
                        resumed_from_step=None) -> str:
    """A study's outputs: results.csv (point × seed), history.npz, TensorBoard events per point,
    manifest.json, and the report (summary.txt and plots); returns the report text."""
    from dlcore import manifest, tracking
    from dlcore.cli._outputs import write_csv, write_history
    from dlcore.cli._report import report_run
    from dlcore.sweep import study_history, study_rows

    write_csv(os.path.join(run_dir, "results.csv"), study_rows(result))
    hist = study_history(result)
    write_history(os.path.join(run_dir, "history.npz"), {k: v for k, v in hist.items() if k != "seeds"},
                  result.seeds)
    if tensorboard:
        for i, h in enumerate(result.histories):
            tracking.write_scalars(os.path.join(run_dir, "tb", f"point{i}"), h, result.seeds,
                                   tags={"experiment": name, "point": json.dumps(result.points[i], default=str)})
    hashes = {f"point{i}/seed{s}": h for i, hs in enumerate(result.hashes) for s, h in zip(result.seeds, hs)}
    extra = {"study": _meta(spec, result), "params_sha256": hashes, "timing": result.timing}
    if resumed_from_step is not None:
        extra["resumed_from_step"] = resumed_from_step
    man = manifest.build_manifest(experiment=name, config=config.to_dict(), seeds=result.seeds, params_hashes=[],
                                  extra=extra)
    manifest.write_json_atomic(os.path.join(run_dir, "manifest.json"), man)
    return report_run(run_dir)  # summary.txt and plots, the same as `dlcore report RUN_DIR`


def describe_study(result) -> str:
    """A line on what ran where."""
    import jax

    t = result.timing
    devs = jax.devices()
    n_runs = len(result.points) * len(result.seeds)
    return (
        f"\n{len(result.points)} points × {len(result.seeds)} seeds = {n_runs} runs in {t['programs']} compiled "
        f"program{'s' * (t['programs'] != 1)} · {jax.default_backend()} × {len(devs)} device"
        f"{'s' * (len(devs) != 1)} · wall {t['wall_s']:.1f} s (compile {t['compile_s']:.1f} s)")
