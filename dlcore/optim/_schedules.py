"""Learning-rate schedules by name: multipliers of the (possibly traced) peak learning rate.

A schedule maps the optimizer's update count ``t`` (0 for the first update) to a multiplier; the
optimizer uses ``lr_t = hparams["learning_rate"] * schedule(t)``. Because the peak rate stays a
hyperparameter in the train state, a sweep can ``vmap`` over it while the schedule's shape
(decay rate, warmup, …) is static and compiled once.

Epoch-based schedules (the lectures' decay formulas) count epochs as ``t // steps_per_epoch``
(``staircase=True``, the lectures' table) or ``t / steps_per_epoch``; ``steps_per_epoch`` is given
directly or computed from ``dataset_size // batch_size`` as the sampler does.

The lectures' formulas (α₀ = the learning rate hyperparameter, e = epoch):

=================  ==========================================  ===========================
name               multiplier                                  parameters (defaults)
=================  ==========================================  ===========================
``constant``       1
``inverse_time``   1 / (1 + decay · e)                         ``decay`` (1.0)
``step``           (1 − rate)^⌊e / every⌋                      ``rate`` (0.5), ``every`` (1)
``exponential``    rate^e                                      ``rate`` (0.9)
``inverse_sqrt``   rate / √(e + 1)  (epochs counted from 1)    ``rate`` (1.0)
``transformer``    d⁻⁰·⁵ · min(s⁻⁰·⁵, s · w⁻¹·⁵), s = t + 1    ``d_model`` (512), ``warmup_steps`` (4000)
``cosine``         linear warmup to 1, cosine to ``end``       ``warmup_steps`` (0), ``end_fraction`` (0)
``onecycle``       optax's cosine one-cycle, peak 1            ``pct_start``, ``div_factor``, …
``reduce_on_plateau``  × ``factor`` after ``patience`` evaluations without improvement
=================  ==========================================  ===========================
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlcore.errors import ConfigError, unknown_name


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A learning-rate multiplier ``count -> float32[]`` with its name (pass to ``optimizer_fn``).

    Attributes:
      name: the schedule's name in :data:`SCHEDULES`.
      fn: ``count -> multiplier`` (jittable, vmappable).
      num_steps: the training length it was built for (``None`` if it does not need one).
    """

    name: str
    fn: Callable
    num_steps: int | None = None

    def __call__(self, count):
        return self.fn(count)


@dataclasses.dataclass(frozen=True)
class PlateauSchedule(Schedule):
    """Reduce-on-plateau: the rate is multiplied by ``factor`` after ``patience`` evaluations of
    the validation ``metric`` without improvement (the ResNet recipe's "divide by 10 when plateau").

    Its state (optax's ``ReduceLROnPlateauState``) lives in the optimizer state; the training loop
    updates it after each validation through the optimizer function's ``on_eval`` (see
    :func:`dlcore.optim.optimizer_fn`). ``mode="max"`` for metrics where higher is better.
    """

    factor: float = 0.1
    patience: int = 10
    rtol: float = 1e-4
    atol: float = 0.0
    cooldown: int = 0
    min_scale: float = 0.0
    metric: str = "loss"
    mode: str = "min"

    def transformation(self) -> optax.GradientTransformationExtraArgs:
        """optax's ``reduce_on_plateau`` (its ``update`` takes ``value=``)."""
        return optax.contrib.reduce_on_plateau(
            factor=self.factor, patience=self.patience, rtol=self.rtol, atol=self.atol,
            cooldown=self.cooldown, min_scale=self.min_scale,
        )


def _positive(name: str, value, schedule: str, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not ok or not math.isfinite(value):
        bound = "non-negative" if allow_zero else "positive"
        raise ConfigError(f"schedule {schedule!r}: {name} must be {bound}, got {value!r}")


def _steps_per_epoch(name, steps_per_epoch, dataset_size, batch_size) -> int:
    if steps_per_epoch is not None:
        if int(steps_per_epoch) <= 0:
            raise ConfigError(f"schedule {name!r}: steps_per_epoch must be positive, got {steps_per_epoch}")
        return int(steps_per_epoch)
    if dataset_size is not None and batch_size is not None:
        from dlcore.data import steps_per_epoch as spe

        return spe(int(dataset_size), int(batch_size))
    raise ConfigError(
        f"schedule {name!r} decays per epoch; pass steps_per_epoch=... or dataset_size=... and "
        "batch_size=... (steps_per_epoch=1 decays every step)"
    )


def _epoch_fn(spe: int, staircase: bool):
    if staircase:
        return lambda count: (jnp.asarray(count, jnp.int32) // spe).astype(jnp.float32)
    return lambda count: jnp.asarray(count, jnp.float32) / spe


def _constant(*, ctx):
    del ctx
    return lambda count: jnp.ones_like(jnp.asarray(count, jnp.float32))


def _inverse_time(*, ctx, decay: float = 1.0):
    _positive("decay", decay, "inverse_time", allow_zero=True)
    epoch = ctx.epoch()
    return lambda count: 1.0 / (1.0 + decay * epoch(count))


def _step(*, ctx, rate: float = 0.5, every: int = 1):
    if not 0 <= rate < 1:
        raise ConfigError(f"schedule 'step': rate must be in [0, 1) (alpha <- alpha - rate*alpha), got {rate}")
    _positive("every", every, "step")
    epoch = ctx.epoch()
    return lambda count: (1.0 - rate) ** jnp.floor(epoch(count) / every)


def _exponential(*, ctx, rate: float = 0.9):
    if not 0 < rate <= 1:
        raise ConfigError(f"schedule 'exponential': rate must be in (0, 1] (alpha = rate**epoch * alpha0), got {rate}")
    epoch = ctx.epoch()
    return lambda count: rate ** epoch(count)


def _inverse_sqrt(*, ctx, rate: float = 1.0):
    _positive("rate", rate, "inverse_sqrt")
    epoch = ctx.epoch()
    # The lectures' t/sqrt(epoch) with epochs counted from 1 (epoch 0 would divide by zero).
    return lambda count: rate / jnp.sqrt(epoch(count) + 1.0)


def _transformer(*, ctx, d_model: int = 512, warmup_steps: int = 4000):
    _positive("d_model", d_model, "transformer")
    _positive("warmup_steps", warmup_steps, "transformer")
    ctx.check_warmup(warmup_steps)

    def fn(count):
        s = jnp.asarray(count, jnp.float32) + 1.0  # the paper's step_num starts at 1
        return d_model**-0.5 * jnp.minimum(s**-0.5, s * warmup_steps**-1.5)

    return fn


def _cosine(*, ctx, warmup_steps: int = 0, end_fraction: float = 0.0, init_fraction: float = 0.0):
    n = ctx.require_num_steps()
    _positive("warmup_steps", warmup_steps, "cosine", allow_zero=True)
    ctx.check_warmup(warmup_steps)
    return optax.warmup_cosine_decay_schedule(
        init_value=init_fraction, peak_value=1.0, warmup_steps=int(warmup_steps), decay_steps=n,
        end_value=end_fraction,
    )


def _onecycle(*, ctx, pct_start: float = 0.3, div_factor: float = 25.0, final_div_factor: float = 1e4):
    n = ctx.require_num_steps()
    if not 0 < pct_start < 1:
        raise ConfigError(f"schedule 'onecycle': pct_start must be in (0, 1), got {pct_start}")
    return optax.cosine_onecycle_schedule(
        transition_steps=n, peak_value=1.0, pct_start=pct_start, div_factor=div_factor,
        final_div_factor=final_div_factor,
    )


SCHEDULES: dict[str, Callable] = {
    "constant": _constant,
    "inverse_time": _inverse_time,
    "step": _step,
    "exponential": _exponential,
    "inverse_sqrt": _inverse_sqrt,
    "transformer": _transformer,
    "cosine": _cosine,
    "onecycle": _onecycle,
    "reduce_on_plateau": None,  # built as a PlateauSchedule below
}
"""Schedule name -> builder (keyword parameters as in the module table)."""

_EPOCH_BASED = {"inverse_time", "step", "exponential", "inverse_sqrt"}


@dataclasses.dataclass
class _Ctx:
    name: str
    num_steps: int | None
    spe: int | None
    staircase: bool

    def epoch(self):
        return _epoch_fn(self.spe, self.staircase)

    def require_num_steps(self) -> int:
        if self.num_steps is None:
            raise ConfigError(f"schedule {self.name!r} needs num_steps (the training length)")
        return self.num_steps

    def check_warmup(self, warmup_steps) -> None:
        if self.num_steps is not None and warmup_steps >= self.num_steps:
            raise ConfigError(
                f"schedule {self.name!r}: warmup_steps={warmup_steps} is not shorter than training "
                f"(num_steps={self.num_steps}); lower warmup_steps or train longer"
            )


def get_schedule(
    name: str | Schedule,
    *,
    num_steps: int | None = None,
    steps_per_epoch: int | None = None,
    dataset_size: int | None = None,
    batch_size: int | None = None,
    staircase: bool = True,
    **params,
) -> Schedule:
    """The named learning-rate schedule (a multiplier of ``hparams["learning_rate"]``).

    Args:
      name: a key of :data:`SCHEDULES` (a :class:`Schedule` is returned unchanged).
      num_steps: training length in steps (needed by ``cosine``/``onecycle``; checked against
        warmups).
      steps_per_epoch, dataset_size, batch_size: epoch length for the epoch-based schedules
        (``inverse_time``, ``step``, ``exponential``, ``inverse_sqrt``).
      staircase: epoch-based schedules use whole epochs (``t // steps_per_epoch``) when True.
      **params: the schedule's own parameters (see the module table).
    Returns:
      a :class:`Schedule` (or :class:`PlateauSchedule`), callable on the update count.

    >>> s = get_schedule("inverse_time", decay=1.0, steps_per_epoch=10)
    >>> [round(float(s(t)), 3) for t in (0, 10, 20, 30)]   # the lectures' table / alpha0
    [1.0, 0.5, 0.333, 0.25]
    """
    if isinstance(name, Schedule):
        return name
    if name not in SCHEDULES:
        raise unknown_name("schedule", name, SCHEDULES)
    if num_steps is not None:
        num_steps = int(num_steps)
        if num_steps <= 0:
            raise ConfigError(f"schedule {name!r}: num_steps must be positive, got {num_steps}")
    if name == "reduce_on_plateau":
        valid = {f.name for f in dataclasses.fields(PlateauSchedule)} - {"name", "fn", "num_steps"}
        bad = set(params) - valid
        if bad:
            raise ConfigError(
                f"schedule 'reduce_on_plateau' got unknown parameters {sorted(bad)}; valid: {sorted(valid)}"
            )
        if params.get("mode", "min") not in ("min", "max"):
            raise ConfigError(f"schedule 'reduce_on_plateau': mode must be 'min' or 'max', got {params['mode']!r}")
        if not 0 < params.get("factor", 0.1) < 1:
            raise ConfigError(f"schedule 'reduce_on_plateau': factor must be in (0, 1), got {params['factor']}")
        if int(params.get("patience", 10)) < 1:
            raise ConfigError(f"schedule 'reduce_on_plateau': patience must be >= 1, got {params['patience']}")
        return PlateauSchedule(name=name, fn=_constant(ctx=None), num_steps=num_steps, **params)
    builder = SCHEDULES[name]
    valid = set(inspect.signature(builder).parameters) - {"ctx"}
    bad = set(params) - valid
    if bad:
        raise ConfigError(f"schedule {name!r} got unknown parameters {sorted(bad)}; valid: {sorted(valid) or 'none'}")
    spe = _steps_per_epoch(name, steps_per_epoch, dataset_size, batch_size) if name in _EPOCH_BASED else None
    fn = builder(ctx=_Ctx(name, num_steps, spe, staircase), **params)
    return Schedule(name=name, fn=fn, num_steps=num_steps)


def schedule_values(schedule: Schedule | Callable, num_steps: int, learning_rate: float = 1.0) -> np.ndarray:
    """``learning_rate * schedule(t)`` for ``t = 0 .. num_steps-1`` as a float64 array (for plots).

    >>> schedule_values(get_schedule("exponential", rate=0.5, steps_per_epoch=1), 3, 0.1).tolist()
    [0.1, 0.05, 0.025]
    """
    t = jnp.arange(num_steps, dtype=jnp.int32)
    # vmap, not a vector call: some optax schedules (piecewise) take a scalar count only.
    mult = np.asarray(jax.vmap(lambda c: jnp.asarray(schedule(c), jnp.float32))(t), dtype=np.float64)
    return learning_rate * mult
