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
