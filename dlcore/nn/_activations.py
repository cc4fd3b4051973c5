"""Activation functions and a registry by name (for configs)."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from dlcore.errors import unknown_name

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "identity": lambda x: x,
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "gelu": jax.nn.gelu,
    "elu": jax.nn.elu,
    "leaky_relu": jax.nn.leaky_relu,
    "swish": jax.nn.swish,
    "softplus": jax.nn.softplus,
}


def get_activation(name: str | Callable) -> Callable[[jax.Array], jax.Array]:
    """Look an activation up by name (a callable passes through).

    >>> float(get_activation("relu")(jnp.array(-1.0)))
    0.0
    """
    if callable(name):
        return name
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise unknown_name("activation", name, ACTIVATIONS) from None
