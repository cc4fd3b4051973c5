"""Activation functions, the parametric ones (PReLU, maxout) as modules, and a registry by name.

The lectures' table (lecture 7): step, sigmoid, tanh, ReLU, leaky ReLU ``max(0.01x, x)``,
PReLU ``max(αx, x)`` with a learned α, ELU, GELU, swish ``x·σ(βx)`` and maxout
``max(w₁ᵀx + b₁, w₂ᵀx + b₂)``; softmax for multiclass outputs.
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.errors import ConfigError, unknown_name


def step(x: jax.Array) -> jax.Array:
    """Heaviside step: 1 for ``x ≥ 0``, else 0 (the perceptron's unit; its gradient is 0 everywhere).

    >>> step(jnp.array([-1.0, 0.0, 2.0])).tolist()
    [0.0, 1.0, 1.0]
    """
    # jnp.where of constants has zero gradient, which is exactly why gradient descent cannot train it.
    return jnp.where(x >= 0, jnp.ones_like(x), jnp.zeros_like(x))


def sigmoid(x: jax.Array) -> jax.Array:
    """``σ(x) = 1 / (1 + e^{-x})`` in ``(0, 1)`` (saturates; not zero-centred).

    >>> float(sigmoid(jnp.array(0.0)))
    0.5
    """
    return jax.nn.sigmoid(x)


def tanh(x: jax.Array) -> jax.Array:
    """``tanh(x)`` in ``(-1, 1)`` (zero-centred, still saturates).

    >>> float(tanh(jnp.array(0.0)))
    0.0
    """
    return jnp.tanh(x)


def relu(x: jax.Array) -> jax.Array:
    """``max(0, x)`` (the standard choice; units can die).

    >>> relu(jnp.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """
    return jax.nn.relu(x)


def leaky_relu(x: jax.Array, negative_slope: float = 0.01) -> jax.Array:
    """``max(a·x, x)`` with a fixed small slope ``a`` (0.01 in the lectures; it does not die).

    >>> print(leaky_relu(jnp.array([-1.0, 2.0])))
    [-0.01  2.  ]
    """
    return jnp.where(x >= 0, x, negative_slope * x)


def elu(x: jax.Array, alpha: float = 1.0) -> jax.Array:
    """``x`` for ``x > 0``, ``α(eˣ − 1)`` otherwise (smooth, saturates at ``-α``).

    >>> round(float(elu(jnp.array(-100.0))), 4)
    -1.0
    """
    return jax.nn.elu(x, alpha)


def gelu(x: jax.Array, approximate: bool = True) -> jax.Array:
    """``x·Φ(x)`` (Gaussian CDF); ``approximate=True`` uses the tanh form (as ``jax.nn.gelu``).

    >>> float(gelu(jnp.array(0.0)))
    0.0
    """
    return jax.nn.gelu(x, approximate=approximate)


def swish(x: jax.Array, beta: float | jax.Array = 1.0) -> jax.Array:
    """Swish ``x·σ(βx)``: ``β = 1`` is SiLU, ``β → ∞`` tends to ReLU, ``β = 0`` gives ``x/2``.

    The lectures' table writes ``2x·σ(βx)`` (so that ``β = 0`` gives the identity and ``β → ∞``
    gives ``2·max(0, x)``); that is ``2 * swish(x, beta)``. ``beta`` may be a traced scalar.

    >>> float(swish(jnp.array(2.0), beta=0.0))
    1.0
    """
    return x * jax.nn.sigmoid(jnp.asarray(beta, x.dtype) * x)


def softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    """``exp(x_i) / Σ_j exp(x_j)`` along ``axis``, computed stably (max subtracted first).

    >>> softmax(jnp.array([0.0, 0.0])).tolist()
    [0.5, 0.5]
    """
    return jax.nn.softmax(x, axis=axis)


def identity(x: jax.Array) -> jax.Array:
    """``x`` (a linear layer; stacking them stays linear)."""
    return x


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "identity": identity,
    "linear": identity,
    "step": step,
    "relu": relu,
    "tanh": tanh,
    "sigmoid": sigmoid,
    "gelu": gelu,
    "gelu_exact": functools.partial(gelu, approximate=False),
    "elu": elu,
    "leaky_relu": leaky_relu,
    "swish": swish,
    "silu": swish,
    "softplus": jax.nn.softplus,
    "softmax": softmax,
}
"""Parameter-free activations by name. Parametric ones (``prelu``, ``maxout``) are modules."""

PARAMETRIC_ACTIVATIONS = ("prelu", "maxout")
"""Names :class:`Activation` accepts in addition to :data:`ACTIVATIONS` (they have parameters):
``"prelu"`` is :class:`PReLU` (one α), ``"maxout"`` is :class:`Maxout` with as many output features
as inputs and ``k = 2`` pieces (so it can stand wherever a shape-preserving nonlinearity goes)."""


def get_activation(name: str | Callable, **kwargs) -> Callable[[jax.Array], jax.Array]:
    """Look an activation up by name (a callable passes through).

    Args:
      name: a key of :data:`ACTIVATIONS` or a callable.
      **kwargs: fixed arguments, e.g. ``beta=2.0`` for swish or ``negative_slope=0.1``.
    Returns:
      ``f(x) -> y`` of the same shape.

    >>> float(get_activation("relu")(jnp.array(-1.0)))
    0.0
    >>> round(float(get_activation("leaky_relu", negative_slope=0.1)(jnp.array(-1.0))), 4)
    -0.1
    """
    if callable(name):
        return functools.partial(name, **kwargs) if kwargs else name
    if name in PARAMETRIC_ACTIVATIONS:
        raise ConfigError(
            f"activation {name!r} has learned parameters; use the module dlcore.nn.Activation({name!r}) "
            "(or dlcore.nn.PReLU / dlcore.nn.Maxout) inside a Linen module instead of get_activation"
        )
    try:
        fn = ACTIVATIONS[name]
    except KeyError:
        raise unknown_name("activation", name, list(ACTIVATIONS) + list(PARAMETRIC_ACTIVATIONS)) from None
    return functools.partial(fn, **kwargs) if kwargs else fn


class PReLU(nn.Module):
    """Parametric ReLU ``max(αx, x)`` for ``α < 1``; ``α`` is learned (backprop into it).

    Attributes:
      per_channel: one ``α`` per feature (last axis) instead of a single scalar.
      alpha_init: initial ``α`` (0.25 as in He et al. 2015).

    >>> import jax
    >>> m = PReLU()
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((2, 3)))
    >>> m.apply(v, -jnp.ones((1, 3))).tolist()
    [[-0.25, -0.25, -0.25]]
    """

    per_channel: bool = False
    alpha_init: float = 0.25

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (x.shape[-1],) if self.per_channel else ()
        alpha = self.param("alpha", nn.initializers.constant(self.alpha_init), shape, jnp.float32)
        # where() (not max(αx, x)) keeps the function right for any learned α, even α > 1.
        alpha = alpha.astype(x.dtype).reshape((1,) * (x.ndim - 1) + shape) if shape else alpha.astype(x.dtype)
        return jnp.where(x >= 0, x, alpha * x)


class Maxout(nn.Module):
    """Maxout unit: ``k`` affine pieces per output feature, keep the largest.

    ``y_j = max_i (w_{ij}ᵀ x + b_{ij})`` for ``i = 1..k``; generalises ReLU (``k = 2`` with one piece
    at zero) and leaky ReLU, at ``k`` times the parameters of a Dense layer.

    Attributes:
      features: output features.
      num_pieces: ``k`` (≥ 2).

    Call: ``x_BxD -> y_BxF``.

    >>> import jax
    >>> m = Maxout(features=4, num_pieces=3)
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((2, 5)))
    >>> v["params"]["pieces"]["kernel"].shape, m.apply(v, jnp.ones((2, 5))).shape
    ((5, 12), (2, 4))
    """

    features: int
    num_pieces: int = 2
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.num_pieces < 1 or self.features < 1:
            raise ConfigError(f"Maxout needs features ≥ 1 and num_pieces ≥ 1, got {self.features}, {self.num_pieces}")
        z = nn.Dense(self.features * self.num_pieces, kernel_init=self.kernel_init, name="pieces")(x)
        z = z.reshape(x.shape[:-1] + (self.features, self.num_pieces))
        return jnp.max(z, axis=-1)


class Activation(nn.Module):
    """An activation by name as a module, so configs can also name parametric ones (``prelu``, ``maxout``).

    Attributes:
      name_or_fn: a key of :data:`ACTIVATIONS`, a name in :data:`PARAMETRIC_ACTIVATIONS`, or a callable.

    ``"maxout"`` is ``Maxout(features=D, num_pieces=2)`` on the last axis ``D`` (shape-preserving).

    >>> import jax
    >>> m = Activation("prelu")
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((1, 2)))
    >>> list(v["params"]["prelu"])
    ['alpha']
    >>> Activation("maxout").init(jax.random.PRNGKey(0), jnp.ones((1, 3)))["params"]["maxout"]["pieces"]["kernel"].shape
    (3, 6)
    """

    name_or_fn: str | Callable = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if isinstance(self.name_or_fn, str) and self.name_or_fn == "prelu":
            return PReLU(name="prelu")(x)
        if isinstance(self.name_or_fn, str) and self.name_or_fn == "maxout":
            return Maxout(features=x.shape[-1], num_pieces=2, name="maxout")(x)
        return get_activation(self.name_or_fn)(x)


def check_activation(name: str | Callable) -> None:
    """Raise a :class:`ConfigError` listing valid names unless ``name`` is usable by :class:`Activation`."""
    if callable(name) or name in ACTIVATIONS or name in PARAMETRIC_ACTIVATIONS:
        return
    raise unknown_name("activation", name, list(ACTIVATIONS) + list(PARAMETRIC_ACTIVATIONS))

