"""Measurements of a trained state beyond the per-example metrics: calibration (with MC dropout)
and the noise of minibatch gradients. Pure, keyed, jittable and vmappable over states.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlcore.errors import ConfigError
from dlcore.losses import mean_loss
from dlcore.metrics import expected_calibration_error
from dlcore.nn import mc_dropout_predict
from dlcore.train._state import Recipe, TrainState
from dlcore.train._step import _apply


def calibration(recipe: Recipe, state: TrainState, x, y, *, num_bins: int = 15, mc_samples: int = 0,
                key: jax.Array | None = None) -> dict[str, jax.Array]:
    """Expected calibration error of the deterministic net, and of MC dropout with ``mc_samples`` passes.

    Args:
      recipe, state: a classifier and its trained state (dropout rate from ``state.hparams``).
      x, y: ``[N, ...]`` inputs and ``[N]`` integer labels (the whole split at once).
      num_bins: ECE bins (:func:`dlcore.metrics.expected_calibration_error`).
      mc_samples: ``T`` stochastic passes with dropout on (:func:`dlcore.nn.mc_dropout_predict`);
        0 measures the deterministic net only.
      key: PRNG key of the passes (needed when ``mc_samples > 0``).
    Returns:
      ``{"ece", "accuracy"}`` of the deterministic net (``train=False``), plus ``mc_ece``,
      ``mc_accuracy`` and ``ece_gain = ece − mc_ece`` (positive: MC dropout is better calibrated).

    >>> import jax, jax.numpy as jnp
    >>> from dlcore.nn import MLP
    >>> from dlcore.optim import optimizer_fn
    >>> from dlcore.train import init_state
    >>> r = Recipe(MLP(widths=(8,), num_outputs=3), optimizer_fn("sgd"))
    >>> s = init_state(r, 0, {"learning_rate": 0.1, "dropout_rate": 0.5}, jnp.zeros((1, 4)))
    >>> x, y = jax.random.normal(jax.random.PRNGKey(1), (50, 4)), jnp.arange(50) % 3
    >>> sorted(calibration(r, s, x, y, mc_samples=4, key=jax.random.PRNGKey(2)))
    ['accuracy', 'ece', 'ece_gain', 'mc_accuracy', 'mc_ece']
    """
    logits, _ = _apply(recipe, state, state.params, x, False)
    probs = jax.nn.softmax(logits, axis=-1)
    out = {"ece": expected_calibration_error(probs, y, num_bins),
           "accuracy": jnp.mean((jnp.argmax(probs, -1) == y).astype(jnp.float32))}
    if mc_samples:
        if key is None:
            raise ConfigError("calibration with mc_samples > 0 needs a key for the dropout passes")
        model = recipe.bind(state.hparams)
        variables = {"params": state.params, **state.model_state}
        mean, _ = mc_dropout_predict(model, variables, x, key, mc_samples)
        out["mc_ece"] = expected_calibration_error(mean, y, num_bins)
        out["mc_accuracy"] = jnp.mean((jnp.argmax(mean, -1) == y).astype(jnp.float32))
        out["ece_gain"] = out["ece"] - out["mc_ece"]
    return out


def gradient_noise(recipe: Recipe, state: TrainState, x, y, batch_size: int, key: jax.Array, *,
                   num_batches: int = 32, params=None) -> dict[str, jax.Array]:
    """How far minibatch gradients scatter around the full-batch gradient.

    With ``g`` the gradient of the mean data loss over all ``N`` examples and ``g_B`` that over a
    minibatch of ``B`` drawn without replacement, ``E‖g_B − g‖² = tr(Σ)/B · (N − B)/(N − 1)``,
    ``Σ`` the covariance of per-example gradients: the variance falls as ``1/B``. Estimated from
    ``num_batches`` minibatches (keys ``fold_in(key, k)``). The model runs with ``train=False`` (no
    dropout noise: only the sampling of the batch varies); penalties are left out.

    Args:
      recipe, state: the model and its state; ``params`` replaces ``state.params`` if given.
      x, y: the training split ``[N, ...]``, ``[N]``.
      batch_size: ``B`` (static, ``1 <= B <= N``).
      key: PRNG key of the minibatches.
      num_batches: minibatches averaged (static).
    Returns:
      ``grad_var`` (``E‖g_B − g‖²``), ``grad_trace`` (``B·(N−1)/(N−B)`` times it, the estimate of
      ``tr Σ``, which does not depend on ``B``; NaN when ``B = N``) and ``grad_sq_norm`` (``‖g‖²``).

    >>> import jax, jax.numpy as jnp
    >>> from dlcore.nn import MLP
    >>> from dlcore.optim import optimizer_fn
    >>> from dlcore.train import init_state
    >>> r = Recipe(MLP(widths=(8,), num_outputs=3), optimizer_fn("sgd"))
    >>> s = init_state(r, 0, {"learning_rate": 0.1}, jnp.zeros((1, 4)))
    >>> x, y = jax.random.normal(jax.random.PRNGKey(1), (64, 4)), jnp.arange(64) % 3
    >>> float(gradient_noise(r, s, x, y, 64, jax.random.PRNGKey(2))["grad_var"]) < 1e-10
    True
    """
    n = x.shape[0]
    if not 1 <= batch_size <= n:
        raise ConfigError(f"gradient_noise: batch_size must be in [1, {n}], got {batch_size}")
    params = state.params if params is None else params

    def grad(xb, yb):
        def loss(p):
            out, _ = _apply(recipe, state, p, xb, False)
            return mean_loss(recipe.loss(out, {"x": xb, "y": yb}, state.hparams))

        return jax.grad(loss)(params)

    def sq_norm(tree):
        return sum(jnp.sum(jnp.square(a.astype(jnp.float32))) for a in jax.tree.leaves(tree))

    full = grad(x, y)

    def one(k):
        idx = jax.random.permutation(jax.random.fold_in(key, k), n)[:batch_size]
        g = grad(x[idx], y[idx])
        return sq_norm(jax.tree.map(jnp.subtract, g, full))

    var = jnp.mean(jax.lax.map(one, jnp.arange(num_batches)))
    fpc = (n - batch_size) / (n - 1) if n > 1 else 0.0  # finite-population correction
    trace = var * batch_size / fpc if fpc > 0 else jnp.float32(jnp.nan)
    return {"grad_var": var, "grad_trace": trace, "grad_sq_norm": sq_norm(full)}


def input_gradient_norms(recipe: Recipe, state: TrainState, x, y) -> jax.Array:
    """How strongly the loss depends on each time step: ``E_n ‖∂ℓ_n/∂x_{n,t}‖`` for ``t = 0..T−1``.

    For a recurrent model the gradient reaching step ``t`` passes through ``T − 1 − t`` recurrent
    Jacobians: for a vanilla RNN it vanishes (or explodes) geometrically with the distance, which is
    why it cannot learn long lags; an LSTM's cell state carries it. The model runs with
    ``train=False``; each example's loss depends on its own inputs only, so one gradient of the
    summed loss gives every per-example gradient.

    Args:
      x: real sequences ``[N, T, D]`` (or ``[N, T]``); y: their targets.
    Returns:
      ``[T]`` mean gradient norms.

    >>> import jax, jax.numpy as jnp
    >>> from dlcore.nn import RNNModel
    >>> from dlcore.optim import optimizer_fn
    >>> from dlcore.train import init_state
    >>> r = Recipe(RNNModel(hidden_size=4, num_outputs=2, cell="rnn"), optimizer_fn("sgd"))
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (3, 6, 2))
    >>> s = init_state(r, 0, {"learning_rate": 0.1}, x[:1])
    >>> input_gradient_norms(r, s, x, jnp.array([0, 1, 0])).shape
    (6,)
    """
    def total(xx):
        out, _ = _apply(recipe, state, state.params, xx, False)
        return jnp.sum(recipe.loss(out, {"x": xx, "y": y}, state.hparams))

    g = jax.grad(total)(x.astype(jnp.float32))
    per = jnp.sqrt(jnp.sum(jnp.square(g.reshape(g.shape[0], g.shape[1], -1)), axis=-1))  # [N, T]
    return jnp.mean(per, axis=0)
