"""Dropout's two scaling conventions and DropConnect (a mask on the weights, not the activations).

**Inverted dropout** (what :func:`dlcore.nn.dropout` does, like every modern library): in training
keep each unit with probability ``q = 1 − rate`` and divide the kept ones by ``q``; at test time use
the network unchanged. Each unit's expected value is preserved: ``E[mask·x/q] = x``.

**The lectures' weight-scaling inference rule** (the original dropout): train with the plain mask
(no division), and at test time multiply the outgoing weights by ``q``
(:func:`weight_scaling_rule`). For the lecture's example ``z = θ₁x₁m₁ + θ₂x₂m₂`` with
``q = ½`` the four equally likely masks average to ``E[z] = ½(θ₁x₁ + θ₂x₂)``: the weight-scaled
network computes the expected output exactly.

The two are the same family of functions: a network trained with plain masks and weights ``W``
computes, with inverted dropout, the weights ``W' = q·W``; evaluating ``W'`` unchanged equals
evaluating ``W`` scaled by ``q``. For a layer that is linear in the dropped units the expectation is
exact; through nonlinearities both are the same (standard) approximation of the ensemble average —
:func:`dlcore.nn.mc_dropout_predict` estimates the average itself.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.nn._dropout import dropout


def plain_dropout(key: jax.Array, x: jax.Array, rate) -> jax.Array:
    """The original (non-inverted) dropout: zero each element with probability ``rate``, no rescaling.

    Pair it with :func:`weight_scaling_rule` at test time. ``E[plain_dropout(x)] = (1 − rate)·x``.

    >>> import jax
    >>> y = plain_dropout(jax.random.PRNGKey(0), jnp.full(1000, 2.0), 0.5)
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    """
    keep = 1.0 - jnp.asarray(rate, dtype=x.dtype)
    mask = jax.random.bernoulli(key, keep, x.shape)
    return jnp.where(mask, x, jnp.zeros_like(x))


def weight_scaling_rule(kernel: jax.Array, rate) -> jax.Array:
    """Test-time weights for a layer whose *inputs* were dropped with plain dropout: ``(1 − rate)·W``.

    >>> weight_scaling_rule(jnp.array([2.0, 4.0]), 0.5).tolist()
    [1.0, 2.0]
    """
    return (1.0 - jnp.asarray(rate, kernel.dtype)) * kernel


def drop_connect(key: jax.Array, kernel: jax.Array, rate) -> jax.Array:
    """DropConnect: zero each *weight* ``W_ij`` with probability ``rate`` (inverted scaling by ``1/q``).

    Unlike dropout, which zeroes a unit (a whole row of the next layer's kernel), each connection is
    dropped independently. ``rate`` may be traced; ``rate = 0`` returns ``kernel`` exactly.

    Args:
      key: the mask's key (one mask per call, shared by the batch).
      kernel: any weight array.
      rate: drop probability.
    Returns:
      the masked, rescaled kernel (same shape).

    >>> import jax
    >>> w = drop_connect(jax.random.PRNGKey(0), jnp.ones((100, 100)), 0.5)
    >>> sorted(set(w.ravel().tolist()))
    [0.0, 2.0]
    """
    return dropout(key, kernel, rate)


class DropConnectDense(nn.Module):
    """A Dense layer with DropConnect: in training, ``y = x·(M ⊙ W)/q + b`` with a fresh mask ``M``.

    The mask is drawn once per call (per batch) from the ``dropout`` RNG stream; in evaluation the
    full kernel is used (inverted scaling makes that the expected layer).

    Attributes:
      features: output width.
      rate: probability of dropping a connection (float or traced scalar).
      kernel_init, bias_init: flax initializers.

    Call: ``layer(x_BxD, train)`` → ``[B, features]``.

    >>> import jax
    >>> m = DropConnectDense(3, rate=0.5)
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((2, 4)), train=False)
    >>> m.apply(v, jnp.ones((2, 4)), train=True, rngs={"dropout": jax.random.PRNGKey(1)}).shape
    (2, 3)
    """

    features: int
    rate: float | jax.Array = 0.5
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
        if train and not (isinstance(self.rate, (int, float)) and self.rate == 0):
            kernel = drop_connect(self.make_rng("dropout"), kernel, self.rate)
        # explicit broadcast of the bias (the tests run with rank promotion disabled)
        return x @ kernel.astype(x.dtype) + bias.astype(x.dtype).reshape((1,) * (x.ndim - 1) + (self.features,))
