"""dlcore: the introductory deep-learning curriculum as pure, keyed JAX/Flax building blocks.

Subpackages are imported lazily so that ``import dlcore`` (and the ``dlcore`` command line, which
must set ``XLA_FLAGS`` before JAX starts) stays cheap::

    >>> import dlcore
    >>> dlcore.random.root_key(0).shape
    (2,)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "checkpoint",
    "classic",
    "cli",
    "data",
    "diagnostics",
    "errors",
    "generative",
    "losses",
    "manifest",
    "metrics",
    "models",
    "nn",
    "optim",
    "parallel",
    "plots",
    "random",
    "rl",
    "stats",
    "sweep",
    "tasks",
    "tracking",
    "train",
)


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f"dlcore.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'dlcore' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
