"""Reading learning curves: underfitting, overfitting, a good fit, and the lectures' bad signs.

The lectures' guide (deck 000, "the train/validation gap"): training loss should go down; a large
and growing gap with validation means overfitting (regularize, more data, early stopping); both
high and close means underfitting (bigger model, train longer, higher learning rate); validation
*better* than training is a bad sign (leakage between splits, a too-easy validation set, or
regularization such as dropout active only in training — check before trusting it).
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import numpy as np

LABELS = ("good fit", "underfitting", "overfitting", "train loss not decreasing", "validation better than train")


class Diagnosis(NamedTuple):
    """A label for a run's curves and the evidence behind it."""

    label: str
    evidence: list[str]
    advice: str

    def __str__(self) -> str:
        return f"{self.label}: " + "; ".join(self.evidence) + f". {self.advice}"


def _tail_mean(a: np.ndarray, frac: float = 0.1) -> float:
    k = max(1, int(len(a) * frac))
    return float(np.mean(a[-k:]))


def _head_mean(a: np.ndarray, frac: float = 0.1) -> float:
    k = max(1, int(len(a) * frac))
    return float(np.mean(a[:k]))


def diagnose(
    train_loss,
    val_loss,
    *,
    chance_loss: float | None = None,
    gap_tol: float = 0.1,
    decrease_tol: float = 0.05,
    underfit_frac: float = 0.6,
) -> Diagnosis:
    """Classify one run from its train-loss curve (per step) and validation-loss curve.

    Args:
      train_loss: ``[T]`` training loss per step (or per evaluation).
      val_loss: ``[E]`` validation loss per evaluation (E ≥ 2).
      chance_loss: loss of a constant predictor, e.g. ``log(C)`` for C classes (default: the
        initial training loss).
      gap_tol: a gap ``val - train`` (in units of the chance loss) beyond which the curves disagree.
      decrease_tol: the training loss must fall by this fraction of its start to count as decreasing.
      underfit_frac: a final training loss above this fraction of the chance loss is "high".
    Returns:
      :class:`Diagnosis` with a label from :data:`LABELS`, the evidence and the lectures' advice.

    >>> diagnose(np.linspace(2.3, 0.1, 100), np.r_[np.linspace(2.3, 0.5, 5), np.linspace(0.6, 1.5, 5)]).label
    'overfitting'
    """
    tr = np.asarray(train_loss, dtype=np.float64).ravel()
    va = np.asarray(val_loss, dtype=np.float64).ravel()
    if tr.size < 2 or va.size < 2:
        raise ValueError("diagnose needs at least 2 training and 2 validation points")
    start, end = _head_mean(tr), _tail_mean(tr)
    chance = float(chance_loss) if chance_loss is not None else start
    v_end, v_min = float(va[-1]), float(np.min(va))
    v_argmin = int(np.argmin(va))
    ev = [f"train loss {start:.3g} -> {end:.3g}", f"val loss {va[0]:.3g} -> min {v_min:.3g} (eval {v_argmin}) -> {v_end:.3g}"]
    if not end < start * (1 - decrease_tol):
        return Diagnosis(
            "train loss not decreasing", ev,
            "Check the learning rate (too high or too low), that gradients reach every layer, and that "
            "inputs and labels line up; overfit a single batch first.",
        )
    # Gaps are measured in units of the chance loss, so small final losses do not inflate them.
    gap = (v_end - end) / max(abs(chance), 1e-12)
    ev.append(f"final gap (val - train) = {gap:+.2f} x chance loss")
    if gap < -gap_tol:
        return Diagnosis(
            "validation better than train", ev,
            "Suspicious: look for leakage between splits, an easier validation set, or regularization "
            "(dropout, augmentation) that only acts during training.",
        )
    rise = (v_end - v_min) / max(abs(chance), 1e-12)
    if (rise > gap_tol / 2 and v_argmin < va.size - 1) or gap > 2 * gap_tol:
        if rise > gap_tol / 2:
            ev.append(f"val loss rose {rise:.2f} x chance above its minimum")
        return Diagnosis(
            "overfitting", ev,
            "Regularize (weight decay, dropout, augmentation), get more data, or stop early at the "
            "validation minimum.",
        )
    if end > underfit_frac * chance:
        ev.append(f"final train loss is {100 * end / chance:.0f}% of the chance loss {chance:.3g}")
        return Diagnosis(
            "underfitting", ev,
            "Use a bigger model, train longer or with a better learning rate; reduce regularization.",
        )
    return Diagnosis("good fit", ev, "Train and validation agree and both went down.")


def diagnose_history(history: Mapping[str, np.ndarray], **kwargs) -> list[Diagnosis]:
    """:func:`diagnose` for each run of a (batched) dlcore history (``train/loss``, ``val/loss``)."""
    tr = np.asarray(history["train/loss"])
    va = np.asarray(history["val/loss"])
    if tr.ndim == 1:
        return [diagnose(tr, va, **kwargs)]
    return [diagnose(tr[i], va[i], **kwargs) for i in range(tr.shape[0])]
