"""Per-layer activation and gradient statistics (the lectures' 10-layer × 500-unit tanh study).

Activations are the values a model *sows* into its ``intermediates`` collection (dlcore's MLP sows
each hidden layer's post-activation output as ``act_<i>``); models that sow nothing fall back to
every submodule's output (``capture_intermediates``).
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp
from flax import traverse_util

from dlcore.losses import mean_loss
from dlcore.train import Recipe, TrainState

SATURATION_THRESHOLD = 0.97


def activation_stats(a_BxU: jax.Array, kind: str = "tanh", threshold: float = SATURATION_THRESHOLD) -> dict:
    """Mean, std, saturation fraction and dead-unit fraction of one layer's activations.

    Args:
      a_BxU: activations ``[B, ...units]`` (units flattened).
      kind: ``"tanh"`` (saturated: ``|a| > threshold``), ``"sigmoid"`` (``a < 1-threshold`` or
        ``a > threshold``) or ``"relu"`` (saturation reported as 0).
    Returns:
      ``mean``, ``std``, ``saturated`` (fraction of values), ``dead`` (fraction of units that are
      ≤ 0 for every example of the batch — dead ReLUs).

    >>> s = activation_stats(jnp.array([[0.0, 1.0], [0.0, 2.0]]), kind="relu")
    >>> float(s["dead"]), float(s["mean"])
    (0.5, 0.75)
    """
    a = a_BxU.reshape((a_BxU.shape[0], -1)).astype(jnp.float32)
    if kind == "tanh":
        sat = jnp.mean(jnp.abs(a) > threshold)
    elif kind == "sigmoid":
        sat = jnp.mean((a > threshold) | (a < 1 - threshold))
    else:
        sat = jnp.zeros((), jnp.float32)
    dead = jnp.mean(jnp.all(a <= 0, axis=0))
    return {"mean": jnp.mean(a), "std": jnp.std(a), "saturated": sat.astype(jnp.float32),
            "dead": dead.astype(jnp.float32)}


def layer_activations(recipe: Recipe, state: TrainState, x) -> dict[str, jax.Array]:
    """Activations per layer on ``x`` in eval mode: ``{layer_name: [B, ...]}``."""
    model = recipe.bind(state.hparams)
    variables = {"params": state.params, **state.model_state}
    _, inter = model.apply(variables, x, train=False, mutable=["intermediates"])
    inter = inter.get("intermediates", {})
    if not inter:
        _, inter = model.apply(variables, x, train=False, capture_intermediates=True, mutable=["intermediates"])
        inter = inter.get("intermediates", {})
    flat = traverse_util.flatten_dict(jax.tree.map(lambda a: a, dict(inter)), sep="/")
    out = {}
    for k, v in flat.items():
        vals = v if isinstance(v, tuple) else (v,)
        name = k[: -len("/__call__")] if k.endswith("/__call__") else k
        out[name] = vals[-1]
    return out


def gradient_norms(grads) -> dict[str, jax.Array]:
    """L2 norm of the gradient of each layer (top-level module), ``{layer: norm}``."""
    out: dict[str, jax.Array] = {}
    for path, g in traverse_util.flatten_dict(grads, sep="/").items():
        layer = path.rsplit("/", 1)[0] if "/" in path else path
        out[layer] = out.get(layer, 0.0) + jnp.sum(jnp.square(g))
    return {k: jnp.sqrt(v) for k, v in out.items()}


def layer_stats(recipe: Recipe, state: TrainState, batch: Mapping, kind: str = "tanh") -> dict[str, jax.Array]:
    """Activation statistics and gradient norm per layer on one batch (eval mode; pure, jittable).

    Returns:
      flat dict ``{"<layer>/<stat>": scalar}`` with stats ``mean``, ``std``, ``saturated``,
      ``dead`` for activations and ``grad_norm`` for parameters.
    """
    out = {}
    for name, a in layer_activations(recipe, state, batch["x"]).items():
        for stat, v in activation_stats(a, kind).items():
            out[f"{name}/{stat}"] = v

    def loss_fn(params):
        logits = recipe.bind(state.hparams).apply({"params": params, **state.model_state}, batch["x"], train=False)
        return mean_loss(recipe.loss(logits, batch, state.hparams))

    grads = jax.grad(loss_fn)(state.params)
    for name, g in gradient_norms(grads).items():
        out[f"{name}/grad_norm"] = g
    return out


def layer_stats_fn(recipe: Recipe, kind: str = "tanh") -> Callable[[TrainState, Mapping], dict]:
    """``stats_fn`` for :func:`dlcore.train.fit` (``stats_fn=..., stats_every=100``)."""
    return lambda state, batch: layer_stats(recipe, state, batch, kind)
