"""Hooks of the compiled loop: early stopping and reduce-on-plateau, per run of a sweep.

A :class:`Hook` is an explicit protocol object (like optax's ``GradientTransformation``): the loop
calls ``init(state)`` before the first chunk, ``update(state, val_metrics)`` after each
validation and ``finalize(state)`` before the final evaluation — each a pure, jittable function
of the train state, vmapped over the runs of a sweep. ``halts`` says whether the loop may end
early once no run is ``RUNNING``.

Early stopping with patience:

The lectures' recipe: watch the validation metric, stop when it has not improved for ``patience``
evaluations, keep the best parameters. Here the bookkeeping is a pytree in
``TrainState.extra["early_stopping"]`` so every seed of a vmapped sweep keeps its own best metric,
best step, best parameters and stop step; a stopped run gets ``status = STOPPED`` and the train
step stops updating it (only ``step`` advances so the batch stays in lock-step).

Used through ``fit(..., hooks=[EarlyStopping(patience=5)])`` (or ``early_stopping=...``) and the
same for ``run_seeds``/``run_study``. Reduce-on-plateau (:class:`ReduceOnPlateau`) is added by the
loop itself when the recipe's optimizer has a :class:`dlcore.optim.PlateauSchedule`.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.errors import ConfigError
from dlcore.optim import PlateauSchedule, plateau_update
from dlcore.status import RUNNING, STOPPED

EXTRA_KEY = "early_stopping"


class Hook:
    """The loop's hook protocol; the defaults do nothing. Subclass and override what you need.

    >>> class CountEvals(Hook):
    ...     def update(self, state, val_metrics):
    ...         return state.replace(extra={**state.extra, "evals": state.extra.get("evals", 0) + 1})
    """

    halts: bool = False  # True: the loop may stop once no run is RUNNING

    def init(self, state):
        """Before the first chunk (also on a resumed state: keep what is already there)."""
        return state

    def update(self, state, val_metrics: Mapping[str, jax.Array]):
        """After each validation."""
        return state

    def finalize(self, state):
        """Before the final evaluation."""
        return state


def _select(pred, a, b):
    return jax.tree.map(lambda x, y: jnp.where(pred, x, y), a, b)


@dataclasses.dataclass(frozen=True)
class EarlyStopping(Hook):
    """Stop a run when ``metric`` has not improved for ``patience`` validations.

    Attributes:
      patience: evaluations without improvement before stopping (≥ 1).
      metric: a validation metric name (``"loss"``, ``"accuracy"``, …).
      mode: ``"min"`` (loss) or ``"max"`` (accuracy).
      min_delta: an improvement must beat the best by more than this.
      restore_best: put the best parameters (and model state, e.g. BN statistics) back when a run
        stops and at the end of training.

    The state in ``extra["early_stopping"]``: ``best_metric`` ``f32[]``, ``best_step`` ``i32[]``
    (``-1`` before the first evaluation), ``bad_evals`` ``i32[]``, ``best_params``,
    ``best_model_state``.

    >>> es = EarlyStopping(patience=2)
    >>> es.stop_index([3.0, 2.0, 2.5, 2.1, 1.0])   # evaluations 2 and 3 do not beat 2.0
    3
    """

    patience: int = 5
    metric: str = "loss"
    mode: str = "min"
    min_delta: float = 0.0
    restore_best: bool = True
    halts = True  # every run stopped: the remaining steps would change nothing

    def __post_init__(self):
        if isinstance(self.patience, bool) or int(self.patience) != self.patience or self.patience < 1:
            raise ConfigError(f"early stopping patience must be an integer >= 1, got {self.patience!r}")
        if self.mode not in ("min", "max"):
            raise ConfigError(f"early stopping mode must be 'min' or 'max', got {self.mode!r}")
        if not self.min_delta >= 0:
            raise ConfigError(f"early stopping min_delta must be >= 0, got {self.min_delta!r}")

    def init(self, state):
        """Add the early-stopping state to ``state.extra`` (kept as is when resuming)."""
        if EXTRA_KEY in state.extra:
            return state
        worst = jnp.inf if self.mode == "min" else -jnp.inf
        es = {
            "best_metric": jnp.full((), worst, jnp.float32),
            "best_step": jnp.full((), -1, jnp.int32),
            "bad_evals": jnp.zeros((), jnp.int32),
            # Copies, so the donated train state never shares buffers with them.
            "best_params": jax.tree.map(jnp.copy, state.params),
            "best_model_state": jax.tree.map(jnp.copy, state.model_state),
        }
        return state.replace(extra={**state.extra, EXTRA_KEY: es})

    def update(self, state, val_metrics: Mapping[str, jax.Array]):
        """After a validation: track the best, count bad evaluations, stop when patience runs out.

        Pure and jittable; vmap it over a batch of states (the loop does). A run that is not
        ``RUNNING`` (stopped or diverged) is left unchanged.
        """
        if self.metric not in val_metrics:
            raise ConfigError(
                f"early stopping monitors {self.metric!r} but validation reports {sorted(val_metrics)}; "
                "set EarlyStopping(metric=...) to one of them"
            )
        if EXTRA_KEY not in state.extra:
            raise ConfigError("the state has no early-stopping state; call EarlyStopping.init(state) first")
        es = state.extra[EXTRA_KEY]
        m = jnp.asarray(val_metrics[self.metric], jnp.float32)
        running = state.status == RUNNING
        if self.mode == "min":
            better = m < es["best_metric"] - self.min_delta
        else:
            better = m > es["best_metric"] + self.min_delta
        improved = running & better  # NaN compares False: counts as a bad evaluation
        bad = jnp.where(improved, 0, es["bad_evals"] + running.astype(jnp.int32))
        stop = running & (bad >= self.patience)
        new_es = {
            "best_metric": jnp.where(improved, m, es["best_metric"]),
            "best_step": jnp.where(improved, state.step, es["best_step"]),
            "bad_evals": bad.astype(jnp.int32),
            "best_params": _select(improved, state.params, es["best_params"]),
            "best_model_state": _select(improved, state.model_state, es["best_model_state"]),
        }
        params, model_state = state.params, state.model_state
        if self.restore_best:
            restore = stop & (new_es["best_step"] >= 0)
            params = _select(restore, new_es["best_params"], params)
            model_state = _select(restore, new_es["best_model_state"], model_state)
        return state.replace(
            params=params,
            model_state=model_state,
            status=jnp.where(stop, STOPPED, state.status).astype(state.status.dtype),
            stop_step=jnp.where(stop, state.step, state.stop_step).astype(state.stop_step.dtype),
            extra={**state.extra, EXTRA_KEY: new_es},
        )

    def finalize(self, state):
        """At the end of training: restore each run's best parameters (if ``restore_best``)."""
        if not self.restore_best or EXTRA_KEY not in state.extra:
            return state
        es = state.extra[EXTRA_KEY]
        seen = es["best_step"] >= 0
        return state.replace(
            params=_select(seen, es["best_params"], state.params),
            model_state=_select(seen, es["best_model_state"], state.model_state),
        )

    def stop_index(self, values) -> int | None:
        """Reference (NumPy) rule: the index of the evaluation at which a run with these validation
        values stops, or ``None`` if it never does. Used to check the compiled version."""
        best = np.inf if self.mode == "min" else -np.inf
        bad = 0
        for i, v in enumerate(np.asarray(values, np.float32)):
            better = v < best - self.min_delta if self.mode == "min" else v > best + self.min_delta
            if better:
                best, bad = v, 0
            else:
                bad += 1
                if bad >= self.patience:
                    return i
        return None


def early_stopping_summary(state) -> dict[str, np.ndarray]:
    """Host-side summary per run: ``stopped`` (bool), ``stop_step``, ``best_step``, ``best_metric``."""
    es = jax.device_get(state.extra.get(EXTRA_KEY, {}))
    out = {
        "stopped": np.asarray(jax.device_get(state.status)) == STOPPED,
        "stop_step": np.asarray(jax.device_get(state.stop_step)),
    }
    if es:
        out["best_step"] = np.asarray(es["best_step"])
        out["best_metric"] = np.asarray(es["best_metric"])
    return out


@dataclasses.dataclass(frozen=True)
class ReduceOnPlateau(Hook):
    """Update the reduce-on-plateau scale in the optimizer state after each validation.

    The loop adds it by itself when ``recipe.optimizer`` is a :class:`dlcore.optim.Optimizer`
    with a :class:`dlcore.optim.PlateauSchedule`; a run that is not ``RUNNING`` keeps its scale.

    >>> from dlcore.optim import get_schedule
    >>> ReduceOnPlateau(get_schedule("reduce_on_plateau", patience=3)).schedule.patience
    3
    """

    schedule: PlateauSchedule

    def update(self, state, val_metrics: Mapping[str, jax.Array]):
        return state.replace(opt_state=plateau_update(self.schedule, state.opt_state, val_metrics,
                                                      state.status == RUNNING))
