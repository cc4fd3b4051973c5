"""``dlcore run`` for a *measured* experiment: its runs are a function returning metrics.

An experiment module that defines ``measure(config, seeds) -> {"val/<m>": [S], "test/<m>": [S]}``
next to ``get_config()`` (with a ``sweep`` section) has no training loop: every point of the search
is the config with the point's values set, measured for all seeds at once
(:func:`dlcore.sweep.run_measured_study`; :func:`dlcore.sweep.measure_seeds` vmaps a pure
``fn(key)`` over them). The outputs are a study's (results.csv, manifest.json, summary.txt and the
metric-vs-axis plots), so ``dlcore report`` and the catalog read them as any other study. There is
nothing to checkpoint or resume: ``--resume`` and ``--distributed`` are refused.
"""

from __future__ import annotations

import sys
import time

from dlcore.errors import ConfigError


def is_measured(spec: str) -> bool:
    """Whether experiment ``spec`` defines ``measure(config, seeds)``."""
    from dlcore.cli._config import load_experiment

    _, module = load_experiment(spec)
    return callable(getattr(module, "measure", None))


def cmd_run_measured(args, overrides) -> int:
    from dlcore.cli._config import apply_overrides, load_experiment
    from dlcore.cli._outputs import make_run_dir
    from dlcore.cli._study import _set_path, parse_sweep, write_study_outputs
    from dlcore.sweep import run_measured_study

    name, module = load_experiment(args.experiment)
    for flag, given in (("--resume", args.resume), ("--distributed", args.distributed),
                        ("--fallback", args.fallback), ("--debug-nans", args.debug_nans)):
        if given:
            raise ConfigError(f"{flag} does not apply to {name}: a measured study (no training loop) has nothing "
                              "to checkpoint, resume or distribute; drop it")
    config = apply_overrides(module.get_config(), overrides)
    if "sweep" not in config:
        raise ConfigError(f"experiment {name} defines measure() but its config has no sweep section; add "
                          "config.sweep (see experiments/_base.py: study)")
    spec = parse_sweep(config, args.seeds)
    base = config.copy_and_resolve_references()
    del base["sweep"]
    space = spec["space"]
    n_done = [0]

    def measure(point, seeds):
        cfg = base.copy_and_resolve_references()
        for a in space.axes:
            _set_path(cfg, a.path, point[a.name], f"sweep.axes.{a.name}")
        t0 = time.perf_counter()
        out = module.measure(cfg, seeds)
        n_done[0] += 1
        if not args.no_progress:
            where = " ".join(f"{k}={v}" for k, v in point.items())
            print(f"{name}: point {n_done[0]} ({where}) × {len(seeds)} seeds: {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr, flush=True)
        return out

    run_dir = make_run_dir(args.out, name)  # after every input is validated
    result = run_measured_study(space, measure, spec["seeds"], strategy=spec["strategy"],
                                study_seed=spec["study_seed"], num_points=spec["num_points"], refine=spec["refine"],
                                budget=spec["budget"], selection=spec["selection"])
    text = write_study_outputs(run_dir, name, config, spec, result, tensorboard=False)
    print(text + _test_plots(run_dir, name, spec, result))
    print(f"\n{len(result.points)} points × {len(result.seeds)} seeds = {len(result.points) * len(result.seeds)} "
          f"measured runs · wall {result.timing['wall_s']:.1f} s")
    print(f"outputs: {run_dir}")
    return 0


def _test_plots(run_dir: str, name: str, spec: dict, result) -> str:
    """Every test metric against every axis with ≥ 2 values, where the selected points have it
    (``test_<metric>_vs_<axis>.png``); returns the report line naming them."""
    import os

    import numpy as np

    import matplotlib.pyplot as plt

    from dlcore import plots
    from dlcore.plots._save import save_figure

    written = []
    sel = result.selected
    for k in sorted(m for m in result.metrics if m.startswith("test/")):
        vals = result.metrics[k][sel]
        if not np.isfinite(vals).any():
            continue
        pts = [result.points[i] for i in sel]
        for a in result.space.axes:
            if len({repr(p[a.name]) for p in pts}) < 2:
                continue
            f = "".join(ch if ch.isalnum() else "_" for ch in k) + f"_vs_{a.name}.png"
            fig = plots.plot_metric_vs_axis(pts, vals, a.name, metric=k, log_x=a.log,
                                            confidence=spec["confidence"], title=name)
            means = np.nanmean(vals, axis=1)
            if (means > 0).all() and means.max() >= 100 * means.min():  # e.g. a variance that explodes
                fig.axes[0].set_yscale("log")
            save_figure(fig, os.path.join(run_dir, f))
            plt.close(fig)
            written.append(f)
    return ("\nplots of the selected points' test metrics: " + ", ".join(written)) if written else ""
