"""Weight initializers by name (thin layer over ``flax.linen.initializers``), per-layer selection.

Lecture 7's experiments: a 10-layer, 500-unit tanh network with ``N(0, 0.01²)`` weights has
activations that shrink to zero (vanishing gradients); with ``N(0, 1)`` they saturate at ±1;
Xavier ``Var(w) = 1/n`` keeps them in range for tanh; ReLU halves the variance, so Kaiming uses
``Var(w) = 2/n``. Biases of ReLU units may start slightly positive (0.01) so they stay active.

Names and variances (``n_in``/``n_out``: fan-in/fan-out; for conv kernels ``[..., I, O]`` the
fans include the receptive field, as in flax):

========================  ==================================  =============================
name                      distribution                        variance
========================  ==================================  =============================
``zeros``                 0                                   0
``ones`` / ``constant``   ``value``                           0
``normal``                ``N(0, stddev²)``                   ``stddev²``
``uniform``               ``U(-scale, scale)``                ``scale²/3``
``lecun_normal``          the lectures' "Xavier" ``1/n``      ``1/n_in``
``xavier_normal``         Glorot & Bengio (2010)              ``2/(n_in + n_out)``
``xavier_uniform``        ``U(±√(6/(n_in+n_out)))``           ``2/(n_in + n_out)``
``kaiming_normal``        He et al. (2015), ``mode`` fan      ``2/n_mode``
``kaiming_uniform``       ``U(±√(6/n_mode))``                 ``2/n_mode``
========================  ==================================  =============================

``glorot_*`` and ``he_*`` are aliases.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.errors import ConfigError, unknown_name
from dlcore.nn._transfer import path_str

Initializer = Callable[..., jax.Array]
InitSpec = str | tuple | Initializer
"""An initializer: a name, ``(name, {kwargs})``, or a flax initializer ``f(key, shape, dtype)``."""

RELU_BIAS = 0.01  # the lectures' "slightly positive bias" for ReLU units


def _vs(scale: float, default_mode: str, default_distribution: str):
    def make(mode: str = default_mode, distribution: str = default_distribution):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ConfigError(f"initializer mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
        return nn.initializers.variance_scaling(scale, mode, distribution)

    return make


_FACTORIES: dict[str, Callable[..., Initializer]] = {
    "zeros": lambda **_: nn.initializers.zeros,
    "ones": lambda **_: nn.initializers.ones,
    "constant": lambda value=0.0, **_: nn.initializers.constant(value),
    "relu_bias": lambda value=RELU_BIAS, **_: nn.initializers.constant(value),
    "normal": lambda stddev=0.01, **_: nn.initializers.normal(stddev),
    "uniform": lambda scale=0.01, **_: (
        lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -scale, scale)
    ),
    # Untruncated normals, as in the papers (flax's glorot_normal/he_normal truncate and rescale;
    # the variance is the same either way). `distribution="truncated_normal"` selects flax's form.
    "lecun_normal": _vs(1.0, "fan_in", "normal"),
    "lecun_uniform": _vs(1.0, "fan_in", "uniform"),
    "xavier_normal": _vs(1.0, "fan_avg", "normal"),
    "xavier_uniform": _vs(1.0, "fan_avg", "uniform"),
    "kaiming_normal": _vs(2.0, "fan_in", "normal"),
    "kaiming_uniform": _vs(2.0, "fan_in", "uniform"),
}
_ALIASES = {
    "glorot_normal": "xavier_normal",
    "glorot_uniform": "xavier_uniform",
    "he_normal": "kaiming_normal",
    "he_uniform": "kaiming_uniform",
}
_KWARGS = {
    "constant": {"value"},
    "relu_bias": {"value"},
    "normal": {"stddev"},
    "uniform": {"scale"},
    **{k: {"mode", "distribution"} for k in ("lecun_normal", "lecun_uniform", "xavier_normal", "xavier_uniform",
                                              "kaiming_normal", "kaiming_uniform")},
}
INITIALIZERS = tuple(_FACTORIES) + tuple(_ALIASES)
"""Valid initializer names."""


def get_initializer(spec: InitSpec, **kwargs) -> Initializer:
    """Build a flax initializer ``init(key, shape, dtype) -> array`` from a name.

    Args:
      spec: a name in :data:`INITIALIZERS`, ``(name, {kwargs})``, or an initializer (passes through).
      **kwargs: ``stddev`` (normal), ``value`` (constant), ``scale`` (uniform), ``mode``
        (``"fan_in"``/``"fan_out"``/``"fan_avg"``) and ``distribution`` for the variance-scaling ones.
    Returns:
      a flax initializer.

    >>> import jax
    >>> w = get_initializer("normal", stddev=1.0)(jax.random.PRNGKey(0), (500, 500))
    >>> round(float(w.std()), 1)
    1.0
    >>> get_initializer("kaimin_normal")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    dlcore.errors.ConfigError: unknown initializer 'kaimin_normal'; valid choices: ...
    """
    if isinstance(spec, tuple):
        if len(spec) != 2 or not isinstance(spec[1], Mapping):
            raise ConfigError(f"an initializer spec tuple must be (name, {{kwargs}}), got {spec!r}")
        return get_initializer(spec[0], **dict(spec[1]), **kwargs)
    if callable(spec):
        return spec
    name = _ALIASES.get(spec, spec)
    if name not in _FACTORIES:
        raise unknown_name("initializer", spec, INITIALIZERS)
    bad = set(kwargs) - _KWARGS.get(name, set())
    if bad:
        raise ConfigError(
            f"initializer {spec!r} takes no argument(s) {sorted(bad)}; it accepts {sorted(_KWARGS.get(name, set()))}"
        )
    return _FACTORIES[name](**kwargs)


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a kernel ``[..., in, out]`` (receptive field counted, as flax does).

    >>> fans((3, 3, 16, 32))
    (144, 288)
    """
    if len(shape) < 2:
        raise ConfigError(f"fans need a kernel of rank ≥ 2, got shape {shape}")
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def expected_variance(spec: str | tuple, shape: tuple[int, ...], **kwargs) -> float:
    """The variance an initializer is designed to have for a kernel of ``shape`` (the formula).

    >>> expected_variance("kaiming_normal", (500, 250))
    0.004
    >>> expected_variance(("kaiming_normal", {"mode": "fan_out"}), (500, 250))
    0.008
    """
    if isinstance(spec, tuple):
        return expected_variance(spec[0], shape, **dict(spec[1]), **kwargs)
    name = _ALIASES.get(spec, spec)
    if name not in _FACTORIES:
        raise unknown_name("initializer", spec, INITIALIZERS)
    if name in ("zeros", "ones", "constant", "relu_bias"):
        return 0.0
    if name == "normal":
        return float(kwargs.get("stddev", 0.01)) ** 2
    if name == "uniform":
        return float(kwargs.get("scale", 0.01)) ** 2 / 3.0
    fan_in, fan_out = fans(shape)
    default_mode = {"lecun": "fan_in", "xavier": "fan_avg", "kaiming": "fan_in"}[name.split("_")[0]]
    mode = kwargs.get("mode", default_mode)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    gain = 2.0 if name.startswith("kaiming") else 1.0
    return gain / n


def reinitialize(params, key: jax.Array, rules: Mapping[str, InitSpec]):
    """Re-draw chosen parameters by path: per-layer initializers for any model (e.g. the MLP).

    Each leaf's path (``"dense_0/kernel"``) is matched against the ``rules``' regular expressions
    (searched, first match wins); matched leaves are drawn with that initializer and the key
    ``fold_in(key, i)`` (``i``: the leaf's index in flattening order, so a leaf's draw does not
    depend on which other leaves are re-drawn). Unmatched leaves are kept.

    Args:
      params: a params tree.
      key: a PRNG key (e.g. ``dlcore.random.key(seed, "params", 0)``).
      rules: ``{regex: spec}``, e.g. ``{"kernel$": ("normal", {"stddev": 0.01}), "bias$": "relu_bias"}``.
    Returns:
      a tree like ``params``.

    >>> import jax
    >>> p = {"dense_0": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)}}
    >>> q = reinitialize(p, jax.random.PRNGKey(0), {"bias$": "zeros"})
    >>> q["dense_0"]["bias"].tolist(), float(q["dense_0"]["kernel"][0, 0])
    ([0.0, 0.0], 1.0)
    """
    compiled = []
    for pattern, spec in rules.items():
        try:
            compiled.append((re.compile(pattern), get_initializer(spec)))
        except re.error as e:
            raise ConfigError(f"initializer rule {pattern!r} is not a valid regex: {e}") from None
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    used = [False] * len(compiled)
    out = []
    for i, (path, leaf) in enumerate(leaves):
        p = path_str(path)
        for j, (rx, init) in enumerate(compiled):
            if rx.search(p):
                used[j] = True
                leaf = init(jax.random.fold_in(key, i), leaf.shape, leaf.dtype)
                break
        out.append(leaf)
    unused = [pat for (pat, _), u in zip(rules.items(), used) if not u]
    if unused:
        raise ConfigError(f"initializer rules {unused} match no parameter; paths are e.g. "
                          f"{[path_str(p) for p, _ in leaves[:8]]}")
    return jax.tree_util.tree_unflatten(treedef, out)


def init_kwargs(kernel_init: InitSpec | None = None, bias_init: InitSpec | None = None) -> dict[str, Any]:
    """``{"kernel_init": ..., "bias_init": ...}`` for a flax layer, leaving flax's default for ``None``.

    >>> sorted(init_kwargs("kaiming_normal"))
    ['kernel_init']
    """
    kw = {}
    if kernel_init is not None:
        kw["kernel_init"] = get_initializer(kernel_init)
    if bias_init is not None:
        kw["bias_init"] = get_initializer(bias_init)
    return kw
