"""Host copies of (possibly multi-process) arrays: the one helper every layer uses.

With one process a host copy is ``jax.device_get``. With several, an array whose shards live on
other processes is all-gathered, so every process gets the same numpy values (every process must
then call these functions together).

Also the XLA compile options dlcore uses on the CPU backend (:func:`jit_once`,
:func:`train_compiler_options`).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from dlcore.errors import ConfigError


def _one(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
        from jax.experimental import multihost_utils  # only multi-process runs need it

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def to_host(tree) -> Any:
    """Numpy copies of a pytree of arrays, the same on every process.

    >>> import jax.numpy as jnp
    >>> to_host({"a": jnp.arange(3)})["a"].tolist()
    [0, 1, 2]
    """
    if jax.process_count() == 1:
        return jax.device_get(tree)
    return jax.tree.map(_one, tree)


def host_step(state, error=ConfigError) -> int:
    """The common step of a state or a stacked batch of states (``state.step``), as an int.

    Raises ``error`` when the runs of a batch are at different steps.
    """
    steps = np.unique(np.asarray(to_host(state.step)))
    if steps.size != 1:
        raise error(f"the runs of a batch are at different steps {steps.tolist()}; cannot continue them together")
    return int(steps[0])


# XLA:CPU compiles with LLVM at -O3 by default; dlcore asks for less where it costs nothing
# (benchmarks/seed_sweep.py --compile-levels measures both; docs/scaling.md#compile-time-on-cpu).
# Programs that run once per run (initialisers, data splits) at -O1: an MLP's init compiles in 0.5 s
# instead of 1.6 s; their ops are element-wise or integer (random bits, sorts), so the bits do not
# change (tests/test_host.py). The training loop's programs at -O2: the MLP sweep's chunk compiles in
# 0.93 s instead of 1.40 s and runs as fast; its results differ from -O3 in the last bits (as any
# change of compiler does), and fit, sweeps and studies all compile this way.
ONCE_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}
TRAIN_COMPILER_OPTIONS = {"xla_backend_optimization_level": 2}
_LEVEL_FLAG = "--xla_backend_optimization_level"


def _on_cpu(options: dict) -> dict | None:
    """``options`` on the CPU backend; ``None`` (XLA's defaults) on accelerators or when ``XLA_FLAGS``
    sets the optimization level itself (the user's choice wins)."""
    if _LEVEL_FLAG in os.environ.get("XLA_FLAGS", "") or jax.default_backend() != "cpu":
        return None
    return dict(options)


def once_compiler_options() -> dict | None:
    """XLA options for a program that runs once (:data:`ONCE_COMPILER_OPTIONS` on CPU)."""
    return _on_cpu(ONCE_COMPILER_OPTIONS)


def train_compiler_options() -> dict | None:
    """XLA options for the training loop's programs (:data:`TRAIN_COMPILER_OPTIONS` on CPU)."""
    return _on_cpu(TRAIN_COMPILER_OPTIONS)


def jit_once(fn, **jit_kwargs):
    """``jax.jit(fn, **jit_kwargs)`` for a program that runs once (compiled fast; same results).

    Call it at top level only: JAX refuses compiler options on a jit nested in another trace
    (``jax.eval_shape``, ``jax.jit``), so functions that may be traced use plain ``jax.jit``.

    >>> import jax.numpy as jnp
    >>> perm = jit_once(lambda k: jax.random.permutation(k, 5))
    >>> sorted(perm(jax.random.PRNGKey(0)).tolist())
    [0, 1, 2, 3, 4]
    """
    return jax.jit(fn, compiler_options=once_compiler_options(), **jit_kwargs)
