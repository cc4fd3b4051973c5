"""Host copies of (possibly multi-process) arrays: the one helper every layer uses.

With one process a host copy is ``jax.device_get``. With several, an array whose shards live on
other processes is all-gathered, so every process gets the same numpy values (every process must
then call these functions together).
"""

from __future__ import annotations

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


# LLVM's -O1 for programs that run once per run (initialisers, data splits): on the 2-core CPU it
# compiles an MLP's init in 0.5 s instead of 1.6 s (XLA's default -O3), and such a program runs for
# microseconds. Their ops are element-wise or integer (random bits, sorts), so the level changes no
# result: tests/test_host.py checks the bits against the default level.
ONCE_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}
_LEVEL_FLAG = "--xla_backend_optimization_level"


def once_compiler_options() -> dict | None:
    """XLA options for a program that runs once: :data:`ONCE_COMPILER_OPTIONS` on CPU, ``None``
    (XLA's defaults) on accelerators or when ``XLA_FLAGS`` sets the optimization level itself."""
    import os

    if _LEVEL_FLAG in os.environ.get("XLA_FLAGS", "") or jax.default_backend() != "cpu":
        return None
    return dict(ONCE_COMPILER_OPTIONS)


# The training loop's programs on CPU: LLVM's -O2 compiled the MLP sweep's chunk in 1.08 s instead
# of 1.44 s (-O3) and ran it as fast (benchmarks/seed_sweep.py --compile-levels). Results differ from
# -O3 in the last bits (as any change of compiler does); fit, sweeps and studies all compile this way.
TRAIN_COMPILER_OPTIONS = {"xla_backend_optimization_level": 2}


def train_compiler_options() -> dict | None:
    """XLA options for the training loop's programs: :data:`TRAIN_COMPILER_OPTIONS` on CPU, ``None``
    on accelerators or when ``XLA_FLAGS`` sets the optimization level itself."""
    import os

    if _LEVEL_FLAG in os.environ.get("XLA_FLAGS", "") or jax.default_backend() != "cpu":
        return None
    return dict(TRAIN_COMPILER_OPTIONS)


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
