"""Switch every stochastic layer off while keeping the ``train`` flag (batch norm stays in training mode).

The debugging recipe overfits without regularization; dropout that a model *fixes* (not a swept
``dropout_rate``) would otherwise stay on. :func:`deterministic` intercepts the stochastic layers'
calls and runs them in their deterministic mode, whatever ``train`` the model passes down.
"""

from __future__ import annotations

import contextlib

import flax.linen as nn

from dlcore.nn._dropout import Dropout
from dlcore.nn._regularization import DropConnectDense

STOCHASTIC_LAYERS = (Dropout, DropConnectDense, nn.Dropout)
"""The layers :func:`deterministic` switches off (they draw from the ``dropout`` stream)."""


@contextlib.contextmanager
def deterministic():
    """Within this context (at trace time), dropout-type layers are the identity / use the full kernel.

    :class:`dlcore.nn.Dropout` and :class:`dlcore.nn.DropConnectDense` run with ``train=False``,
    ``flax.linen.Dropout`` as ``deterministic=True`` (the identity); everything else, batch norm
    included, sees the model's own ``train`` flag. Enter it around the *first* call of a jitted
    function (tracing), not around calls of an already compiled one.

    >>> import jax, jax.numpy as jnp
    >>> from dlcore.nn import MLP
    >>> m = MLP(widths=(8,), num_outputs=2, dropout_rate=0.5)
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((1, 3)), train=False)
    >>> with deterministic():
    ...     a = m.apply(v, jnp.ones((1, 3)), train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    >>> bool((a == m.apply(v, jnp.ones((1, 3)), train=False)).all())
    True
    """

    def interceptor(next_fun, args, kwargs, context):
        module = context.module
        if context.method_name != "__call__" or not isinstance(module, STOCHASTIC_LAYERS):
            return next_fun(*args, **kwargs)
        if isinstance(module, nn.Dropout):
            x = args[0] if args else kwargs["inputs"]
            return x  # flax's deterministic dropout is the identity
        if "train" in kwargs or len(args) < 2:
            return next_fun(*args, **{**kwargs, "train": False})
        return next_fun(args[0], False, *args[2:], **kwargs)

    with nn.intercept_methods(interceptor):
        yield
