"""``dlcore run``'s checkpoints: ``--checkpoint-every``, ``--keep``, ``--resume RUN_DIR``, ``--debug-nans``."""

from __future__ import annotations

import json
import os
from typing import NamedTuple

from dlcore.errors import ConfigError

# Config keys that may change when a run is resumed (training longer is fine; anything else would
# silently mix two different experiments in one run directory).
RESUMABLE_CHANGES = ("num_steps",)


def add_arguments(p) -> None:
    p.add_argument("--checkpoint-every", type=int, default=1000, metavar="N",
                   help="checkpoint the whole sweep every N steps (at the next evaluation) and at the end; "
                        "0: only at the end (default: 1000)")
    p.add_argument("--keep", type=int, default=3, metavar="K",
                   help="keep the K newest checkpoints, plus the best by validation accuracy (default: 3)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue RUN_DIR from its newest valid checkpoint and write the outputs there")
    p.add_argument("--fallback", action="store_true",
                   help="with --resume: if the newest checkpoint is damaged, continue from the previous valid one")
    p.add_argument("--new-schedule", action="store_true",
                   help="with --resume and a changed --config.num_steps: accept that a learning-rate schedule "
                        "stretched to the new length continues from the old one's position")
    p.add_argument("--debug-nans", action="store_true",
                   help="for each diverged seed, replay its failing step op by op and name the op that made the NaN")


class Resume(NamedTuple):
    run_dir: str
    seeds: list
    step: int


def _plain(x):
    return json.loads(json.dumps(x, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def _diff(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{prefix}{k}.")
        return out
    return [] if a == b else [(prefix[:-1], a, b)]


def check_flags(args) -> None:
    """``--checkpoint-every``/``--keep``/``--fallback`` values, before any run directory exists."""
    from dlcore.cli._build import validate_checkpoint_args

    validate_checkpoint_args(args)
    for flag, given in (("--fallback", args.fallback), ("--new-schedule", args.new_schedule)):
        if given and not args.resume:
            raise ConfigError(f"{flag} only applies with --resume RUN_DIR; drop it or add --resume")


def run_metadata(name: str, config, seeds) -> dict:
    """What every checkpoint of a run records (and ``--resume`` checks)."""
    return {"experiment": name, "config": _plain(config.to_dict()), "seeds": [int(s) for s in seeds]}


def _newest_meta(run_dir: str, fallback: bool) -> tuple[dict, int]:
    """The metadata and step of the newest readable checkpoint of any unit of ``run_dir``."""
    from dlcore.checkpoint import checkpoint_steps, unit_dirs
    from dlcore.checkpoint._errors import read_meta
    from dlcore.errors import CheckpointError

    found, errors, newest = None, [], -1
    for d in unit_dirs(run_dir):
        for s in checkpoint_steps(d)[::-1]:
            try:
                meta = read_meta(os.path.join(d, str(s)))
            except CheckpointError as e:
                if not fallback:
                    raise CheckpointError(f"{e}; pass --fallback to resume from the previous valid checkpoint") from None
                errors.append(str(e))
                continue
            if found is None:
                found = meta
            newest = max(newest, int(meta["step"]))
            break
    if found is None:
        raise CheckpointError(f"no usable checkpoint in {run_dir}: {'; '.join(errors)}")
    return found, newest


def check_resume(args, name: str, config, seeds: list) -> Resume:
    """Validate ``--resume RUN_DIR`` against this command, before any training.

    The run directory must hold checkpoints of the same experiment, config (``num_steps`` may
    grow) and seeds, and be writable.
    """
    from dlcore.checkpoint._restore import checkpoint_dir
    from dlcore.cli._outputs import check_writable

    from dlcore.checkpoint import checkpoint_steps, read_plan, unit_dirs

    run_dir = os.path.abspath(args.resume)
    if not os.path.isdir(run_dir):
        raise ConfigError(f"--resume {args.resume}: no such run directory")
    if not any(checkpoint_steps(d) for d in unit_dirs(run_dir)):
        raise ConfigError(f"--resume {args.resume}: no checkpoint in {checkpoint_dir(run_dir)}; "
                          "it was run without checkpoints or killed before the first one — start it again")
    meta, newest = _newest_meta(run_dir, args.fallback)
    rec = read_plan(run_dir) or meta.get("metadata", {})
    if rec.get("experiment") not in (None, name):
        raise ConfigError(f"--resume {args.resume} is a run of {rec['experiment']!r}, not {name!r}; "
                          f"run: dlcore run {rec['experiment']} --resume {args.resume}")
    if "config" in rec:
        diffs = [d for d in _diff(rec["config"], _plain(config.to_dict())) if d[0] not in RESUMABLE_CHANGES]
        if diffs:
            shown = "; ".join(f"--config.{k}: the run used {a!r}, this command {b!r}" for k, a, b in diffs[:3])
            raise ConfigError(f"--resume {args.resume} was run with another config ({shown}); "
                              "resume with the same --config overrides (only num_steps may change)")
        old_steps = rec["config"].get("num_steps")
        schedule = _plain(config.to_dict()).get("optimizer", {}).get("schedule", "constant")
        if old_steps != config.num_steps and schedule not in ("constant", None) and not args.new_schedule:
            raise ConfigError(
                f"--resume {args.resume}: num_steps changes from {old_steps} to {config.num_steps} and the "
                f"{schedule!r} learning-rate schedule is defined over num_steps, so the run would switch "
                "schedules mid-way; keep num_steps, or pass --new-schedule to accept it")
    rec_seeds = [int(s) for s in rec.get("seeds", seeds)]
    if args.seeds is not None and [int(s) for s in seeds] != rec_seeds:
        raise ConfigError(f"--resume {args.resume} trains seeds {rec_seeds}, not {list(seeds)}; drop --seeds")
    if newest > config.num_steps:
        raise ConfigError(f"--resume {args.resume} is at step {newest}, past --config.num_steps={config.num_steps}")
    check_writable(run_dir, "make it writable")
    return Resume(run_dir, rec_seeds, newest)


def divergence_columns(state, history) -> list[dict]:
    """Per seed ``{"diverged_on": "loss" | "gradient" | ...}`` (empty string if it did not diverge)."""
    from dlcore.diagnostics import divergence_report

    return [{"diverged_on": r["quantity"] if r else ""} for r in divergence_report(state, history)]


def divergence_lines(result, build, data, debug_nans: bool) -> list[str]:
    """One line per diverged run of a study result: point, seed, step and quantity; with
    ``debug_nans`` also the op that made the first NaN/Inf (its step replayed op by op)."""
    from dlcore.diagnostics import divergence_report, find_nan_op

    lines = []
    for i, (point, state, hist) in enumerate(zip(result.points, result.states, result.histories)):
        if state is None:
            continue
        where = "" if not point else f"point {i} ({', '.join(f'{k}={v}' for k, v in point.items())}) "
        for j, rep in enumerate(divergence_report(state, hist)):
            if rep is None:
                continue
            s = result.seeds[j]
            if debug_nans:
                setup = build({a.path: point[a.name] for a in result.space.structural()})
                op = find_nan_op(setup.recipe, data if setup.data is None else setup.data, state,
                                 batch_size=setup.options.batch_size, run=j)
                lines.append(f"{where}seed {s} diverged: {op}")
            else:
                lines.append(f"{where}seed {s} diverged at step {rep['step']}: non-finite {rep['quantity']} "
                             "(its last finite parameters are kept; --debug-nans names the op)")
    return lines
