"""The train state (a pytree of arrays) and the recipe (the static parts of a training run)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dlcore import random as drandom
from dlcore.errors import ConfigError
from dlcore.losses import cross_entropy
from dlcore.metrics import correct
from dlcore.optim import OptimizerFn, check_hparams

from dlcore.status import DIVERGED, RUNNING, STATUS_NAMES, STOPPED  # noqa: F401  (re-exported)


@struct.dataclass
class TrainState:
    """Everything a training run needs to continue: a pytree of arrays, vmappable and savable.

    Attributes:
      step: ``int32[]`` global step (number of steps taken).
      params: the model's ``params`` collection.
      model_state: the other mutable collections (e.g. ``{"batch_stats": ...}``), ``{}`` if none.
      opt_state: optax state.
      keys: stream keys (``dropout``, ``data``, ``augment``, …); per-step keys are
        ``fold_in(keys[stream], step)``.
      hparams: numeric hyperparameters as ``float32[]`` arrays (learning rate, dropout rate, …);
        vmapping over them sweeps them without recompiling.
      status: ``int32[]`` — ``RUNNING`` (0), ``STOPPED`` (1, early stopping) or ``DIVERGED`` (2, a
        non-finite loss/gradient was met; the parameters are the last finite ones).
      stop_step: ``int32[]`` step at which the run stopped or diverged, ``-1`` while running.
      extra: state of add-ons (early stopping, statistics, …), a dict of arrays.
    """

    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    keys: dict
    hparams: dict
    status: jax.Array
    stop_step: jax.Array
    extra: dict = struct.field(default_factory=dict)


def classification_loss(outputs_BxC, batch, hparams) -> jax.Array:
    """Default per-example loss: softmax cross-entropy with optional ``label_smoothing``."""
    return cross_entropy(outputs_BxC, batch["y"], hparams.get("label_smoothing", 0.0))


def classification_metrics(outputs_BxC, batch) -> dict[str, jax.Array]:
    """Default per-example metrics: ``accuracy``."""
    return {"accuracy": correct(outputs_BxC, batch["y"])}


def weight_penalty(params, hparams) -> jax.Array:
    """``l2 · Σ w² + l1 · Σ |w|`` over kernels (parameters with ndim ≥ 2; biases and norms exempt).

    Used when ``l1``/``l2`` appear in the hyperparameters (the lectures' L1/L2 regularization).
    """
    kernels = [p for p in jax.tree.leaves(params) if p.ndim >= 2]
    total = jnp.zeros((), jnp.float32)
    if "l2" in hparams:
        total = total + hparams["l2"] * sum(jnp.sum(jnp.square(k)) for k in kernels)
    if "l1" in hparams:
        total = total + hparams["l1"] * sum(jnp.sum(jnp.abs(k)) for k in kernels)
    return total


CONV_IMPLS = ("auto", "native", "matmul")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The static parts of training: what is compiled once, while :class:`TrainState` varies.

    Attributes:
      model: a Linen module called as ``model.apply(variables, x, train=bool)``.
      optimizer: ``hparams -> optax.GradientTransformation`` (see :func:`dlcore.optim.optimizer_fn`).
      loss: ``(outputs, batch, hparams) -> [B]`` per-example loss.
      metrics: ``(outputs, batch) -> {name: [B]}`` per-example metrics (averaged per step).
      penalty: ``(params, hparams) -> scalar`` added to the loss (default: L1/L2 on kernels).
      augment: ``(key, x) -> x`` applied to training batches with the ``augment`` stream's step key.
      conv_impl: how ``nn.Conv`` layers compute: ``"native"`` (XLA's convolution), ``"matmul"``
        (patches @ kernel, :func:`dlcore.nn.conv_as_matmul`; same parameters and numbers to float32
        rounding) or ``"auto"``: ``"matmul"`` for a sweep of several runs on CPU, where XLA turns
        vmapped convolutions into slow feature-grouped ones (``benchmarks/seed_sweep.py --models``:
        1.4–2× faster), else ``"native"``. Sweeps resolve it (:func:`dlcore.sweep.batch_loop`).

    Numeric hyperparameters whose name is a field of the model (e.g. ``dropout_rate``) are set on
    the model at every step, so they can be traced and swept too.
    """

    model: nn.Module
    optimizer: OptimizerFn
    loss: Callable = classification_loss
    metrics: Callable | None = classification_metrics
    penalty: Callable | None = weight_penalty
    augment: Callable | None = None
    conv_impl: str = "auto"

    def __post_init__(self):
        if self.conv_impl not in CONV_IMPLS:
            raise ConfigError(f"conv_impl={self.conv_impl!r} is not one of {CONV_IMPLS}")

    def bind(self, hparams: Mapping[str, jax.Array]) -> nn.Module:
        """The model with its hyperparameter fields (e.g. ``dropout_rate``) set from ``hparams``."""
        fields = {f.name for f in dataclasses.fields(self.model)}
        updates = {k: v for k, v in hparams.items() if k in fields}
        return self.model.clone(**updates) if updates else self.model


def as_hparams(hparams: Mapping[str, Any]) -> dict[str, jax.Array]:
    """Numeric hyperparameters as float32 arrays (a clear error for non-numeric values)."""
    out = {}
    for k, v in dict(hparams).items():
        try:
            out[k] = jnp.asarray(v, dtype=jnp.float32)
        except (TypeError, ValueError):
            raise ConfigError(f"hyperparameter {k!r} must be numeric, got {v!r}") from None
    check_hparams(out)  # finite and in range (concrete values; traced ones are checked by the caller)
    return out


def broadcast_hparams(hparams: Mapping, num_runs: int) -> dict[str, jax.Array]:
    """Each hyperparameter as a ``float32[num_runs]`` array (scalars are repeated).

    >>> broadcast_hparams({"learning_rate": 0.1, "l2": [0.0, 1e-4]}, 2)["learning_rate"].tolist()
    [0.10000000149011612, 0.10000000149011612]
    """
    out = {}
    for k, v in dict(hparams).items():
        try:
            a = np.asarray(v, dtype=np.float32)
        except (TypeError, ValueError):
            raise ConfigError(f"hyperparameter {k!r} must be numeric, got {v!r}") from None
        if a.ndim == 0:
            a = np.full((num_runs,), a, np.float32)
        if a.shape != (num_runs,):
            raise ConfigError(f"hyperparameter {k!r} has shape {a.shape}; expected a scalar or ({num_runs},)")
        out[k] = jnp.asarray(a)
    check_hparams(out)  # finite and in range, on the concrete values (the vmapped init sees tracers)
    return out


def init_state(recipe: Recipe, seed, hparams: Mapping[str, Any], x_example) -> TrainState:
    """Initialise a train state from a seed: parameters from the ``params`` stream.

    Args:
      recipe: model, optimizer, loss.
      seed: int or ``int32[]`` (traced seeds allowed, e.g. under ``vmap``).
      hparams: numeric hyperparameters (``learning_rate`` at least).
      x_example: one input batch ``[B, ...]`` (only its shape and dtype matter).

    >>> import jax.numpy as jnp
    >>> from dlcore.nn import MLP
    >>> from dlcore.optim import optimizer_fn
    >>> r = Recipe(MLP(widths=(4,), num_outputs=2), optimizer_fn("sgd"))
    >>> s = init_state(r, 0, {"learning_rate": 0.1}, jnp.zeros((1, 3)))
    >>> int(s.step), s.params["head"]["kernel"].shape
    (0, (4, 2))
    """
    hp = as_hparams(hparams)
    keys = drandom.stream_keys(seed)
    variables = recipe.bind(hp).init(
        {"params": keys["params"], "dropout": keys["dropout"]}, x_example, train=False
    )
    variables = dict(variables)
    params = variables.pop("params")
    opt_state = recipe.optimizer(hp).init(params)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state=variables,
        opt_state=opt_state,
        keys={k: v for k, v in keys.items() if k != "params"},
        hparams=hp,
        status=jnp.full((), RUNNING, jnp.int32),
        stop_step=jnp.full((), -1, jnp.int32),
        extra={},
    )
