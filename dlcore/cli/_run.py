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
    # Multi-host (dlcore.parallel.initialize): auto-detects SLURM/Open MPI/Kubernetes/Cloud TPU, else the flags.
    p.add_argument("--distributed", action="store_true", help="join a multi-process run (jax.distributed)")
    p.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 (with --distributed)")
    p.add_argument("--num-processes", type=int, default=None, help="number of processes (with --distributed)")
    p.add_argument("--process-id", type=int, default=None, help="this process's id, 0..N-1 (with --distributed)")
    p.add_argument("--coordinator-timeout", type=float, default=120.0,
                   help="seconds to wait for the other processes (default: 120)")
    from dlcore.cli import _checkpointing

    _checkpointing.add_arguments(p)  # --checkpoint-every, --keep, --resume, --fallback, --debug-nans


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

    from dlcore.cli._checkpointing import divergence_columns

    hashes = manifest.run_hashes(result.state.params, len(seeds))
    history = jax.device_get(result.history)
    rows = results_rows(seeds, result.final, result.state, hashes, history)
    for row, cols in zip(rows, divergence_columns(result, history)):
        row.update(cols)  # diverged seeds: which quantity went non-finite (status/stop_step say when)
    write_csv(os.path.join(run_dir, "results.csv"), rows)
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
    if getattr(args, "distributed", False):  # before any JAX computation
        from dlcore.parallel import initialize

        initialize(args.coordinator, args.num_processes, args.process_id, timeout_s=args.coordinator_timeout)
    import jax

    from dlcore.parallel import broadcast_string, is_main_process, to_host
    from dlcore.cli import _checkpointing
    from dlcore.train import RUNNING

    name, config, seeds = prepare(args, overrides)
    if "sweep" in config:  # a study: points × seeds (dlcore/cli/_study.py)
        from dlcore.cli._study import cmd_study

        return cmd_study(args, name, config)
    resume = _checkpointing.check_resume(args, name, config, seeds) if args.resume else None
    seeds = resume.seeds if resume else seeds
    data = build_dataset(config.dataset)
    recipe = build_recipe(config, data.num_classes)
    # After every input is validated, before any training.
    run_dir = resume.run_dir if resume else (make_run_dir(args.out, name) if is_main_process() else None)
    run_dir = broadcast_string(run_dir)  # one directory for all processes (only process 0 writes files)
    t0 = time.perf_counter()
    result, resumed = _checkpointing.run_with_checkpoints(
        recipe, data, seeds, config, run_dir, args, name=name, resume=resume,
        progress=False if args.no_progress else f"{name} × {len(seeds)} seeds",
    )
    jax.block_until_ready(result.state.params)
    wall = time.perf_counter() - t0
    if jax.process_count() > 1:
        result = result._replace(state=to_host(result.state))  # every process joins the gather
        if not is_main_process():
            return 0
    write_outputs(run_dir, name, config, seeds, result, wall, tensorboard=not args.no_tensorboard,
                  extra={"resumed_from_step": resumed} if resumed is not None else None)

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
        for line in _checkpointing.divergence_lines(seeds, result, recipe, data, config, args.debug_nans):
            print(line)
    if resumed is not None:
        print(f"resumed from the checkpoint at step {resumed}")
    print(f"outputs: {run_dir}")
    return 0
