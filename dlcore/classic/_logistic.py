"""Logistic regression: binary (sigmoid + BCE) and multinomial (softmax + CE) by gradient descent.

Both losses are computed from *scores* (logits), never from probabilities, in the stable forms of
the lectures:

* binary: ``−[y log σ(s) + (1−y) log(1−σ(s))] = max(s, 0) − s·y + log(1 + e^{−|s|})``;
* softmax: ``−log softmax(s)_y = (s_max + log Σ_k e^{s_k − s_max}) − s_y`` (the max-subtraction
  trick: no ``exp`` of a large positive number ever happens).

There is no closed form (lecture 2), so the fit is full-batch gradient descent in one
``lax.scan``: pure, jittable, vmappable over ``learning_rate``/``l2`` (traced) and deterministic
(zero initialization of a convex problem: no key). Standardize inputs first.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from dlcore.classic._linear import check_xy
from dlcore.errors import ConfigError, ShapeError


class LogisticModel(NamedTuple):
    """A linear classifier ``s = x·weights + bias``.

    Attributes:
      weights: ``[D]`` (binary: one score, class 1 when ``s > 0``) or ``[D, C]`` (softmax).
      bias: ``[]`` or ``[C]``.
    """

    weights: jax.Array
    bias: jax.Array


def binary_cross_entropy(logits_B, labels_B) -> jax.Array:
    """Per-example sigmoid BCE from logits: ``max(s,0) − s·y + log1p(exp(−|s|))``. ``[B]``.

    Equal to ``−[y log σ(s) + (1−y) log(1−σ(s))]`` and finite for any finite ``s``.

    >>> import jax.numpy as jnp
    >>> binary_cross_entropy(jnp.array([0.0, 1000.0]), jnp.array([1, 0])).tolist()
    [0.6931471824645996, 1000.0]
    """
    s = jnp.asarray(logits_B)
    y = jnp.asarray(labels_B).astype(s.dtype)
    return jnp.maximum(s, 0) - s * y + jnp.log1p(jnp.exp(-jnp.abs(s)))


def softmax_cross_entropy(logits_BxC, labels_B) -> jax.Array:
    """Per-example ``−log softmax(s)_y`` with the max subtracted before ``exp``. ``[B]``.

    >>> import jax.numpy as jnp
    >>> float(softmax_cross_entropy(jnp.array([[1000., 0.]]), jnp.array([1]))[0])
    1000.0
    """
    s = jnp.asarray(logits_BxC)
    s_max = jax.lax.stop_gradient(jnp.max(s, axis=-1, keepdims=True))  # any constant works
    lse = s_max[:, 0] + jnp.log(jnp.sum(jnp.exp(s - s_max), axis=-1))
    s_y = jnp.take_along_axis(s, jnp.asarray(labels_B)[:, None].astype(jnp.int32), axis=-1)[:, 0]
    return lse - s_y


def logistic_logits(model: LogisticModel, x_NxD) -> jax.Array:
    """Scores ``x·W + b``: ``[N]`` (binary) or ``[N, C]``."""
    s = jnp.asarray(x_NxD) @ model.weights
    return s + (model.bias[None] if s.ndim == 2 else model.bias)


def predict_proba(model: LogisticModel, x_NxD) -> jax.Array:
    """Class probabilities ``[N, C]`` (``[N, 2]`` for a binary model: ``[1 − σ(s), σ(s)]``)."""
    s = logistic_logits(model, x_NxD)
    if s.ndim == 1:
        p1 = jax.nn.sigmoid(s)
        return jnp.stack([1 - p1, p1], axis=-1)
    return jax.nn.softmax(s, axis=-1)  # subtracts the max internally


def predict_logistic(model: LogisticModel, x_NxD) -> jax.Array:
    """Predicted labels ``[N]`` int32 (binary: ``s > 0``; ties in softmax: the smallest class)."""
    s = logistic_logits(model, x_NxD)
    if s.ndim == 1:
        return (s > 0).astype(jnp.int32)
    return jnp.argmax(s, axis=-1).astype(jnp.int32)


def _gd(loss_fn, init, optimizer, num_steps):
    def step(carry, _):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(step, (init, optimizer.init(init)), None, length=num_steps)
    return params, losses


def _prepare(x_NxD, y_N):
    check_xy(x_NxD, y_N)
    if jnp.ndim(y_N) != 1:
        raise ShapeError(f"labels must be 1-D integer class ids [N], got shape {jnp.shape(y_N)}")
    x = jnp.asarray(x_NxD)
    return x.astype(jnp.result_type(x.dtype, jnp.float32)), jnp.asarray(y_N).astype(jnp.int32)


def fit_binary_logistic(
    x_NxD,
    y_N,
    *,
    learning_rate,
    num_steps: int,
    l2=0.0,
    optimizer: optax.GradientTransformation | None = None,
) -> tuple[LogisticModel, jax.Array]:
    """Binary logistic regression (labels 0/1) by full-batch gradient descent.

    Minimizes ``mean_i BCE(x_i·w + b, y_i) + (l2/2)·‖w‖²`` (bias unpenalized).

    Args:
      x_NxD: inputs (standardize first).
      y_N: labels in {0, 1}.
      learning_rate: step size (may be traced).
      num_steps: number of full-batch steps (static).
      l2: L2 strength (``l2 = 1/(C·N)`` reproduces scikit-learn's ``C``); may be traced.
      optimizer: any optax transformation instead of plain ``optax.sgd(learning_rate)``.
    Returns:
      ``(model, loss_history [num_steps])`` (loss before each step).

    >>> import jax.numpy as jnp
    >>> m, _ = fit_binary_logistic(jnp.array([[-1.], [1.]]), jnp.array([0, 1]),
    ...                            learning_rate=1.0, num_steps=50)
    >>> predict_logistic(m, jnp.array([[-2.], [2.]])).tolist()
    [0, 1]
    """
    x, y = _prepare(x_NxD, y_N)
    lam = jnp.asarray(l2, x.dtype)

    def loss_fn(p):
        w, b = p
        return jnp.mean(binary_cross_entropy(x @ w + b, y)) + 0.5 * lam * jnp.sum(w * w)

    init = (jnp.zeros(x.shape[1], x.dtype), jnp.zeros((), x.dtype))
    (w, b), losses = _gd(loss_fn, init, optimizer or optax.sgd(learning_rate), num_steps)
    return LogisticModel(w, b), losses


def fit_softmax_regression(
    x_NxD,
    y_N,
    num_classes: int,
    *,
    learning_rate,
    num_steps: int,
    l2=0.0,
    optimizer: optax.GradientTransformation | None = None,
) -> tuple[LogisticModel, jax.Array]:
    """Multinomial logistic (softmax) regression by full-batch gradient descent.

    Minimizes ``mean_i CE(x_i·W + b, y_i) + (l2/2)·‖W‖²_F`` (bias unpenalized).

    Args:
      x_NxD: inputs (standardize first).
      y_N: integer labels in ``[0, num_classes)``.
      num_classes: C (static).
      learning_rate, num_steps, l2, optimizer: as in :func:`fit_binary_logistic`.
    Returns:
      ``(model, loss_history [num_steps])``; ``model.weights`` is ``[D, C]``.

    >>> import jax.numpy as jnp
    >>> x = jnp.array([[-2.], [0.], [2.]])
    >>> m, _ = fit_softmax_regression(x, jnp.array([0, 1, 2]), 3, learning_rate=1.0, num_steps=300)
    >>> predict_logistic(m, x).tolist()
    [0, 1, 2]
    """
    if int(num_classes) < 2:
        raise ConfigError(f"num_classes must be at least 2, got {num_classes}")
    x, y = _prepare(x_NxD, y_N)
    lam = jnp.asarray(l2, x.dtype)

    def loss_fn(p):
        w, b = p
        return jnp.mean(softmax_cross_entropy(x @ w + b[None], y)) + 0.5 * lam * jnp.sum(w * w)

    init = (jnp.zeros((x.shape[1], num_classes), x.dtype), jnp.zeros(num_classes, x.dtype))
    (w, b), losses = _gd(loss_fn, init, optimizer or optax.sgd(learning_rate), num_steps)
    return LogisticModel(w, b), losses
