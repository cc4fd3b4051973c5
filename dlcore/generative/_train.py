"""The training loop shared by the generative models: keyed state, pure steps, ``lax.scan`` runs.

A generative model supplies a loss ``loss_fn(params, batch, keys) -> (loss, metrics)`` where
``keys`` holds this step's keys of the named streams (``"latent"``, ``"noise"``, …);
:func:`make_gen_step` turns it into a pure ``(state, batch) -> (state, metrics)`` step and
:func:`train_loop` runs steps in one ``lax.scan``, drawing batch ``t`` from the ``"data"`` stream's
key and the global step ``t`` only, so a run is a pure function of its seed (and chunking or
resuming it changes nothing).

>>> import jax.numpy as jnp, optax
>>> tx = optax.sgd(0.1)
>>> loss = lambda p, batch, keys: (jnp.mean((batch - p["w"]) ** 2), {})
>>> state = init_gen_state({"w": jnp.zeros(())}, tx, seed=0)
>>> sampler = lambda data_key, step: jnp.full((4,), 3.0)
>>> state, hist = train_loop(make_gen_step(loss, tx), state, sampler, num_steps=50)
>>> round(float(state.params["w"]), 3), hist["loss"].shape
(3.0, (50,))
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import struct

from dlcore import random as drandom
from dlcore.data import batch_indices
from dlcore.errors import ConfigError

GEN_STREAMS: tuple[str, ...] = ("data", "latent", "noise")
"""Streams of a generative run: minibatches, latent draws (VAE, GAN), diffusion noise."""


@struct.dataclass
class GenState:
    """State of a generative model's training run (a pytree; vmap it over seeds).

    Attributes:
      step: ``int32[]`` global step.
      params: the model parameters.
      opt_state: optax state.
      keys: stream keys (:data:`GEN_STREAMS`); step ``t`` draws from ``fold_in(keys[s], t)``.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    keys: dict


def init_gen_state(params, tx: optax.GradientTransformation, seed, streams: Sequence[str] = GEN_STREAMS) -> GenState:
    """A fresh :class:`GenState` for ``params`` with the stream keys of ``seed`` (traceable)."""
    return GenState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        keys=drandom.stream_keys(seed, streams),
    )


def step_keys(keys: dict, step) -> dict:
    """This step's keys: ``{stream: fold_in(keys[stream], step)}``."""
    return {name: drandom.step_key(k, step) for name, k in keys.items()}


def make_gen_step(loss_fn: Callable, tx: optax.GradientTransformation) -> Callable:
    """A pure ``(state, batch) -> (state, metrics)`` gradient step on ``loss_fn``.

    Args:
      loss_fn: ``(params, batch, keys) -> (scalar loss, {name: scalar})``; ``keys`` are this
        step's stream keys.
      tx: the optimizer.
    Returns:
      ``step(state, batch)``; metrics hold ``loss`` and the loss function's metrics.
    """

    def step(state: GenState, batch) -> tuple[GenState, dict]:
        keys = step_keys(state.keys, state.step)
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, keys)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new, {"loss": loss, **metrics}

    return step


def train_loop(step_fn: Callable, state, sample_batch: Callable, num_steps: int, jit: bool = True):
    """Run ``num_steps`` steps in one ``lax.scan``.

    Args:
      step_fn: ``(state, batch) -> (state, metrics)``; ``state`` has ``step`` and ``keys["data"]``.
      state: the initial state.
      sample_batch: ``(data_key, step) -> batch`` (see :func:`array_sampler`, :func:`toy_sampler`).
      num_steps: static number of steps.
      jit: compile the scan (False runs it eagerly, e.g. to debug).
    Returns:
      ``(state, history)``: metrics stacked to ``[num_steps]``.
    """
    if int(num_steps) <= 0:
        raise ConfigError(f"num_steps must be positive, got {num_steps}")
    return (_scan_jit if jit else _scan)(state, step_fn, sample_batch, int(num_steps))


def _scan(state, step_fn, sample_batch, num_steps):
    def body(s, _):
        return step_fn(s, sample_batch(s.keys["data"], s.step))

    return jax.lax.scan(body, state, None, length=num_steps)


# Static functions are cached by identity: resuming a run with the same step and sampler (or chunk
# after chunk) reuses the compiled program.
_scan_jit = jax.jit(_scan, static_argnums=(1, 2, 3))


def array_sampler(x: jax.Array, batch_size: int) -> Callable:
    """``(data_key, step) -> x[batch]``: dlcore's epoch sampler (:func:`dlcore.data.batch_indices`)."""
    x = jnp.asarray(x)
    n = int(x.shape[0])
    if not 0 < batch_size <= n:
        raise ConfigError(f"batch_size must be in [1, {n}] for {n} examples, got {batch_size}")
    return lambda data_key, step: x[batch_indices(data_key, step, n, batch_size)]


def toy_sampler(name: str, batch_size: int, **params) -> Callable:
    """``(data_key, step) -> [batch_size, 2]``: fresh draws of a toy distribution every step."""
    from dlcore.generative._toy import check_toy, sample_toy

    check_toy(name, params)  # fail here, not inside the compiled loop
    return lambda data_key, step: sample_toy(name, drandom.step_key(data_key, step), batch_size, **params)
