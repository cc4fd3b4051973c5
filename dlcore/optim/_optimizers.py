"""Optimizers by name, built from (possibly traced) numeric hyperparameters.

An *optimizer function* maps a dict of hyperparameter arrays to an ``optax.GradientTransformation``:
``opt_fn(hparams) -> tx``. It is called inside the train step with the hyperparameters carried in
the train state, so a learning rate (or weight decay, momentum, …) can be ``vmap``-ed over without
recompiling; the optimizer *state* structure never depends on their values.
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax
import optax

from dlcore.errors import ConfigError, unknown_name

OptimizerFn = Callable[[Mapping[str, jax.Array]], optax.GradientTransformation]


def _lr(hp, schedule):
    lr = hp["learning_rate"]
    if schedule is None:
        return lr
    return lambda count: lr * schedule(count)


def _sgd(hp, schedule):
    return optax.sgd(_lr(hp, schedule))


def _momentum(hp, schedule):
    return optax.sgd(_lr(hp, schedule), momentum=hp.get("momentum", 0.9))


def _nesterov(hp, schedule):
    return optax.sgd(_lr(hp, schedule), momentum=hp.get("momentum", 0.9), nesterov=True)


def _adam(hp, schedule):
    return optax.adam(_lr(hp, schedule), b1=hp.get("b1", 0.9), b2=hp.get("b2", 0.999), eps=hp.get("eps", 1e-8))


def _adamw(hp, schedule):
    return optax.adamw(
        _lr(hp, schedule),
        b1=hp.get("b1", 0.9),
        b2=hp.get("b2", 0.999),
        eps=hp.get("eps", 1e-8),
        weight_decay=hp.get("weight_decay", 1e-4),
    )


OPTIMIZERS: dict[str, Callable] = {
    "sgd": _sgd,
    "momentum": _momentum,
    "nesterov": _nesterov,
    "adam": _adam,
    "adamw": _adamw,
}


def optimizer_fn(name: str, schedule: Callable | None = None) -> OptimizerFn:
    """The optimizer function of a named optimizer.

    Hyperparameters are read from the dict passed at step time: ``learning_rate`` (required), and
    per optimizer ``momentum``, ``b1``, ``b2``, ``eps``, ``weight_decay`` (defaults as optax).
    ``schedule`` (a function of the step count) multiplies the learning rate.

    >>> import jax.numpy as jnp
    >>> tx = optimizer_fn("sgd")({"learning_rate": jnp.float32(0.1)})
    >>> upd, _ = tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))
    >>> upd["w"].tolist()
    [-0.10000000149011612, -0.10000000149011612]
    """
    if name not in OPTIMIZERS:
        raise unknown_name("optimizer", name, OPTIMIZERS)
    build = OPTIMIZERS[name]

    def opt_fn(hparams: Mapping[str, jax.Array]) -> optax.GradientTransformation:
        if "learning_rate" not in hparams:
            raise ConfigError("hyperparameter 'learning_rate' is required by every optimizer")
        return build(dict(hparams), schedule)

    opt_fn.__name__ = f"optimizer_fn_{name}"
    return opt_fn
