"""``dlcore run``: train an experiment for many seeds as one program and write a run directory."""

from __future__ import annotations

import os
import time

import numpy as np

from dlcore.cli._build import build_dataset, build_recipe, validate_run_config
from dlcore.cli._config import apply_overrides, load_experiment
from dlcore.cli._outputs import make_run_dir, results_rows, summary_table, write_csv, write_history


def add_arguments(p) -> None:
    p.add_argument("experiment", help="experiment name in ./experiments or path to a .py file with get_config()")
    p.add_argument("--seeds", default=None, help="a count (8), a range (0:16) or a list (1,2,5); default: config.seeds")
    p.add_argument("--out", default="runs", help="root of run directories (default: runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-tensorboard", action="store_true", help="skip TensorBoard event files")


def prepare(args, overrides):
    """Load, override and validate the config; returns ``(name, config, seeds)``."""
    from dlcore.sweep import parse_seeds

    name, module = load_experiment(args.experiment)
    config = apply_overrides(module.get_config(), overrides)
    validate_run_config(config)
    seeds = parse_seeds(args.seeds if args.seeds is not None else config.get("seeds", 1))
    return name, config, seeds


def write_outputs(run_dir, name, config, seeds, result, wall_s, *, tensorboard=True, extra=None):
    """Write results.csv, history.npz, TensorBoard events, curves.png and manifest.json."""
    import jax

    from dlcore import manifest, plots, tracking

    hashes = manifest.run_hashes(result.state.params, len(seeds))
    history = jax.device_get(result.history)
    write_csv(os.path.join(run_dir, "results.csv"), results_rows(seeds, result.final, result.state, hashes, history))
    write_history(os.path.join(run_dir, "history.npz"), history, seeds)
    if tensorboard:
        tracking.write_scalars(os.path.join(run_dir, "tb"), history, seeds, tags={"experiment": name})
    plots.plot_learning_curves(history, os.path.join(run_dir, "curves.png"), title=name)
    timing = dict(result.timing, wall_s=wall_s)
    man = manifest.build_manifest(
        experiment=name, config=config.to_dict(), seeds=seeds, params_hashes=hashes,
        extra={"timing": timing, **(extra or {})},
    )
    manifest.write_json_atomic(os.path.join(run_dir, "manifest.json"), man)
    return hashes


def cmd_run(args, overrides) -> int:
    import jax

    from dlcore.sweep import run_seeds
    from dlcore.train import RUNNING

    name, config, seeds = prepare(args, overrides)
    data = build_dataset(config.dataset)
    recipe = build_recipe(config, data.num_classes)
    run_dir = make_run_dir(args.out, name)  # after every input is validated, before any training
    t0 = time.perf_counter()
    result = run_seeds(
        recipe, data, seeds, hparams=dict(config.hparams), num_steps=config.num_steps,
        batch_size=config.batch_size, eval_every=config.eval_every,
        progress=False if args.no_progress else f"{name} × {len(seeds)} seeds",
    )
    jax.block_until_ready(result.state.params)
    wall = time.perf_counter() - t0
    write_outputs(run_dir, name, config, seeds, result, wall, tensorboard=not args.no_tensorboard)

    ok = np.asarray(result.state.status) == RUNNING
    devs = jax.devices()
    print(f"{name} · {len(seeds)} seed{'s' * (len(seeds) != 1)} · {config.num_steps} steps · "
          f"{jax.default_backend()} × {len(devs)} device{'s' * (len(devs) != 1)}")
    print(summary_table(result.final, ok_mask=ok if ok.any() else None))
    t = result.timing
    print(f"wall {wall:.1f} s (compile {t['compile_s']:.1f} s) · {t['steps_per_s']:,.0f} steps/s · "
          f"{t['steps_per_s'] * len(seeds):,.0f} seed-steps/s")
    if not ok.all():
        bad = [f"{s} (step {int(st)})" for s, st, o in zip(seeds, np.asarray(result.state.stop_step), ok) if not o]
        print(f"diverged/stopped and left out of the table: {', '.join(bad)}")
    print(f"outputs: {run_dir}")
    return 0
