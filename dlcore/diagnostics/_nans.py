"""The NaN/Inf guard's reports: which run diverged, at which step, on which quantity, by which op.

The train step already guards every update: a non-finite loss or gradient norm skips the update,
sets ``status = DIVERGED`` and records ``stop_step`` (per run of a sweep; the others go on). Since
the update is skipped, a diverged run's parameters, optimizer and model state stay exactly those
at the *start* of the failing step, and the batch of a step is a pure function of ``(data key,
step)`` — so the failing step can be replayed later, op by op under ``jax.debug_nans``, to name
the operation that first made a NaN (:func:`find_nan_op`), without slowing normal training.
"""

from __future__ import annotations

import os
import traceback
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.data import batch_indices
from dlcore.errors import DivergedError
from dlcore.status import DIVERGED, RUNNING
from dlcore.train import make_train_step


def _quantity(loss: float, grad_norm: float) -> str:
    bad_loss, bad_grad = not np.isfinite(loss), not np.isfinite(grad_norm)
    if bad_loss and bad_grad:
        return "loss and gradient"
    if bad_loss:
        return "loss"
    if bad_grad:
        return "gradient"
    return "loss with penalty"  # the data loss and gradient were finite: the penalty term was not


def divergence_report(state, history=None) -> list[dict | None]:
    """Per run: ``None`` if it did not diverge, else ``{"step", "quantity", "loss", "grad_norm"}``.

    ``quantity`` is ``"loss"``, ``"gradient"`` or ``"loss and gradient"`` — read from the
    history's per-step ``train/loss`` and ``train/grad_norm`` at the failing step (``"unknown"`` if
    the history does not cover it). A single (unbatched) state gives a list of one.

    >>> divergence_report(res.state, res.history)      # doctest: +SKIP
    [None, {'step': 17, 'quantity': 'loss', 'loss': nan, 'grad_norm': nan}, None]
    """
    status = np.atleast_1d(np.asarray(jax.device_get(state.status)))
    stop = np.atleast_1d(np.asarray(jax.device_get(state.stop_step)))
    step = int(np.max(np.asarray(jax.device_get(state.step))))
    h = history or {}
    loss = np.asarray(h["train/loss"]) if "train/loss" in h else None
    grad = np.asarray(h["train/grad_norm"]) if "train/grad_norm" in h else None
    out: list[dict | None] = []
    for i, (st, s) in enumerate(zip(status, stop)):
        if st != DIVERGED:
            out.append(None)
            continue
        rep = {"step": int(s), "quantity": "unknown", "loss": float("nan"), "grad_norm": float("nan")}
        if loss is not None and grad is not None:
            lo, gr = (loss[i], grad[i]) if loss.ndim == 2 else (loss, grad)
            j = int(s) - (step - lo.shape[-1])  # the history covers the last T steps before `step`
            if 0 <= j < lo.shape[-1]:
                rep.update(loss=float(lo[j]), grad_norm=float(gr[j]), quantity=_quantity(lo[j], gr[j]))
        out.append(rep)
    return out


def _where(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    skip = (f"{os.sep}jax{os.sep}", f"{os.sep}jaxlib{os.sep}", "_nans.py", f"{os.sep}contextlib.py")
    mine = [f for f in frames if not any(s in f.filename for s in skip)]
    if not mine:
        return ""

    def fmt(f):
        name = f.filename.split(f"site-packages{os.sep}")[-1]
        pkg = f"{os.sep}dlcore{os.sep}"
        name = name[name.rindex(pkg) + 1:] if pkg in name else name
        return f"{name}:{f.lineno} ({f.name})"

    out = f" at {fmt(mine[-1])}"
    # The innermost frame of dlcore's own code (the model layer or loss that called the op).
    ours = [f for f in mine if f"{os.sep}dlcore{os.sep}" in f.filename and f"{os.sep}train{os.sep}" not in f.filename]
    if ours and ours[-1] is not mine[-1]:
        out += f", called from {fmt(ours[-1])}"
    return out


def find_nan_op(recipe, data, state, *, batch_size: int, run: int | None = None) -> str:
    """Replay a diverged run's failing step op by op and name the operation that made a NaN/Inf.

    Args:
      recipe, data, batch_size: those of the training run.
      state: the (final or checkpointed) state after the divergence; a stacked sweep needs ``run``.
      run: index of the diverged run in a stacked state.

    Returns:
      a one-line description, e.g. ``"step 3: non-finite loss; first NaN in log_softmax ... at
      dlcore/losses/_classification.py:40 (...)"``.

    The replay runs the step under ``jax.disable_jit`` and ``jax.debug_nans`` (then ``debug_infs``),
    which stop at the first primitive whose output is not finite.
    """
    st = state if run is None else jax.tree.map(lambda a: a[run], state)
    if int(st.status) != DIVERGED:
        return f"run {run if run is not None else 0} did not diverge"
    stop = int(st.stop_step)
    st = st.replace(step=jnp.int32(stop), status=jnp.int32(RUNNING), stop_step=jnp.int32(-1))
    idx = batch_indices(st.keys["data"], stop, int(data.x_train.shape[0]), batch_size)
    batch = {"x": data.x_train[idx], "y": data.y_train[idx]}
    step_fn = make_train_step(recipe)
    _, m = jax.jit(step_fn)(st, batch)
    head = f"step {stop}: non-finite {_quantity(float(m['loss']), float(m['grad_norm']))}"
    for flag, what in ((jax.debug_nans, "NaN"), (jax.debug_infs, "Inf")):
        try:
            with flag(True), jax.disable_jit():
                step_fn(st, batch)
        except FloatingPointError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return f"{head}; first {what}: {first}{_where(e)}"
    return f"{head}; the op-by-op replay produced no NaN/Inf (the compiled step rounds differently)"


def nan_debugger(recipe, data, batch_size: int) -> Callable:
    """A ``run_loop`` callback (``debug_nans`` mode): when a run diverges, replay its step and raise.

    Raises :class:`dlcore.errors.DivergedError` naming the run, the step, the quantity and the
    op. Normal training stays compiled and fast; only the failing step is replayed.
    """

    def cb(state, history, step):
        status = np.atleast_1d(np.asarray(jax.device_get(state.status)))
        bad = np.flatnonzero(status == DIVERGED)
        if bad.size:
            run = None if np.ndim(jax.device_get(state.status)) == 0 else int(bad[0])
            where = "" if run is None else f"run {run}: "
            raise DivergedError(
                f"{where}{find_nan_op(recipe, data, state, batch_size=batch_size, run=run)}. Lower the learning "
                "rate, check the inputs for NaN/Inf, or add gradient clipping"
            )

    return cb
