"""Optimizers by name, built from (possibly traced) numeric hyperparameters.

An *optimizer function* maps a dict of hyperparameter arrays to an ``optax.GradientTransformation``:
``opt_fn(hparams) -> tx``. It is called inside the train step with the hyperparameters carried in
the train state, so a learning rate (or weight decay, momentum, …) can be ``vmap``-ed over without
recompiling; the optimizer *state* structure never depends on their values (only on which keys
are present and on the static options).

Every optimizer is the chain (optax transformations throughout)::

    clip (by value / global norm) -> direction -> decoupled weight decay -> × (−lr·schedule) -> plateau

with these directions and their update equations (the lectures' notation, g = ∇L(θᵏ)):

=============  =================================================================  ====================
name           update                                                             hyperparameters
=============  =================================================================  ====================
``sgd``        θ ← θ − α g                                                         learning_rate
``momentum``   v ← β v − α g;  θ ← θ + v   (heavy ball; optax stores −v/α)         momentum (0.9)
``nesterov``   look-ahead momentum, gradient at θ + β v (optax's reparametrisation:
               its θ is the look-ahead point θ + β v)                              momentum (0.9)
``rmsprop``    s ← β s + (1−β) g²;  θ ← θ − α g / (√s + ε)                         decay (β, 0.9), eps
``adagrad``    G ← G + g²;  θ ← θ − α g / √(G + ε)                                 initial_accumulator_value (0.1), eps (1e-7)
``adam``       m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; m̂ = m/(1−β₁ᵏ⁺¹), v̂ = v/(1−β₂ᵏ⁺¹);
               θ ← θ − α m̂ / (√(v̂ + ε_root) + ε)                                  b1, b2, eps, eps_root
``adamw``      adam + decoupled weight decay (default 1e-4)                        + weight_decay
``nadam``      adam with Nesterov momentum (Dozat 2016, optax.nadam)               b1, b2, eps, eps_root
=============  =================================================================  ====================

The lectures write Adam's ε inside the square root: use ``eps=0, eps_root=ε`` for that form.
``bias_correction=False`` (a static option of adam/adamw) drops m̂/v̂ for the lectures' ablation.

**Weight decay vs L2.** ``weight_decay`` (any optimizer) is *decoupled*: ``θ ← θ − α(u + λθ)``
where ``u`` is the optimizer's direction. ``l2`` in the hyperparameters instead adds ``l2·Σw²`` to
the loss (:func:`dlcore.train.weight_penalty`), i.e. ``2·l2·w`` to the gradient *before* the
optimizer. For plain SGD ``weight_decay = 2·l2`` gives the same update; for Adam they differ
(the L2 gradient is rescaled by 1/√v̂, the decay is not) — the lectures' point. Both apply to
kernels only (parameters with ndim ≥ 2) by default (``decay_mask="all"`` decays everything).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlcore.errors import ConfigError, unknown_name
from dlcore.optim._schedules import PlateauSchedule, Schedule, get_schedule

OptimizerFn = Callable[[Mapping[str, jax.Array]], optax.GradientTransformation]


@dataclasses.dataclass(frozen=True, eq=False)
class Optimizer:
    """A named optimizer (:func:`optimizer_fn`): ``opt(hparams) -> optax.GradientTransformation``.

    Attributes:
      name: a key of :data:`OPTIMIZERS`.
      schedule: the learning-rate multiplier (a :class:`PlateauSchedule` makes the training loop
        add its reduce-on-plateau hook), or ``None``.
      static: compiled-in options (see :func:`optimizer_fn`).
    """

    name: str
    schedule: Any = None
    static: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __call__(self, hparams: Mapping[str, jax.Array]) -> optax.GradientTransformation:
        if "learning_rate" not in hparams:
            raise ConfigError("hyperparameter 'learning_rate' is required by every optimizer; add it to hparams")
        check_hparams(hparams)
        return _build(self.name, dict(hparams), dict(self.static), self.schedule)

    @property
    def __name__(self) -> str:  # noqa: A003  (reads like the function it replaces in messages)
        return f"optimizer_fn_{self.name}"


@dataclasses.dataclass(frozen=True, eq=False)
class WrappedOptimizer:
    """An optimizer function built around another (e.g. :func:`dlcore.nn.fine_tune_fn`):
    ``wrap(base(hparams), hparams)``; it keeps the base's schedule (and so its plateau hook)."""

    base: Callable
    wrap: Callable

    def __call__(self, hparams: Mapping[str, jax.Array]) -> optax.GradientTransformation:
        return self.wrap(self.base(hparams), hparams)

    @property
    def schedule(self):
        return optimizer_schedule(self.base)


def optimizer_schedule(opt_fn) -> Any:
    """The learning-rate schedule of an :class:`Optimizer` (or a wrapped one); ``None`` for any
    other optimizer function. The training loop reads it to add the reduce-on-plateau hook.

    >>> optimizer_schedule(optimizer_fn("sgd", schedule=get_schedule("reduce_on_plateau", patience=4))).patience
    4
    """
    if isinstance(opt_fn, (Optimizer, WrappedOptimizer)):
        return opt_fn.schedule
    return None


def _scale_by_adam_uncorrected(b1, b2, eps, eps_root) -> optax.GradientTransformation:
    """Adam's direction m / (√(v + ε_root) + ε) *without* bias correction (optax has no switch).

    Uses optax's ``ScaleByAdamState`` so the state has the same structure as ``scale_by_adam``.
    """

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=zeros, nu=zeros)

    def update(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * jnp.square(g), state.nu, updates)
        out = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu, nu)
        return out, optax.ScaleByAdamState(count=optax.safe_increment(state.count), mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


def _adam_direction(hp, static, nesterov=False):
    args = (hp["b1"], hp["b2"], hp["eps"], hp["eps_root"])
    if static.get("bias_correction", True):
        return optax.scale_by_adam(*args, nesterov=nesterov)
    return _scale_by_adam_uncorrected(*args)


# name -> (direction builder (hp, static) -> transformation, default hyperparameters)
OPTIMIZERS: dict[str, tuple[Callable, dict[str, float]]] = {
    "sgd": (lambda hp, st: optax.identity(), {}),
    "momentum": (lambda hp, st: optax.trace(decay=hp["momentum"], nesterov=False), {"momentum": 0.9}),
    "nesterov": (lambda hp, st: optax.trace(decay=hp["momentum"], nesterov=True), {"momentum": 0.9}),
    "rmsprop": (
        lambda hp, st: optax.scale_by_rms(decay=hp["decay"], eps=hp["eps"], eps_in_sqrt=st.get("eps_in_sqrt", False)),
        {"decay": 0.9, "eps": 1e-8},
    ),
    "adagrad": (
        lambda hp, st: optax.scale_by_rss(initial_accumulator_value=hp["initial_accumulator_value"], eps=hp["eps"]),
        {"initial_accumulator_value": 0.1, "eps": 1e-7},
    ),
    "adam": (_adam_direction, {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "eps_root": 0.0}),
    "adamw": (_adam_direction, {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "eps_root": 0.0, "weight_decay": 1e-4}),
    "nadam": (
        lambda hp, st: _adam_direction(hp, st, nesterov=True),
        {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "eps_root": 0.0},
    ),
}
"""Optimizer name -> ``(direction_builder, default hyperparameters)``."""

COMMON_HPARAMS = ("learning_rate", "weight_decay", "clip_norm", "clip_value")
"""Hyperparameters every optimizer reads (when present)."""

_STATIC_OPTIONS = {
    "bias_correction": ("adam", "adamw"),
    "eps_in_sqrt": ("rmsprop",),
    "decay_mask": None,
    "decay_scaled_by_lr": None,
    "clip_norm": None,
    "clip_value": None,
}

# Ranges checked whenever a value is concrete (traced values cannot be checked at trace time).
_RANGES = {
    "learning_rate": (0.0, None), "weight_decay": (0.0, None), "eps": (0.0, None), "eps_root": (0.0, None),
    "initial_accumulator_value": (0.0, None), "clip_norm": (0.0, None), "clip_value": (0.0, None),
    "momentum": (0.0, 1.0), "b1": (0.0, 1.0), "b2": (0.0, 1.0), "decay": (0.0, 1.0),
    # Read by the model and the loss (dlcore.train), checked here so every entry point has one place.
    "dropout_rate": (0.0, 1.0), "label_smoothing": (0.0, 1.0), "l1": (0.0, None), "l2": (0.0, None),
}


def check_hparams(hparams: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for out-of-range optimizer hyperparameters (concrete values only).

    Every concrete value must be finite (NaN or infinity in any hyperparameter is refused).
    Learning rates, weight decay, eps, clip values, l1 and l2 must be ``>= 0``; momentum, b1, b2,
    the RMSProp decay, dropout_rate and label_smoothing must lie in ``[0, 1)``. Traced values
    (inside ``jit``/``vmap``) are skipped.

    >>> check_hparams({"learning_rate": -0.1})
    Traceback (most recent call last):
    ...
    dlcore.errors.ConfigError: hyperparameter 'learning_rate' must be >= 0, got -0.1; set ...
    """
    for k, v in hparams.items():
        if isinstance(v, jax.core.Tracer):
            continue
        try:
            a = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"hyperparameter {k!r} must be numeric, got {v!r}") from None
        if not np.isfinite(a).all():
            bad = a.ravel()[~np.isfinite(a.ravel())][0]
            raise ConfigError(f"hyperparameter {k!r} must be finite, got {bad:g}; set hparams[{k!r}] to a finite number")
    for k, (lo, hi) in _RANGES.items():
        if k not in hparams or isinstance(hparams[k], jax.core.Tracer):
            continue
        v = np.asarray(hparams[k], dtype=np.float64).ravel()
        ok = np.isfinite(v) & (v >= lo) & (v < (np.inf if hi is None else hi))
        if not ok.all():
            bad = v[~ok]
            rng = f">= {lo:g}" if hi is None else f"in [{lo:g}, {hi:g})"
            hint = " (the step direction comes from the gradient; the rate is its size)" if k == "learning_rate" else ""
            raise ConfigError(f"hyperparameter {k!r} must be {rng}, got {bad[0]:g}; set hparams[{k!r}] {rng}{hint}")


def _kernel_mask(params):
    # The same parameters weight_penalty's L2 applies to: kernels, not biases or norm scales.
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def _decay_mask(static):
    mask = static.get("decay_mask", "kernels")
    if callable(mask):
        return mask
    if mask == "kernels":
        return _kernel_mask
    if mask == "all":
        return None
    raise ConfigError(f"decay_mask must be 'kernels', 'all' or a function params -> bool tree, got {mask!r}")


def _plateau_scale(schedule: PlateauSchedule) -> optax.GradientTransformation:
    """Multiply updates by the current reduce-on-plateau scale; the scale itself is updated by
    ``on_eval`` with the validation metric (not by the per-step update, which has no metric)."""
    rop = schedule.transformation()

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u: (state.scale * u).astype(u.dtype), updates), state

    return optax.GradientTransformation(rop.init, update)


def _is_plateau_state(x) -> bool:
    return isinstance(x, optax.contrib.ReduceLROnPlateauState)


def plateau_scale(opt_state) -> jax.Array | None:
    """The current reduce-on-plateau multiplier inside ``opt_state`` (``None`` if there is none)."""
    found = [s.scale for s in jax.tree.leaves(opt_state, is_leaf=_is_plateau_state) if _is_plateau_state(s)]
    return found[0] if found else None


def _plateau_step(st, value, sch: PlateauSchedule):
    """optax's reduce-on-plateau rule on one validation value (lower is better), with the relative
    tolerance taken on |best| so that negated "higher is better" metrics work too (optax's
    ``(1 − rtol)·best`` would count an equal negative value as an improvement)."""
    best = st.best_value
    threshold = jnp.where(jnp.isfinite(best), best - sch.rtol * jnp.abs(best) - sch.atol, best)
    improved = value < threshold
    plateau = jnp.where(improved, 0, st.plateau_count + 1)
    in_cooldown = st.cooldown_count > 0
    reduce = ~in_cooldown & (plateau >= sch.patience)
    scale = jnp.where(reduce, jnp.maximum(st.scale * sch.factor, sch.min_scale), st.scale)
    return st._replace(
        scale=scale.astype(st.scale.dtype),
        best_value=jnp.where(improved, value, best).astype(best.dtype),
        plateau_count=jnp.where(in_cooldown | reduce, 0, plateau).astype(jnp.int32),
        cooldown_count=jnp.where(in_cooldown, st.cooldown_count - 1, jnp.where(reduce, sch.cooldown, 0)).astype(
            jnp.int32
        ),
    )


def plateau_update(schedule: PlateauSchedule, opt_state, val_metrics: Mapping[str, jax.Array], running):
    """``opt_state`` with its reduce-on-plateau state updated by one validation (where ``running``).

    Used by the training loop's :class:`dlcore.train.ReduceOnPlateau` hook after each validation.
    """
    if schedule.metric not in val_metrics:
        raise ConfigError(
            f"reduce_on_plateau monitors {schedule.metric!r} but validation reports "
            f"{sorted(val_metrics)}; set the schedule's metric to one of them"
        )
    sign = 1.0 if schedule.mode == "min" else -1.0
    value = sign * jnp.asarray(val_metrics[schedule.metric], jnp.float32)

    def upd(s):
        if not _is_plateau_state(s):
            return s
        new = _plateau_step(s, value, schedule)
        return jax.tree.map(lambda a, b: jnp.where(running, a, b), new, s)

    return jax.tree.map(upd, opt_state, is_leaf=_is_plateau_state)


def _build(name: str, hp: dict, static: dict, schedule) -> optax.GradientTransformation:
    direction, defaults = OPTIMIZERS[name]
    hp = {**defaults, **{k: v for k, v in static.items() if k in defaults}, **hp}
    parts = []
    clip_value = hp.get("clip_value", static.get("clip_value"))
    clip_norm = hp.get("clip_norm", static.get("clip_norm"))
    if clip_value is not None:
        parts.append(optax.clip(clip_value))
    if clip_norm is not None:
        parts.append(optax.clip_by_global_norm(clip_norm))
    parts.append(direction(hp, static))
    lr = hp["learning_rate"]
    mult = schedule if schedule is not None else None
    lr_fn = lr if mult is None else (lambda count: lr * mult(count))
    wd = hp.get("weight_decay")
    scaled = static.get("decay_scaled_by_lr", True)
    if wd is not None and scaled:
        # optax/AdamW convention: θ ← θ − lr·(u + λθ).
        parts.append(optax.add_decayed_weights(wd, mask=_decay_mask(static)))
    parts.append(optax.scale_by_learning_rate(lr_fn))
    if wd is not None and not scaled:
        # The lectures' form θ ← (1 − λ)θ − α∇f: decay independent of α (still follows a schedule).
        rate = (lambda count: -wd * mult(count)) if mult is not None else -wd
        parts.append(optax.add_decayed_weights(rate, mask=_decay_mask(static)))
    if isinstance(schedule, PlateauSchedule):
        parts.append(_plateau_scale(schedule))
    return optax.chain(*parts)


def optimizer_fn(name: str, schedule: Schedule | Callable | str | None = None, **static) -> OptimizerFn:
    """The optimizer function of a named optimizer: ``opt_fn(hparams) -> optax.GradientTransformation``.

    Args:
      name: a key of :data:`OPTIMIZERS` (see the module table for the update equations).
      schedule: a learning-rate multiplier ``count -> float`` (a :class:`Schedule` from
        :func:`get_schedule`, any callable, or a schedule name needing no arguments).
        With a :class:`PlateauSchedule` the training loop updates the schedule's state after each
        validation (its :class:`dlcore.train.ReduceOnPlateau` hook).
      **static: compiled-in options — ``bias_correction`` (adam/adamw, default True),
        ``eps_in_sqrt`` (rmsprop, default False = the lectures' √s + ε), ``clip_norm`` /
        ``clip_value`` (clip gradients by global norm / by value; an hparam of the same name
        overrides), ``decay_mask`` (``"kernels"`` (default), ``"all"`` or a mask function),
        ``decay_scaled_by_lr`` (default True: ``θ ← θ − α(u + λθ)``; False: ``θ ← θ − αu − λθ``),
        and defaults for the optimizer's hyperparameters (e.g. ``momentum=0.95``).
    Returns:
      an :class:`Optimizer`, called as ``opt_fn(hparams)``: hyperparameters are read at step time
      (``learning_rate`` required; ``weight_decay``, ``clip_norm``, ``clip_value`` for all; per
      optimizer as in the table).

    >>> import jax.numpy as jnp
    >>> tx = optimizer_fn("sgd")({"learning_rate": jnp.float32(0.1)})
    >>> upd, _ = tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))
    >>> upd["w"].tolist()
    [-0.10000000149011612, -0.10000000149011612]
    """
    if name not in OPTIMIZERS:
        raise unknown_name("optimizer", name, OPTIMIZERS)
    _, defaults = OPTIMIZERS[name]
    for k in static:
        allowed = _STATIC_OPTIONS.get(k, ())
        if k in defaults:
            continue
        if k not in _STATIC_OPTIONS or (allowed is not None and name not in allowed):
            valid = sorted(k2 for k2, v in _STATIC_OPTIONS.items() if v is None or name in v) + sorted(defaults)
            raise ConfigError(f"optimizer {name!r} has no option {k!r}; valid options: {', '.join(valid)}")
    check_hparams({k: v for k, v in static.items() if k in _RANGES})
    if isinstance(schedule, str):
        schedule = get_schedule(schedule)

    return Optimizer(name, schedule, dict(static))
