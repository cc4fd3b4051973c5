"""Learning-rate finder and the lectures' "find a learning rate that drops the loss within 100
iterations" check.

:func:`lr_find` trains once while the learning rate grows exponentially from ``min_lr`` to
``max_lr`` (one compiled ``lax.scan``; the rate is the ``learning_rate`` hyperparameter in the
train state, set per step), records the loss per rate and suggests the rate where the smoothed
loss falls fastest (steepest descent in log-rate), before the loss blows up.

:func:`lr_drop_check` runs the lectures' recipe: the same seed trained for 100 iterations at each
of 1e-1, 1e-2, 1e-3, 1e-4 (vmapped over the learning rate: one program), reporting which rates made
the loss drop significantly and the initial-loss sanity check against log(C).
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.data import chunk_batch_indices
from dlcore.errors import ConfigError
from dlcore.status import DIVERGED
from dlcore.train._state import as_hparams, broadcast_hparams, init_state
from dlcore.train._step import make_train_step


class LRFinderResult(NamedTuple):
    """Outcome of :func:`lr_find` (NumPy arrays, host side).

    Attributes:
      learning_rates: ``[N]`` the rate used at each step.
      losses: ``[N]`` the training-batch loss at each step.
      smoothed: ``[N]`` bias-corrected exponential moving average of ``losses``.
      suggestion: the suggested learning rate (steepest descent of ``smoothed`` in log-rate).
      lr_at_min: the rate at the smallest smoothed loss (``suggestion`` is usually ~10× lower).
      diverged_at: index of the first step whose smoothed loss exceeded ``diverge_factor`` × the
        best so far (or was not finite); ``N`` if none.
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float
    lr_at_min: float
    diverged_at: int


def _check_lrs(*lrs):
    for v in lrs:
        if not (np.isfinite(v) and v > 0):
            raise ConfigError(f"learning rates must be positive and finite, got {v!r}")


def _batches(state, data, start, num_steps, batch_size):
    idx = chunk_batch_indices(state.keys["data"], start, num_steps, data.x_train.shape[0], batch_size)
    return idx


def lr_find(
    recipe,
    data,
    seed: int = 0,
    *,
    batch_size: int,
    hparams: Mapping | None = None,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    num_steps: int = 100,
    beta: float = 0.9,
    diverge_factor: float = 4.0,
) -> LRFinderResult:
    """Exponentially increasing learning rate over a short run; the loss vs rate curve.

    Args:
      recipe: a :class:`dlcore.train.Recipe` (its optimizer reads ``learning_rate`` per step).
      data: a :class:`dlcore.data.Dataset`.
      seed: the run's seed.
      batch_size: examples per step.
      hparams: other hyperparameters (``learning_rate`` is overridden each step).
      min_lr, max_lr: the range; step ``i`` uses ``min_lr · (max_lr/min_lr)^(i/(N−1))``.
      num_steps: ``N``.
      beta: smoothing of the moving average.
      diverge_factor: the curve is cut where the smoothed loss exceeds this × its minimum.
    Returns:
      :class:`LRFinderResult`.

    >>> res = lr_find(recipe, data, batch_size=64, num_steps=100)   # doctest: +SKIP
    >>> res.suggestion                                              # doctest: +SKIP
    0.0031
    """
    _check_lrs(min_lr, max_lr)
    if max_lr <= min_lr:
        raise ConfigError(f"max_lr ({max_lr}) must be larger than min_lr ({min_lr})")
    if num_steps < 3:
        raise ConfigError(f"lr_find needs num_steps >= 3, got {num_steps}")
    hp = dict(hparams or {})
    hp["learning_rate"] = min_lr
    hp = as_hparams(hp)
    lrs = min_lr * (max_lr / min_lr) ** (np.arange(num_steps) / (num_steps - 1))
    train_step = make_train_step(recipe)

    @jax.jit
    def run(hp, lrs, x, y):
        state = init_state(recipe, seed, hp, x[:1])  # inside the jit: one compilation in all
        idx = _batches(state, data, 0, num_steps, batch_size)

        def body(st, inp):
            lr, idx_B = inp
            st = st.replace(hparams={**st.hparams, "learning_rate": lr})
            st, m = train_step(st, {"x": x[idx_B], "y": y[idx_B]})
            return st, m["loss"]

        return jax.lax.scan(body, state, (lrs, idx))[1]

    losses = np.asarray(jax.device_get(run(hp, jnp.asarray(lrs, jnp.float32), data.x_train, data.y_train)),
                        np.float64)
    return _analyse(lrs, losses, beta, diverge_factor)


def _analyse(lrs, losses, beta, diverge_factor) -> LRFinderResult:
    n = len(losses)
    smoothed = np.empty(n)
    avg = 0.0
    for i, v in enumerate(losses):
        avg = beta * avg + (1 - beta) * (v if np.isfinite(v) else np.inf)
        smoothed[i] = avg / (1 - beta ** (i + 1))
    best = np.minimum.accumulate(np.where(np.isfinite(smoothed), smoothed, np.inf))
    blown = ~np.isfinite(smoothed) | (smoothed > diverge_factor * best)
    diverged_at = int(np.argmax(blown)) if blown.any() else n
    usable = max(diverged_at, 2)
    log_lr = np.log(lrs[:usable])
    slope = np.gradient(smoothed[:usable], log_lr)
    i_min = int(np.argmin(smoothed[:usable]))
    # Steepest descent before the minimum: past it the loss is already turning up.
    i_steep = int(np.argmin(slope[: max(i_min, 1) + 1]))
    return LRFinderResult(
        learning_rates=np.asarray(lrs), losses=losses, smoothed=smoothed,
        suggestion=float(lrs[i_steep]), lr_at_min=float(lrs[i_min]), diverged_at=diverged_at,
    )


class LRCheckResult(NamedTuple):
    """Outcome of :func:`lr_drop_check` (one row per learning rate, NumPy arrays).

    Attributes:
      learning_rates: ``[K]``.
      losses: ``[K, N]`` training loss per step.
      initial_loss: ``[K]`` loss of the first step (same for all rates: same seed and batch).
      final_loss: ``[K]`` mean loss over the last ``window`` steps.
      dropped: ``[K]`` the final loss is below ``drop_fraction`` × the initial loss.
      diverged: ``[K]`` a non-finite loss or gradient was met.
      expected_initial_loss: ``log(C)`` for a C-class softmax (the lectures' sanity check).
      best: the rate with the lowest final loss among those that dropped (``None`` if none did).
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    initial_loss: np.ndarray
    final_loss: np.ndarray
    dropped: np.ndarray
    diverged: np.ndarray
    expected_initial_loss: float
    best: float | None


def lr_drop_check(
    recipe,
    data,
    seed: int = 0,
    *,
    batch_size: int,
    hparams: Mapping | None = None,
    learning_rates: Sequence[float] = (1e-1, 1e-2, 1e-3, 1e-4),
    num_steps: int = 100,
    drop_fraction: float = 0.5,
    window: int = 10,
) -> LRCheckResult:
    """The lectures' check: which learning rate makes the loss drop significantly in 100 iterations.

    All rates train the same seed (same initial weights, same batches) as one vmapped program.

    Args:
      recipe, data, seed, batch_size, hparams: as for :func:`dlcore.train.fit` (``learning_rate``
        in ``hparams`` is replaced by each of ``learning_rates``; a small ``weight_decay`` is the
        lectures' advice).
      learning_rates: the rates to try (the lectures: 1e-1, 1e-2, 1e-3, 1e-4).
      num_steps: iterations (100).
      drop_fraction: "dropped" means final loss < ``drop_fraction`` × initial loss.
      window: steps averaged for the final loss.
    Returns:
      :class:`LRCheckResult`.
    """
    lrs = np.asarray(learning_rates, np.float64)
    if lrs.ndim != 1 or lrs.size == 0:
        raise ConfigError("learning_rates must be a non-empty list of rates")
    _check_lrs(*lrs.tolist())
    if not 0 < drop_fraction < 1:
        raise ConfigError(f"drop_fraction must be in (0, 1), got {drop_fraction}")
    if not 1 <= window <= num_steps:
        raise ConfigError(f"window must be in [1, num_steps={num_steps}], got {window}")
    hp = dict(hparams or {})
    hp["learning_rate"] = lrs.astype(np.float32)
    hp = broadcast_hparams(hp, lrs.size)
    train_step = make_train_step(recipe)

    def one(hp, x, y):
        # Initialised inside the compiled program (one compilation); same seed for every rate.
        state = init_state(recipe, seed, hp, x[:1])
        idx = _batches(state, data, 0, num_steps, batch_size)
        state, m = jax.lax.scan(lambda st, i: train_step(st, {"x": x[i], "y": y[i]}), state, idx)
        return state.status, m["loss"]

    status, losses = jax.device_get(
        jax.jit(jax.vmap(one, in_axes=(0, None, None)))(hp, data.x_train, data.y_train)
    )
    losses = np.asarray(losses, np.float64)
    diverged = np.asarray(status) == DIVERGED
    initial = losses[:, 0]
    final = losses[:, -window:].mean(axis=1)
    dropped = ~diverged & np.isfinite(final) & (final < drop_fraction * initial)
    best = float(lrs[dropped][np.argmin(final[dropped])]) if dropped.any() else None
    c = getattr(data, "num_classes", None)
    return LRCheckResult(
        learning_rates=lrs, losses=losses, initial_loss=initial, final_loss=final, dropped=dropped,
        diverged=diverged, expected_initial_loss=math.log(c) if c else float("nan"), best=best,
    )
