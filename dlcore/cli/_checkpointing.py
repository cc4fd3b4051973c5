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


def check_resume(args, name: str, config, seeds: list) -> Resume:
    """Validate ``--resume RUN_DIR`` against this command, before any training.

    The run directory must hold checkpoints of the same experiment, config (``num_steps`` may
    grow) and seeds, and be writable.
    """
    from dlcore.checkpoint import checkpoint_steps
    from dlcore.checkpoint._errors import read_meta
    from dlcore.checkpoint._restore import checkpoint_dir
    from dlcore.cli._outputs import check_writable
    from dlcore.errors import CheckpointError

    run_dir = os.path.abspath(args.resume)
    if not os.path.isdir(run_dir):
        raise ConfigError(f"--resume {args.resume}: no such run directory")
    steps = checkpoint_steps(run_dir)
    if not steps:
        raise ConfigError(f"--resume {args.resume}: no checkpoint in {checkpoint_dir(run_dir)}; "
                          "it was run without checkpoints or killed before the first one — start it again")
    meta, errors = None, []
    for s in steps[::-1]:
        try:
            meta = read_meta(os.path.join(checkpoint_dir(run_dir), str(s)))
            break
        except CheckpointError as e:
            if not args.fallback:
                raise CheckpointError(f"{e}; pass --fallback to resume from the previous valid checkpoint") from None
            errors.append(str(e))
    if meta is None:
        raise CheckpointError(f"no usable checkpoint in {run_dir}: {'; '.join(errors)}")
    rec = meta.get("metadata", {})
    if rec.get("experiment") not in (None, name):
        raise ConfigError(f"--resume {args.resume} is a run of {rec['experiment']!r}, not {name!r}; "
                          f"run: dlcore run {rec['experiment']} --resume {args.resume}")
    if "config" in rec:
        diffs = [d for d in _diff(rec["config"], _plain(config.to_dict())) if d[0] not in RESUMABLE_CHANGES]
        if diffs:
            shown = "; ".join(f"--config.{k}: the run used {a!r}, this command {b!r}" for k, a, b in diffs[:3])
            raise ConfigError(f"--resume {args.resume} was run with another config ({shown}); "
                              "resume with the same --config overrides (only num_steps may change)")
    rec_seeds = [int(s) for s in rec.get("seeds", seeds)]
    if args.seeds is not None and [int(s) for s in seeds] != rec_seeds:
        raise ConfigError(f"--resume {args.resume} trains seeds {rec_seeds}, not {list(seeds)}; drop --seeds")
    if meta["step"] > config.num_steps:
        raise ConfigError(f"--resume {args.resume} is at step {meta['step']}, past --config.num_steps={config.num_steps}")
    check_writable(run_dir, "make it writable")
    return Resume(run_dir, rec_seeds, int(meta["step"]))


def run_with_checkpoints(recipe, data, seeds, config, run_dir, args, *, name: str, progress, resume: Resume | None):
    """Train the sweep with a checkpoint every ``--checkpoint-every`` steps and at the end.

    With ``resume``, start from the newest valid checkpoint of ``run_dir`` (restored straight onto
    this machine's seed mesh, whatever device count wrote it). Returns ``(result, resumed_step)``.
    """
    import jax
    from jax.sharding import NamedSharding, PartitionSpec as P

    from dlcore.checkpoint import CHECKPOINT_SUBDIR, CheckpointManager
    from dlcore.sweep import init_states, run_batch, seed_mesh

    hparams = dict(config.hparams)
    if args.checkpoint_every < 0 or args.keep < 1:
        raise ConfigError(f"--checkpoint-every must be >= 0 and --keep >= 1, got {args.checkpoint_every} and {args.keep}")
    ckpt = CheckpointManager(
        os.path.join(run_dir, CHECKPOINT_SUBDIR), every=args.checkpoint_every, keep=args.keep,
        metadata={"experiment": name, "config": _plain(config.to_dict()), "seeds": [int(s) for s in seeds]},
    )
    try:
        history, resumed = None, None
        if resume is not None:
            mesh = seed_mesh(len(seeds))
            target = jax.eval_shape(lambda: init_states(recipe, seeds, hparams, data.x_train[:1]))
            state, history = ckpt.resume(
                target, fallback=args.fallback, sharding=NamedSharding(mesh, P("seed")) if mesh is not None else None
            )
            resumed = ckpt.last_step
        else:
            state = init_states(recipe, seeds, hparams, data.x_train[:1])
        result = run_batch(
            recipe, data, state, num_steps=config.num_steps, batch_size=config.batch_size,
            eval_every=config.eval_every, history=history, progress=progress,
            callbacks=[ckpt.callback(config.num_steps)],
        )
        ckpt.finish(result.state, result.history)
    finally:
        ckpt.close()
    return result, resumed


def divergence_columns(result, history) -> list[dict]:
    """Per seed ``{"diverged_on": "loss" | "gradient" | ...}`` (empty string if it did not diverge)."""
    from dlcore.checkpoint import divergence_report

    return [{"diverged_on": r["quantity"] if r else ""} for r in divergence_report(result.state, history)]


def divergence_lines(seeds, result, recipe, data, config, debug_nans: bool) -> list[str]:
    """One line per diverged seed: step and quantity; with ``debug_nans`` also the op (replayed)."""
    from dlcore.checkpoint import divergence_report, find_nan_op

    lines = []
    for i, (s, rep) in enumerate(zip(seeds, divergence_report(result.state, result.history))):
        if rep is None:
            continue
        if debug_nans:
            lines.append(f"seed {s} diverged: {find_nan_op(recipe, data, result.state, batch_size=config.batch_size, run=i)}")
        else:
            lines.append(f"seed {s} diverged at step {rep['step']}: non-finite {rep['quantity']} "
                         "(its last finite parameters are kept; --debug-nans names the op)")
    return lines
