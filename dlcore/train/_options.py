"""One options object for every run: steps, batch, evaluation, statistics, hooks, placement, checkpoints.

``fit``, ``run_seeds``, ``run_batch``, ``run_study`` and :class:`dlcore.train.Loop` all take a
:class:`RunOptions` (or its fields as keywords, for the quick start). Checkpointing is a protocol
object (:class:`Checkpointer`, e.g. :class:`dlcore.checkpoint.CheckpointManager`), so the loop
saves and resumes without importing the layer that writes the files.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from dlcore.errors import ConfigError
from dlcore.optim import PlateauSchedule, optimizer_schedule
from dlcore.train._hooks import Hook, ReduceOnPlateau

Callback = Callable[[Any, dict, int], Any]
"""Called after every chunk with ``(state, history_so_far, step)``; host side (save, log, plot)."""


@runtime_checkable
class Checkpointer(Protocol):
    """What the loop needs of a checkpoint writer (:class:`dlcore.checkpoint.CheckpointManager`)."""

    def resume(self, target, history: Mapping | None = None) -> tuple[Any, dict | None]:
        """``(state, history)`` from the newest valid checkpoint, or ``(target, history)`` if none."""

    def callback(self, num_steps: int | None = None) -> Callback:
        """A per-chunk callback that saves when due."""

    def finish(self, state, history: Mapping | None = None) -> None:
        """Save the final state and wait for the writes."""

    def close(self) -> None:
        """Release resources."""


@runtime_checkable
class CheckpointPlan(Protocol):
    """Checkpoints of a whole study: one :class:`Checkpointer` per unit of work (a chunk of runs of
    one structure in one search stage), plus a record of the search plan
    (:class:`dlcore.checkpoint.StudyCheckpoints`)."""

    def unit(self, name: str, metadata: Mapping[str, Any]) -> Checkpointer:
        """The checkpointer of unit ``name`` (``""``: the only unit of a study without axes)."""

    def record(self, plan: Mapping[str, Any]) -> None:
        """Record the search plan so far (points, stages, scores, finished units)."""


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How runs train. Every field but ``num_steps`` and ``batch_size`` has a default.

    Attributes:
      num_steps: total steps (a resumed run continues from its state's step).
      batch_size: examples per step (per run).
      eval_every: steps per compiled chunk, with a validation after each (default: ``num_steps``).
      eval_batch_size: evaluation batch size (default: the whole split at once).
      evaluate_test: evaluate the test split at the end (studies: only for the chosen points).
      progress: a progress bar (``str``: its label).
      callbacks: host functions ``(state, history, step)`` called after each chunk.
      hooks: :class:`dlcore.train.Hook` objects (``EarlyStopping``…) applied around validations.
      early_stopping: shorthand for one more hook.
      stats_fn, stats_every: ``stats_fn(state, batch) -> {name: array}`` evaluated inside the
        compiled loop every ``stats_every`` steps (``history["stats/<name>"]``).
      checkpoint: a :class:`Checkpointer` (runs) or a :class:`CheckpointPlan` (studies), or None.
      mesh, devices, seed_devices, data_devices: placement of a sweep's runs (see
        :func:`dlcore.parallel.plan_placement`); ignored by ``fit`` (one run, one device).

    >>> RunOptions(num_steps=100, batch_size=32).chunk_size
    100
    >>> RunOptions(num_steps=100, batch_size=32).replace(eval_every=25).chunk_size
    25
    """

    num_steps: int
    batch_size: int
    eval_every: int | None = None
    eval_batch_size: int | None = None
    evaluate_test: bool = True
    progress: bool | str = True
    callbacks: Sequence[Callback] = ()
    hooks: Sequence[Hook] = ()
    early_stopping: Hook | None = None
    stats_fn: Callable | None = None
    stats_every: int = 0
    checkpoint: Any = None
    mesh: Any = None
    devices: Sequence | None = None
    seed_devices: int | None = None
    data_devices: int | None = None

    def __post_init__(self):
        for name in ("num_steps", "batch_size"):
            _positive_int(name, getattr(self, name))
        for name in ("eval_every", "eval_batch_size", "seed_devices", "data_devices"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        if self.stats_fn is not None and (self.stats_every <= 0 or self.chunk_size % self.stats_every):
            raise ConfigError(
                f"stats_every={self.stats_every} must be positive and divide eval_every={self.chunk_size} "
                "(statistics are taken at the same global steps in every chunk)"
            )
        object.__setattr__(self, "callbacks", tuple(self.callbacks))
        object.__setattr__(self, "hooks", tuple(self.hooks))

    @property
    def chunk_size(self) -> int:
        """Steps per compiled chunk."""
        return self.eval_every or self.num_steps

    def replace(self, **changes) -> "RunOptions":
        """A copy with ``changes`` (unknown names are a :class:`ConfigError`)."""
        return options_from(self, changes)

    def all_hooks(self, recipe) -> tuple[Hook, ...]:
        """The hooks the loop applies: ``hooks``, ``early_stopping``, and reduce-on-plateau when the
        recipe's optimizer has a :class:`dlcore.optim.PlateauSchedule`."""
        hooks = self.hooks + ((self.early_stopping,) if self.early_stopping is not None else ())
        schedule = optimizer_schedule(recipe.optimizer)
        if isinstance(schedule, PlateauSchedule):
            hooks = (ReduceOnPlateau(schedule),) + hooks
        return hooks


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r} (an integer >= 1)")


def options_from(options: RunOptions | None, kwargs: Mapping[str, Any], where: str = "options") -> RunOptions:
    """``options`` updated by keyword arguments that name :class:`RunOptions` fields.

    >>> options_from(None, {"num_steps": 10, "batch_size": 2}).num_steps
    10
    """
    fields = {f.name for f in dataclasses.fields(RunOptions)}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        hint = {
            "checkpoint_dir": "; pass checkpoint=dlcore.checkpoint.CheckpointManager(DIR, every=N)",
            "checkpoint_every": "; pass checkpoint=dlcore.checkpoint.CheckpointManager(DIR, every=N)",
            "debug_nans": "; pass callbacks=[dlcore.diagnostics.nan_debugger(recipe, data, batch_size)]",
        }.get(unknown[0], "")
        raise ConfigError(f"{where}: unknown option {unknown[0]!r}{hint}; valid: {', '.join(sorted(fields))}")
    if options is None:
        missing = [f for f in ("num_steps", "batch_size") if f not in kwargs]
        if missing:
            raise ConfigError(f"{where}: {missing[0]} is required (or pass options=RunOptions(...))")
        return RunOptions(**kwargs)
    return dataclasses.replace(options, **kwargs) if kwargs else options
