"""``dlcore run``: every experiment — a plain run or a study — through one engine.

A plain run is a study with no axes: ``dlcore run X`` builds one study description (the search
space, possibly empty; the seeds; a ``build(structure) -> Setup`` from the config) and trains it
with :func:`dlcore.sweep.run_study`, whose every unit of work goes through the same compiled loop,
checkpoints (``--checkpoint-every``, ``--keep``), resume (``--resume``, ``--fallback``), NaN guard
and ``--debug-nans`` report, progress bar and TensorBoard events. Outputs: a plain run writes one
row per seed; a study one row per point × seed, with its statistics report.
"""

from __future__ import annotations

import importlib
import os
import threading
import time

import numpy as np

from dlcore.cli._build import build_dataset, validate_data_fit, validate_run_config
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
    """A plain run's outputs: results.csv, history.npz, TensorBoard events, curves.png, manifest.json."""
    from dlcore import manifest, plots, tracking
    from dlcore.cli._checkpointing import divergence_columns
    from dlcore.host import to_host

    hashes = manifest.run_hashes(result.state.params, len(seeds))
    history = to_host(result.history)
    rows = results_rows(seeds, result.final, result.state, hashes, history)
    for row, cols in zip(rows, divergence_columns(result.state, history)):
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
    from dlcore.cli import _measure

    if _measure.is_measured(args.experiment):  # its runs are a function returning metrics (no training loop)
        return _measure.cmd_run_measured(args, overrides)
    given = [f for f, v in (("--coordinator", args.coordinator), ("--num-processes", args.num_processes),
                            ("--process-id", args.process_id)) if v is not None]
    if given and not args.distributed:
        from dlcore.errors import ConfigError

        raise ConfigError(f"{given[0]} only applies with --distributed; add --distributed or drop {given[0]}")
    if getattr(args, "distributed", False):  # before any JAX computation
        from dlcore.parallel import initialize

        initialize(args.coordinator, args.num_processes, args.process_id, timeout_s=args.coordinator_timeout)
    import jax

    from dlcore.checkpoint import StudyCheckpoints
    from dlcore.cli import _checkpointing
    from dlcore.cli._study import make_build, plain_spec, parse_sweep, validate_axes
    from dlcore.parallel import barrier, broadcast_string, is_main_process
    from dlcore.sweep import default_memory_budget, first_stage_points, run_study, runs_in_memory, search_plan

    name, config, seeds = prepare(args, overrides)
    is_study = "sweep" in config
    spec = parse_sweep(config, args.seeds) if is_study else plain_spec(seeds)
    _checkpointing.check_flags(args)
    resume = _checkpointing.check_resume(args, name, config, spec["seeds"]) if args.resume else None
    if resume is not None:
        spec["seeds"] = resume.seeds
    data = _load_data(config, spec, is_study)
    validate_data_fit(config, data)
    build = make_build(config, data.num_classes)
    validate_axes(config, spec, build)  # every structure builds: bad values fail before any run directory
    plan_points = search_plan(spec["space"], spec["strategy"], study_seed=spec["study_seed"],
                              num_points=spec["num_points"], budget=spec["budget"], **spec["refine"])
    first_stage_points(plan_points, build, spec["seeds"])  # the first stage fits the budget
    budget = _memory_budget()
    devices = jax.devices()
    for setup in build.built.values():  # a run that cannot fit in memory is refused now, not mid-study
        runs_in_memory(setup, data if setup.data is None else setup.data, budget or default_memory_budget(devices),
                       len(devices))
    # After every input is validated, before any training.
    run_dir = resume.run_dir if resume else (make_run_dir(args.out, name) if is_main_process() else None)
    run_dir = broadcast_string(run_dir)  # one directory for all processes (only process 0 writes files)
    plan = StudyCheckpoints(run_dir, every=args.checkpoint_every, keep=args.keep, fallback=args.fallback,
                            metadata=_checkpointing.run_metadata(name, config, spec["seeds"]))
    label = f"{name} × {len(spec['seeds'])} seeds" if not is_study else name
    threading.Thread(target=_preload, args=(is_main_process(),), daemon=True, name="dlcore-preload").start()
    t0 = time.perf_counter()
    result = run_study(
        spec["space"], build, data, spec["seeds"], strategy=spec["strategy"], study_seed=spec["study_seed"],
        num_points=spec["num_points"], refine=spec["refine"], budget=spec["budget"], selection=spec["selection"],
        max_parallel=spec["max_parallel"], progress=False if args.no_progress or not is_main_process() else label,
        checkpoint=plan, keep_opt_state=args.debug_nans, memory_budget=budget,
    )
    wall = time.perf_counter() - t0
    if not is_main_process():  # multi-host: process 0 writes every output; wait until it has
        barrier("outputs-written")
        return 0
    try:
        _write_all(args, name, config, spec, build, data, run_dir, result, resume, is_study, t0, wall)
    finally:
        barrier("outputs-written")
    return 0


def _preload(outputs: bool) -> None:
    """Import orbax (first needed by the first checkpoint) and matplotlib (the outputs' curves) in a
    background thread: it runs while the main thread compiles with the GIL released, so on the
    2-core reference machine ~0.5 s of imports leave the critical path (``dlcore run mnist1d_mlp
    --seeds 32``: outputs 0.8 -> 0.5 s). A failed import is reported where the module is used."""
    from dlcore import plots

    loads = [lambda: importlib.import_module("orbax.checkpoint.checkpoint_managers")]
    if outputs:  # only process 0 writes the outputs
        loads.append(plots.pyplot)
    for load in loads:
        try:
            load()
        except Exception:  # noqa: BLE001 - imported again, and the error reported, where it is used
            pass


def _write_all(args, name, config, spec, build, data, run_dir, result, resume, is_study, t0, wall) -> None:
    """Process 0: the run directory's files and the printed summary."""
    from dlcore.cli import _checkpointing
    from dlcore.cli._study import describe_study

    resumed = None if resume is None else resume.step
    if is_study:
        from dlcore.cli._study import write_study_outputs

        print(write_study_outputs(run_dir, name, config, spec, result, tensorboard=not args.no_tensorboard,
                                  resumed_from_step=resumed))
        print(describe_study(result))
        lines = _checkpointing.divergence_lines(result, build, data, args.debug_nans)
    else:
        res = plain_result(result)
        write_outputs(run_dir, name, config, result.seeds, res, wall, tensorboard=not args.no_tensorboard,
                      extra={"resumed_from_step": resumed} if resumed is not None else None)
        _print_plain(name, config, result.seeds, res, wall)
        lines = _checkpointing.divergence_lines(result, build, data, args.debug_nans)
    for line in lines:
        print(line)
    if resumed is not None:
        print(f"resumed from the checkpoint at step {resumed}")
    print(phases_line(t0, wall))
    print(f"outputs: {run_dir}")


def _load_data(config, spec, is_study):
    """The dataset; in a multi-process run whose seeds cannot be split whole over the processes (so the
    processes share each run's batch: a data axis across processes), each process reads only the training
    rows its devices hold. Every process reports the rows it read and the host memory they took (the
    tracemalloc peak of reading and placing them, above what was held before; the validation and test
    splits, and the standardization statistics streamed over the training split, are not counted)."""
    import sys
    import tracemalloc

    import jax

    procs = jax.process_count()
    if procs == 1:
        return build_dataset(config.dataset)
    shard = len(spec["seeds"]) % procs != 0
    data = build_dataset(config.dataset, lazy_train=shard)
    tracemalloc.start()
    try:
        n = int(data.x_train.shape[0])
        rows, rows_peak = [(0, n)] if not shard else [], None
        if shard and not is_study:  # a plain run: its one mesh is known, place the rows now (measured)
            from jax.sharding import NamedSharding, PartitionSpec as P

            from dlcore.parallel import put_global, replicated, shard_rows, sweep_mesh

            mesh = sweep_mesh(len(spec["seeds"]), config.batch_size)
            rep = replicated(mesh)
            evals = {k: put_global(getattr(data, k), rep) for k in ("x_val", "y_val", "x_test", "y_test")}
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            by_rows = NamedSharding(mesh, P("data"))
            source = data.x_train
            placed = dict(x_train=shard_rows(source, by_rows), y_train=shard_rows(data.y_train, by_rows))
            rows_peak = tracemalloc.get_traced_memory()[1] - base
            rows = sorted(set(source.rows_read))
            data = data.replace(**placed, **evals)  # on the mesh the run uses: kept as they are
    finally:
        tracemalloc.stop()
    row_bytes = int(np.prod(data.x_train.shape[1:])) * np.dtype(data.x_train.dtype).itemsize + 4  # x and label
    read = sum(b - a for a, b in rows)
    what = ", ".join(f"{a}:{b}" for a, b in rows) or "none yet (each unit reads its own)"
    took = f", {rows_peak / 1e6:.2f} MB at peak to read and place them" if rows_peak is not None else ""
    print(f"dlcore: process {jax.process_index()} of {procs}: training rows {what} of {n} "
          f"({read * row_bytes / 1e6:.2f} MB of {n * row_bytes / 1e6:.2f} MB){took}", file=sys.stderr, flush=True)
    return data


def phases_line(t0: float, wall: float) -> str:
    """Where the process's time went: start-up (imports, data, checks), training, outputs."""
    from dlcore.cli import STARTED

    now = time.perf_counter()
    return (f"time: start-up {t0 - STARTED:.1f} s · training {wall:.1f} s · outputs {now - t0 - wall:.1f} s · "
            f"total {now - STARTED:.1f} s")


MEMORY_ENV = "DLCORE_MEMORY_BUDGET"


def _memory_budget() -> int | None:
    """``$DLCORE_MEMORY_BUDGET`` (bytes) if set: runs trained at once beyond it are split into chunks."""
    env = os.environ.get(MEMORY_ENV)
    if not env:
        return None
    try:
        value = float(env)
    except ValueError:
        value = 0.0
    if not value > 0 or value != value or value == float("inf"):
        from dlcore.errors import ConfigError

        raise ConfigError(f"{MEMORY_ENV}={env!r} must be a positive number of bytes (e.g. 8e9); unset it for "
                          "half the available memory")
    return int(value)


def plain_result(result):
    """A study without axes as a :class:`dlcore.train.FitResult` of its seeds (host arrays)."""
    from dlcore.train import FitResult

    final = {k: np.asarray(v[0]) for k, v in result.metrics.items()}
    t = result.timing
    timing = dict(compile_s=t["compile_s"], run_s=t["run_s"], steps_per_s=t["steps_per_s"])
    return FitResult(result.states[0], result.histories[0], final, timing)


def _print_plain(name, config, seeds, res, wall) -> None:
    import jax

    from dlcore.status import RUNNING

    ok = np.asarray(res.state.status) == RUNNING
    devs = jax.devices()
    print(f"{name} · {len(seeds)} seed{'s' * (len(seeds) != 1)} · {config.num_steps} steps · "
          f"{jax.default_backend()} × {len(devs)} device{'s' * (len(devs) != 1)}")
    print(summary_table(res.final, ok_mask=ok if ok.any() else None))
    t = res.timing
    print(f"wall {wall:.1f} s (compile {t['compile_s']:.1f} s) · {t['steps_per_s']:,.0f} steps/s · "
          f"{t['steps_per_s'] * len(seeds):,.0f} seed-steps/s")
    if not ok.all():
        bad = [f"{s} (step {int(st)})" for s, st, o in zip(seeds, np.asarray(res.state.stop_step), ok) if not o]
        print(f"diverged/stopped and left out of the table: {', '.join(bad)}")
