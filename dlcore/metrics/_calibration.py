"""Calibration: expected calibration error (ECE) and reliability-diagram bins (jittable, masked).

A classifier is calibrated when, among the examples it predicts with confidence ``p``, a fraction
``p`` is right. With the confidence ``conf_i = max_c prob_ic`` binned into ``M`` equal-width bins
``(m/M, (m+1)/M]``::

    ECE = Σ_m (|B_m| / n) · |acc(B_m) − conf(B_m)|

(Guo et al., 2017), the gap between accuracy and confidence averaged over examples.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class CalibrationBins(NamedTuple):
    """Per-bin statistics ``[M]``: (weighted) example counts, mean accuracy and mean confidence.

    Empty bins have count 0 and accuracy/confidence 0.
    """

    count: jax.Array
    accuracy: jax.Array
    confidence: jax.Array


def calibration_bins(
    probs_BxC: jax.Array, labels_B: jax.Array, num_bins: int = 15, mask_B: jax.Array | None = None
) -> CalibrationBins:
    """Bin the examples by confidence (for ECE and reliability diagrams).

    Args:
      probs_BxC: predicted class probabilities (``softmax(logits)``; for a binary model with
        ``p = P(y=1)`` pass ``stack([1 − p, p], -1)``).
      labels_B: integer true classes.
      num_bins: M equal-width bins on (0, 1] (static).
      mask_B: which examples count.
    """
    probs = jnp.asarray(probs_BxC)
    conf = jnp.max(probs, axis=-1).astype(jnp.float32)
    right = (jnp.argmax(probs, axis=-1) == jnp.asarray(labels_B)).astype(jnp.float32)
    w = jnp.ones_like(conf) if mask_B is None else jnp.asarray(mask_B).astype(jnp.float32)
    # Bin m holds (m/M, (m+1)/M]; confidence exactly 0 joins the first bin.
    b = jnp.clip(jnp.ceil(conf * num_bins).astype(jnp.int32) - 1, 0, num_bins - 1)
    count = jnp.zeros(num_bins, jnp.float32).at[b].add(w)
    acc_sum = jnp.zeros(num_bins, jnp.float32).at[b].add(w * right)
    conf_sum = jnp.zeros(num_bins, jnp.float32).at[b].add(w * conf)
    safe = jnp.where(count > 0, count, 1.0)
    return CalibrationBins(count, acc_sum / safe, conf_sum / safe)


def expected_calibration_error(
    probs_BxC: jax.Array, labels_B: jax.Array, num_bins: int = 15, mask_B: jax.Array | None = None
) -> jax.Array:
    """ECE in [0, 1]: 0 for a calibrated model; ``conf − acc`` for one that is uniformly over-confident.

    >>> import jax.numpy as jnp
    >>> p = jnp.array([[0.9, 0.1]] * 4)               # 90% sure, right half of the time
    >>> round(float(expected_calibration_error(p, jnp.array([0, 0, 1, 1]))), 4)
    0.4
    """
    bins = calibration_bins(probs_BxC, labels_B, num_bins, mask_B)
    total = jnp.maximum(jnp.sum(bins.count), 1e-30)
    return jnp.sum(bins.count * jnp.abs(bins.accuracy - bins.confidence)) / total
