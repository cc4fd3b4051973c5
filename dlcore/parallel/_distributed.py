"""Multi-host runs on JAX's own runtime: start-up, per-process data loading, host-side results.

Every process runs the same program (SPMD). :func:`initialize` connects them (before any JAX
computation); after it ``jax.devices()`` lists the devices of *all* processes and a mesh over them
spans hosts. Each process then

* loads only the rows of the training set that its own devices hold (:func:`shard_rows`,
  :func:`distribute_dataset`) — the sampler still draws *global* example indices from the data key,
  so the data order is the same as on one host;
* writes files only if :func:`is_main_process` (process 0); checkpoints with orbax are collective
  (every process calls save; orbax coordinates the writes);
* reads results with :func:`to_host` (gathers arrays whose shards live on other hosts).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable, NamedTuple

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from dlcore.errors import ConfigError, DlcoreError
from dlcore.host import to_host  # noqa: F401  (re-exported by dlcore.parallel)

logger = logging.getLogger(__name__)

# Environment variables that identify a cluster JAX can configure itself on.
_CLUSTER_ENV = {
    "slurm": ("SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_PROCID"),
    "ompi": ("OMPI_MCA_orte_hnp_uri",),
    "kubernetes": ("KUBERNETES_SERVICE_HOST", "JOB_COMPLETION_INDEX"),
    "tpu": ("TPU_WORKER_HOSTNAMES",),
}


class DistributedInfo(NamedTuple):
    """What :func:`initialize` set up."""

    process_id: int
    num_processes: int
    coordinator_address: str | None
    cluster: str  # "explicit", "slurm", "ompi", "kubernetes", "tpu" or "single"


def detect_cluster(environ=None) -> str | None:
    """The cluster manager found in the environment (``slurm``, ``ompi``, ``kubernetes``, ``tpu``), or None.

    >>> detect_cluster({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "2", "SLURM_PROCID": "0"})
    'slurm'
    >>> detect_cluster({}) is None
    True
    """
    env = os.environ if environ is None else environ
    for name, keys in _CLUSTER_ENV.items():
        if all(k in env for k in keys):
            return name
    return None


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"coordinator address {address!r} must be HOST:PORT, e.g. 10.0.0.1:1234")
    return host.strip("[]"), int(port)


def wait_for_coordinator(address: str, timeout_s: float) -> None:
    """Poll ``HOST:PORT`` with TCP connects until it accepts one, or raise after ``timeout_s``.

    JAX's own client aborts the whole process (an uncatchable ``DEADLINE_EXCEEDED`` check failure)
    when the coordinator never answers; probing first turns that into a clear Python error.

    Raises:
      DlcoreError: nothing accepted a connection at ``address`` within ``timeout_s`` seconds.
    """
    host, port = _split_address(address)
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(2.0, max(timeout_s, 0.1))):
                return
        except OSError as e:  # refused (not started yet), unreachable, unknown host
            last = e
        if time.monotonic() >= deadline:
            raise DlcoreError(
                f"cannot reach the coordinator at {address} within {timeout_s:g} s ({last}); start process 0 "
                "first (it hosts the coordinator), check the address/port and the firewall, or raise timeout_s"
            )
        time.sleep(0.2)


def _port_free(address: str) -> None:
    _, port = _split_address(address)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError as e:
            raise DlcoreError(
                f"process 0 cannot host the coordinator on port {port} ({e.strerror or e}); another program "
                "(or an earlier run) holds it: choose another port in the coordinator address"
            ) from None


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout_s: float = 120.0,
    local_device_ids=None,
    cpu_collectives: str = "gloo",
) -> DistributedInfo:
    """Connect this process to the others (wraps ``jax.distributed.initialize``); call before any JAX work.

    With no arguments the cluster is auto-detected (SLURM, Open MPI, Kubernetes with the
    ``kubernetes`` package, Cloud TPU); otherwise give all three of address, count and id. A single
    process with no cluster is a no-op. On CPU the cross-process collectives use ``gloo``.

    Args:
      coordinator_address: ``HOST:PORT`` of process 0 (it starts the coordinator service there).
      num_processes: number of processes.
      process_id: this process's id in ``0 .. num_processes - 1``.
      timeout_s: give up (with an error, not a hang) when the others do not connect in this time.
        Processes other than 0 probe the coordinator first and raise :class:`DlcoreError`; process 0
        cannot be probed — if its peers never arrive JAX terminates it after ``timeout_s`` with
        ``DEADLINE_EXCEEDED``.
      local_device_ids: restrict this process to these local accelerators (one GPU per process).
      cpu_collectives: ``"gloo"`` (default) or ``"mpi"`` for CPU-only multi-process runs.
    Returns:
      :class:`DistributedInfo`.
    Raises:
      ConfigError: incomplete or inconsistent arguments, no cluster found.
      DlcoreError: JAX already started, or the coordinator cannot be reached.

    >>> initialize("10.0.0.1:1234", num_processes=2, process_id=1)   # doctest: +SKIP
    """
    explicit = (coordinator_address, num_processes, process_id)
    if any(v is not None for v in explicit) and any(v is None for v in explicit):
        raise ConfigError(
            "give all of coordinator_address, num_processes and process_id (--coordinator, --num-processes, "
            "--process-id), or none of them to auto-detect the cluster"
        )
    if num_processes is not None:
        if not isinstance(num_processes, int) or num_processes < 1:
            raise ConfigError(f"num_processes must be a positive integer, got {num_processes!r}")
        if not isinstance(process_id, int) or not 0 <= process_id < num_processes:
            raise ConfigError(f"process_id must be in 0..{num_processes - 1}, got {process_id!r}")
        _split_address(coordinator_address)
    if timeout_s <= 0:
        raise ConfigError(f"timeout_s must be positive, got {timeout_s}")
    cluster = "explicit" if coordinator_address is not None else detect_cluster()
    if cluster is None:
        if os.environ.get("JAX_COORDINATOR_ADDRESS"):
            raise ConfigError("JAX_COORDINATOR_ADDRESS is set but not the process count and id; pass them too")
        logger.info("no cluster detected: running as a single process")
        return DistributedInfo(0, 1, None, "single")
    if jax.distributed.is_initialized():
        return DistributedInfo(jax.process_index(), jax.process_count(), coordinator_address, cluster)
    from jax._src import xla_bridge  # the public initialize gives the same check only as a RuntimeError

    if xla_bridge.backends_are_initialized():
        raise DlcoreError(
            "JAX has already started (a computation or jax.devices() ran before dlcore.parallel.initialize); "
            "call initialize first thing in the program"
        )
    if num_processes is not None and num_processes > 1:
        if process_id == 0:
            _port_free(coordinator_address)
        else:
            wait_for_coordinator(coordinator_address, timeout_s)
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    logger.info("connecting process %s of %s to %s (cluster: %s, timeout %s s)", process_id, num_processes,
                coordinator_address, cluster, timeout_s)
    try:
        jax.distributed.initialize(
            coordinator_address, num_processes, process_id, local_device_ids=local_device_ids,
            initialization_timeout=max(1, int(timeout_s)),
        )
    except (RuntimeError, ValueError) as e:
        raise DlcoreError(f"jax.distributed.initialize failed: {e}") from e
    return DistributedInfo(jax.process_index(), jax.process_count(), coordinator_address, cluster)


def is_main_process() -> bool:
    """True on process 0: the only process that writes run directories, logs and plots."""
    return jax.process_index() == 0


_barrier_count: dict[str, int] = {}


def barrier(name: str, timeout_s: float = 600.0) -> None:
    """Wait until every process reaches ``barrier(name)`` (no-op with one process).

    Every process must call it with the same names in the same order. It waits on the
    coordinator's key-value service, not on a device collective, so process 0 may spend minutes
    (writing plots, a checkpoint) while the others wait.

    Raises:
      DlcoreError: the others did not arrive within ``timeout_s`` (one died or took another path).

    >>> barrier("outputs-written")   # one process: returns at once
    """
    if jax.process_count() == 1:
        return
    n = _barrier_count[name] = _barrier_count.get(name, 0) + 1
    from jax._src import distributed

    client = distributed.global_state.client
    try:
        if client is None:  # not started by jax.distributed (cannot happen with initialize)
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"dlcore:{name}:{n}")
        else:
            client.wait_at_barrier(f"dlcore:{name}:{n}", int(timeout_s * 1000))
    except Exception as e:  # noqa: BLE001 - JaxRuntimeError (DEADLINE_EXCEEDED, a peer gone)
        raise DlcoreError(
            f"process {jax.process_index()} waited {timeout_s:g} s at {name!r} for the other processes ({e}); "
            "one of them failed or was killed — see its log, then resume all processes with --resume"
        ) from None


def put_global(tree, sharding: NamedSharding):
    """Place host-identical values (every process holds the whole value) with ``sharding``.

    One process: ``jax.device_put``. Several: each process fills only its own devices' shards
    (``jax.make_array_from_callback``), so nothing crosses hosts.
    """
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def one(x):
        if isinstance(x, jax.Array) and x.sharding == sharding:
            return x
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx], dtype=host.dtype)

    return jax.tree.map(one, tree)


def shard_rows(source, sharding: NamedSharding, num_rows: int | None = None) -> jax.Array:
    """A global array split by rows where each process reads only the rows its devices hold.

    Args:
      source: an array-like indexable by row slices (a ``np.memmap``, an ``h5py`` dataset, a numpy
        array) or a function ``rows(start, stop) -> np.ndarray``; only the slices this process's
        devices need are read.
      sharding: e.g. ``NamedSharding(mesh, P("data"))`` (rows over the data axis).
      num_rows: number of rows (required when ``source`` is a function).
    Returns:
      ``jax.Array`` of the global shape.
    Raises:
      ConfigError: the row count is not divisible by the number of row shards.
    """
    if callable(source) and not hasattr(source, "shape"):
        if num_rows is None:
            raise ConfigError("shard_rows needs num_rows when the source is a function")
        probe = np.asarray(source(0, 1))
        shape = (num_rows,) + probe.shape[1:]

        def read(start, stop):
            return np.asarray(source(start, stop))
    else:
        shape = tuple(source.shape)

        def read(start, stop):
            return np.asarray(source[start:stop])

    spec = sharding.spec
    axis = spec[0] if len(spec) else None
    parts = 1
    for name in (axis if isinstance(axis, tuple) else (axis,)):
        if name is not None:
            parts *= sharding.mesh.shape[name]
    if shape[0] % parts:
        raise ConfigError(
            f"{shape[0]} rows cannot be split evenly over {parts} devices; use a row count divisible by "
            f"{parts} (e.g. drop the last {shape[0] % parts} examples) or fewer data devices"
        )

    def cb(index):
        rows = index[0]
        start, stop = rows.start or 0, shape[0] if rows.stop is None else rows.stop
        return read(start, stop)[(slice(None),) + tuple(index[1:])]

    return jax.make_array_from_callback(shape, sharding, cb)


def distribute_dataset(data, mesh, *, shard_train: bool = False):
    """Place a :class:`dlcore.data.Dataset` on ``mesh``: evaluation splits replicated, the training
    split replicated too or (``shard_train``) split by rows over the data axis.

    With ``shard_train`` each process materializes only its rows of ``x_train``/``y_train``; each
    step's gather of the batch then fetches rows across devices (an all-reduce of ``B`` rows), and
    the data order is unchanged because indices are global.
    """
    rep = NamedSharding(mesh, P())
    rows = NamedSharding(mesh, P("data"))
    out = {}
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        value = getattr(data, name)
        if isinstance(value, jax.Array) and isinstance(value.sharding, NamedSharding) and value.sharding.mesh == mesh:
            out[name] = value  # already placed on this mesh (e.g. training rows split earlier)
        elif shard_train and name in ("x_train", "y_train"):
            out[name] = shard_rows(value if not isinstance(value, jax.Array) else np.asarray(value), rows)
        else:
            out[name] = put_global(value, rep)
    return data.replace(**out)


def main_process_only(fn: Callable) -> Callable:
    """Decorate a host function (writer, logger) so it runs on process 0 only and returns None elsewhere."""

    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs) if is_main_process() else None

    wrapper.__name__ = getattr(fn, "__name__", "wrapper")
    wrapper.__doc__ = fn.__doc__
    return wrapper


def broadcast_string(value: str | None, max_bytes: int = 4096) -> str:
    """Process 0's ``value`` on every process (e.g. the run directory name it chose); every process
    must call this together. With one process it returns ``value``."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    buf = np.zeros(max_bytes, np.uint8)
    if is_main_process():
        raw = (value or "").encode("utf-8")
        if len(raw) > max_bytes:
            raise ConfigError(f"string of {len(raw)} bytes is too long to broadcast (max {max_bytes})")
        buf[: len(raw)] = np.frombuffer(raw, np.uint8)
    out = np.asarray(multihost_utils.broadcast_one_to_all(buf))
    return bytes(out[out != 0].tobytes()).decode("utf-8")
