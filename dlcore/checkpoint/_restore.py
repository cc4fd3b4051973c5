"""Restoring checkpoints: the newest valid step, onto any device layout, or just the parameters."""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from dlcore.checkpoint import _errors as E
from dlcore.checkpoint._manager import CHECKPOINT_SUBDIR, Restored
from dlcore.errors import CheckpointError


def checkpoint_dir(path: str) -> str:
    """The checkpoint directory of ``path``: a run directory (its ``checkpoints/``) or the directory itself."""
    path = os.path.abspath(os.fspath(path))
    sub = os.path.join(path, CHECKPOINT_SUBDIR)
    return sub if os.path.isdir(sub) else path


def _is_step_dir(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "state")) and os.path.isdir(os.path.join(path, "meta"))


def checkpoint_steps(path: str) -> list[int]:
    """Committed steps under ``path`` (a run or checkpoint directory), ascending.

    Half-written steps (orbax's ``<step>.orbax-checkpoint-tmp-*``) and quarantined ones
    (``<step>.corrupt-*``) are not steps.
    """
    d = checkpoint_dir(path)
    if not os.path.isdir(d):
        return []
    return sorted(int(n) for n in os.listdir(d) if n.isdigit() and os.path.isdir(os.path.join(d, n)))


def _resolve(path: str, step: int | None) -> tuple[str, list[int]]:
    """``(checkpoint dir, candidate steps newest first)``; ``path`` may also be a step directory."""
    path = os.path.abspath(os.fspath(path))
    if _is_step_dir(path) and os.path.basename(path).isdigit():
        return os.path.dirname(path), [int(os.path.basename(path))]
    d = checkpoint_dir(path)
    steps = checkpoint_steps(d)
    if not steps:
        raise CheckpointError(
            f"no checkpoint in {d}" + ("" if os.path.isdir(d) else " (no such directory)")
            + "; give a run directory written with checkpoints, or its checkpoints/ directory"
        )
    if step is not None:
        if step not in steps:
            raise CheckpointError(f"no checkpoint at step {step} in {d}; saved steps: {steps}")
        steps = [s for s in steps if s <= step]
    return d, steps[::-1]


def abstract_state(tree, sharding=None):
    """``jax.ShapeDtypeStruct`` leaves with shardings: the target of a restore.

    Args:
      tree: a pytree of arrays or ``ShapeDtypeStruct`` (e.g. ``jax.eval_shape(init_state, ...)``).
      sharding: ``None`` (each leaf's own sharding if it has one, else the first local device), a
        ``jax.sharding.Sharding`` for every leaf, a pytree of shardings like ``tree``, or a callable
        ``leaf -> Sharding``.

    >>> import jax, jax.numpy as jnp
    >>> abstract_state({"w": jnp.zeros((2, 3))})["w"].shape
    (2, 3)
    """
    default = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def one(leaf, s=None):
        if s is None and isinstance(sharding, jax.sharding.Sharding):
            s = sharding
        elif s is None and callable(sharding):
            s = sharding(leaf)
        if s is None:
            s = getattr(leaf, "sharding", None) or default
        return jax.ShapeDtypeStruct(np.shape(leaf), leaf.dtype, sharding=s)

    if sharding is None or isinstance(sharding, jax.sharding.Sharding) or callable(sharding):
        return jax.tree.map(one, tree)
    return jax.tree.map(one, tree, sharding)


def _restore_step(step_dir: str, abstract, allow_other_version: bool, items=("state", "history")):
    import orbax.checkpoint as ocp

    E.verify_files(step_dir)
    meta = E.read_meta(step_dir)
    E.check_meta(meta, step_dir, E.leaf_specs(abstract) if abstract is not None else None,
                 allow_other_version=allow_other_version)
    args = {"state": ocp.args.StandardRestore(abstract)}
    present = {k: v for k, v in meta["history_keys"].items() if int(np.prod(v[1])) > 0}
    if "history" in items and present:
        args["history"] = ocp.args.StandardRestore()
    try:
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
            out = ckptr.restore(step_dir, args=ocp.args.Composite(**args))
    except CheckpointError:
        raise
    except Exception as e:  # orbax/tensorstore raise many types; name the step and pass the reason on
        raise E.describe_failure(step_dir, e) from e
    history = {}
    if "history" in items:
        raw = out["history"] if "history" in args else {}
        for name, (key, shape, dtype) in meta["history_keys"].items():
            if name in present:
                if name not in raw:
                    raise CheckpointError(f"checkpoint {step_dir}/history lacks {key!r}; the step is damaged")
                history[key] = np.asarray(raw[name])
            else:
                history[key] = np.zeros(shape, dtype)
    return out["state"], history, meta


def restore(
    path: str,
    target=None,
    *,
    step: int | None = None,
    fallback: bool = False,
    sharding=None,
    allow_other_version: bool = False,
) -> Restored:
    """Restore the newest valid checkpoint under ``path`` (or ``step``).

    Args:
      path: a run directory, its ``checkpoints/`` directory, or one step directory.
      target: the state to restore into — a :class:`dlcore.train.TrainState` of arrays or of
        ``ShapeDtypeStruct`` (``jax.eval_shape(init_state, ...)`` costs nothing). Its structure is
        checked against the checkpoint; ``None`` restores nested dicts of numpy arrays.
      step: restore this step (default: the newest).
      fallback: if the newest (or ``step``) is damaged or incompatible, try the previous steps;
        the ones skipped are listed in ``Restored.skipped``.
      sharding: where the arrays go (see :func:`abstract_state`): e.g. a
        ``NamedSharding(mesh, P("seed"))`` spreads a sweep's runs over another number of devices
        than the one that saved it.
      allow_other_version: accept a checkpoint written by another dlcore version.

    Returns:
      :class:`Restored` ``(state, history, step, metadata, skipped)``.

    Raises:
      CheckpointError: naming the file and the problem (truncated, corrupt, other structure or
        version) — with ``fallback``, only when no step is usable.

    >>> r = restore("runs/tiny/20250101-000000", jax.eval_shape(lambda: state))   # doctest: +SKIP
    """
    d, candidates = _resolve(path, step)
    abstract = abstract_state(target, sharding) if target is not None else None
    skipped = []
    for s in candidates:
        step_dir = os.path.join(d, str(s))
        try:
            state, history, meta = _restore_step(step_dir, abstract, allow_other_version)
        except CheckpointError as e:
            if not fallback:
                older = [c for c in candidates if c < s]
                hint = ""
                if older and not isinstance(e, E.Incompatible):
                    hint = f"; pass fallback=True (CLI: --fallback) to resume from the previous step ({older[0]})"
                raise CheckpointError(f"{e}{hint}") from None
            skipped.append((s, str(e)))
            continue
        return Restored(state, history, s, meta, skipped)
    raise CheckpointError(f"no usable checkpoint in {d}: " + "; ".join(f"step {s}: {m}" for s, m in skipped))


def read_metadata(path: str, step: int | None = None) -> dict:
    """The ``meta`` JSON of the newest (or ``step``) checkpoint under ``path``, without reading arrays."""
    d, candidates = _resolve(path, step)
    return E.read_meta(os.path.join(d, str(candidates[0])))


def load_params(path: str, *, step: int | None = None, run: int | None = None, sharding=None,
                fallback: bool = False) -> Any:
    """Just the parameters of a checkpoint, for inference or fine-tuning.

    Args:
      path: a run directory, its ``checkpoints/`` directory, or one step directory.
      step: which step (default: the newest valid).
      run: for a sweep's checkpoint (parameters stacked on axis 0), the index of the run to take;
        ``None`` returns the stacked parameters.
      sharding: a ``jax.sharding.Sharding`` to place them with (default: the first local device).
      fallback: use the previous step if the newest is damaged.

    Returns:
      the ``params`` pytree of ``jax.Array`` (as ``model.apply({"params": p}, x)`` takes it).

    >>> params = load_params("runs/mnist1d_mlp/20250101-000000", run=0)   # doctest: +SKIP
    """
    d, candidates = _resolve(path, step)
    errors = []
    for s in candidates:
        step_dir = os.path.join(d, str(s))
        try:
            state, _, meta = _restore_step(step_dir, None, allow_other_version=True, items=("state",))
            break
        except CheckpointError as e:
            if not fallback:
                raise
            errors.append(f"step {s}: {e}")
    else:
        raise CheckpointError(f"no usable checkpoint in {d}: " + "; ".join(errors))
    params = state["params"]
    if run is not None:
        n = meta.get("num_runs")
        if n is None:
            raise CheckpointError(f"checkpoint {step_dir} holds one run, not a sweep; call load_params without run=")
        if not 0 <= run < n:
            raise CheckpointError(f"run={run} is out of range: checkpoint {step_dir} holds {n} runs (0..{n - 1})")
        params = jax.tree.map(lambda a: a[run], params)
    target = sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda a: jax.device_put(np.asarray(a), target), params)

