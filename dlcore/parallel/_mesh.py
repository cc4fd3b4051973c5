"""The 2-D device mesh (``seed``, ``data``) and where a sweep's seeds and batch shards go.

A sweep of ``S`` seeds with a per-step batch of ``B`` examples runs on a mesh of shape
``(seed, data)``: the stacked train states are split over ``seed`` (each device trains
``S / seed`` runs, no communication), each run's batch is split over ``data`` (its gradient is
all-reduced over ``data`` every step). Placement rules (:func:`plan_placement`):

1. Seeds first: ``seed`` = the largest divisor of ``S`` that fits on the devices. Independent runs
   need no collectives; on CPU this is what can use the other cores. On the CPU platform each
   host device must get at least :data:`CPU_MIN_SEEDS_PER_DEVICE` runs, else the seeds stay on one
   device: host devices synchronise every step, and small per-device batches of runs were slower
   split than not (measured on 2 cores, docs/scaling.md: 2 seeds 0.76x, 4 seeds 0.71x).
2. Data parallelism over the devices that remain (all of them when ``S = 1``), as the largest
   size that divides ``B`` — on GPU/TPU. On the CPU platform host "devices" share the same cores
   and an all-reduce per step costs more than it saves (measured ~3.5x *slower* on 2 cores), so
   the data axis is used there only when asked for (``data_devices``).
3. ``seed_devices`` / ``data_devices`` override either axis; bad combinations raise
   :class:`~dlcore.errors.ConfigError`.

The axes are ``AxisType.Auto``: with ``jax.make_mesh``'s default *Explicit* axes, a jitted step with
``in_shardings=P('data')`` and a host index array compiled with no all-reduce (every device silently
trained on the whole batch — measured here), so meshes are built explicitly.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from dlcore.errors import ConfigError

SEED_AXIS = "seed"
"""Mesh axis over independent runs (stacked train states)."""
DATA_AXIS = "data"
"""Mesh axis over the examples of each run's batch (gradients all-reduced over it)."""
CPU_MIN_SEEDS_PER_DEVICE = 8
"""Fewest runs per host device for the default seed split on CPU (rule 1; measured, docs/scaling.md)."""


class Placement(NamedTuple):
    """Devices along each mesh axis: ``seed`` x ``data`` devices in all.

    >>> Placement(seed=2, data=4).num_devices
    8
    """

    seed: int
    data: int

    @property
    def num_devices(self) -> int:
        return self.seed * self.data


def _largest_divisor(n: int, at_most: int) -> int:
    return max(k for k in range(1, max(1, min(n, at_most)) + 1) if n % k == 0)


def _check_positive(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ConfigError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def plan_placement(
    num_seeds: int,
    num_devices: int,
    batch_size: int | None = None,
    *,
    seed_devices: int | None = None,
    data_devices: int | None = None,
    platform: str | None = None,
    num_processes: int = 1,
) -> Placement:
    """Choose how many devices go to the ``seed`` and ``data`` axes (rules in the module doc).

    Args:
      num_seeds: runs in the sweep ``S``.
      num_devices: devices available ``D``.
      batch_size: examples per step of one run ``B`` (the data axis must divide it); ``None``
        skips that check.
      seed_devices: force the seed-axis size (must divide ``S``).
      data_devices: force the data-axis size (must divide ``B``); ``1`` turns data parallelism off.
      platform: ``"cpu"``, ``"gpu"``, ``"tpu"`` (default: JAX's default backend); on ``"cpu"`` the
        data axis is used only when ``data_devices`` asks for it.
      num_processes: processes sharing the ``num_devices`` equally (multi-host). Every process
        gets the same share of the mesh; the ``seed`` axis goes across processes first (seed
        ``P * s``, each process training whole runs with no cross-host collective, and within a
        process the rules above for its ``S / P`` runs). When ``P`` does not divide ``S`` the
        processes that share runs form the data axis (each holds part of every batch; the batch
        size must divide).
    Returns:
      :class:`Placement` with ``seed * data <= num_devices``.
    Raises:
      ConfigError: an override does not divide ``S``/``B`` or asks for more devices than exist.

    >>> plan_placement(8, 8, 128, platform="gpu"), plan_placement(1, 8, 128, platform="gpu")
    (Placement(seed=8, data=1), Placement(seed=1, data=8))
    >>> plan_placement(2, 8, 128, platform="gpu"), plan_placement(1, 8, 128, platform="cpu")
    (Placement(seed=2, data=4), Placement(seed=1, data=1))
    >>> plan_placement(32, 2, 100, platform="cpu"), plan_placement(8, 2, 100, platform="cpu")
    (Placement(seed=2, data=1), Placement(seed=1, data=1))
    >>> plan_placement(2, 4, 50, platform="cpu", num_processes=2), plan_placement(1, 4, 50, platform="cpu", num_processes=2)
    (Placement(seed=2, data=1), Placement(seed=1, data=2))
    """
    if num_processes > 1:
        return _plan_processes(num_seeds, num_devices, batch_size, seed_devices, data_devices, platform,
                               _check_positive("num_processes", num_processes))
    num_seeds = _check_positive("num_seeds", num_seeds)
    num_devices = _check_positive("num_devices", num_devices)
    if batch_size is not None:
        batch_size = _check_positive("batch_size", batch_size)
    platform = platform or jax.default_backend()
    if seed_devices is not None:
        seed_devices = _check_positive("seed_devices", seed_devices)
        if num_seeds % seed_devices:
            ok = [k for k in range(1, min(num_seeds, num_devices) + 1) if num_seeds % k == 0]
            raise ConfigError(
                f"seed_devices={seed_devices} does not divide the {num_seeds} seeds; choose one of {ok}"
            )
    if data_devices is not None:
        data_devices = _check_positive("data_devices", data_devices)
        if batch_size is not None and batch_size % data_devices:
            raise ConfigError(
                f"batch size {batch_size} is not divisible by the data-axis size {data_devices}; use a "
                f"batch size that is a multiple of {data_devices} or data_devices in "
                f"{[k for k in range(1, min(batch_size, num_devices) + 1) if batch_size % k == 0]}"
            )
    fit = num_devices // (data_devices or 1)
    if platform == "cpu":  # host devices share the cores: split only sweeps with enough runs per device
        fit = min(fit, max(1, num_seeds // CPU_MIN_SEEDS_PER_DEVICE))
    seed = seed_devices or _largest_divisor(num_seeds, fit)
    if data_devices is not None:
        data = data_devices
    elif platform == "cpu":
        data = 1  # host devices share the cores: an all-reduce per step costs more than it gains
    else:
        data = _largest_divisor(batch_size, num_devices // seed) if batch_size else max(1, num_devices // seed)
    if seed * data > num_devices:
        raise ConfigError(
            f"the mesh needs {seed} x {data} = {seed * data} devices but only {num_devices} exist; lower "
            "seed_devices/data_devices (on CPU, more host devices come from "
            "XLA_FLAGS=--xla_force_host_platform_device_count=N set before JAX starts)"
        )
    return Placement(seed, data)


def _plan_processes(num_seeds, num_devices, batch_size, seed_devices, data_devices, platform, procs) -> Placement:
    """:func:`plan_placement` over ``procs`` processes of ``num_devices / procs`` devices each."""
    num_seeds = _check_positive("num_seeds", num_seeds)
    if num_devices % procs:
        raise ConfigError(f"{num_devices} devices are not shared equally by {procs} processes; give every process "
                          "the same number of devices")
    local = num_devices // procs
    if seed_devices is not None or data_devices is not None:
        pl = plan_placement(num_seeds, num_devices, batch_size, seed_devices=seed_devices,
                            data_devices=data_devices, platform=platform)
        if pl.num_devices % procs:
            raise ConfigError(f"a {pl.seed} seed x {pl.data} data mesh cannot be shared equally by {procs} "
                              f"processes; choose seed_devices x data_devices as a multiple of {procs}")
        return pl
    group = procs // _largest_divisor_of_both(num_seeds, procs)  # processes that share the same runs
    if group == 1:  # every process trains whole runs: the single-host rules within a process
        pl = plan_placement(num_seeds // procs, local, batch_size, platform=platform)
        return Placement(procs * pl.seed, pl.data)
    if batch_size is not None and batch_size % group:
        raise ConfigError(
            f"{num_seeds} seed{'s' * (num_seeds != 1)} on {procs} processes: {group} processes share each run's "
            f"batch of {batch_size}, which they cannot split evenly; use a number of seeds divisible by {procs} "
            f"or a batch size divisible by {group}"
        )
    inner = 1
    if platform != "cpu" and batch_size is not None:
        inner = _largest_divisor(batch_size // group, local)
    return Placement(procs // group, group * inner)


def _largest_divisor_of_both(a: int, b: int) -> int:
    return max(k for k in range(1, min(a, b) + 1) if a % k == 0 and b % k == 0)


def _by_process(devices: Sequence) -> dict[int, list]:
    out: dict[int, list] = {}
    for d in sorted(devices, key=lambda d: (d.process_index, d.id)):
        out.setdefault(d.process_index, []).append(d)
    return out


def make_mesh(seed: int = 1, data: int | None = None, devices: Sequence | None = None) -> Mesh:
    """A 2-D ``(seed, data)`` mesh with ``AxisType.Auto`` axes over the first ``seed*data`` devices.

    Args:
      seed: devices along the seed axis.
      data: devices along the data axis (default: all devices left, ``len(devices) // seed``).
      devices: devices to use (default: ``jax.devices()``, all processes' devices).
    Returns:
      ``jax.sharding.Mesh`` with axis names ``("seed", "data")``.
    Raises:
      ConfigError: more devices requested than exist.

    >>> mesh = make_mesh(1, 1)
    >>> mesh.axis_names, dict(mesh.shape)
    (('seed', 'data'), {'seed': 1, 'data': 1})
    """
    devices = list(jax.devices() if devices is None else devices)
    seed = _check_positive("seed", seed)
    data = len(devices) // seed if data is None else _check_positive("data", data)
    n = seed * data
    if n == 0 or n > len(devices):
        raise ConfigError(
            f"a ({seed}, {data}) mesh needs {seed * data or seed} devices but only {len(devices)} exist; "
            "request fewer (on CPU, set XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX starts)"
        )
    procs = _by_process(devices)
    if len(procs) > 1:
        # Multi-host: the same number of devices from every process, process-major, so the seed
        # axis (rows) crosses processes first and each process holds whole rows when it can.
        share, left = divmod(n, len(procs))
        if left or share > min(len(v) for v in procs.values()):
            raise ConfigError(
                f"a ({seed}, {data}) mesh cannot take the same number of devices from each of the {len(procs)} "
                f"processes ({', '.join(str(len(v)) for v in procs.values())} devices); use seed x data as a "
                f"multiple of {len(procs)}"
            )
        grid = np.asarray([d for v in procs.values() for d in v[:share]], dtype=object).reshape(seed, data)
        return Mesh(grid, (SEED_AXIS, DATA_AXIS), axis_types=(AxisType.Auto, AxisType.Auto))
    grid = None
    if devices[0].platform != "cpu" and n == len(devices):
        try:  # topology-aware order on TPU/GPU (neighbouring devices along the data axis)
            from jax.experimental import mesh_utils

            grid = mesh_utils.create_device_mesh((seed, data), devices)
        except Exception:  # noqa: BLE001 — any layout is correct, this one is only faster
            grid = None
    if grid is None:
        # Row-major: the data axis varies fastest, so it stays inside a process when it can.
        grid = np.asarray(devices[:n], dtype=object).reshape(seed, data)
    return Mesh(grid, (SEED_AXIS, DATA_AXIS), axis_types=(AxisType.Auto, AxisType.Auto))


def sweep_mesh(
    num_seeds: int,
    batch_size: int | None = None,
    *,
    devices: Sequence | None = None,
    seed_devices: int | None = None,
    data_devices: int | None = None,
) -> Mesh:
    """The mesh :func:`plan_placement` chooses for ``num_seeds`` runs on ``devices``.

    >>> dict(sweep_mesh(4, 32, devices=jax.devices()[:1]).shape)
    {'seed': 1, 'data': 1}
    """
    devices = list(jax.devices() if devices is None else devices)
    pl = plan_placement(
        num_seeds, len(devices), batch_size, seed_devices=seed_devices, data_devices=data_devices,
        platform=devices[0].platform, num_processes=len(_by_process(devices)),
    )
    return make_mesh(pl.seed, pl.data, devices)


def placement_of(mesh: Mesh) -> Placement:
    """The ``(seed, data)`` sizes of a mesh (axes it lacks count as 1)."""
    shape = dict(mesh.shape)
    return Placement(int(shape.get(SEED_AXIS, 1)), int(shape.get(DATA_AXIS, 1)))


def state_sharding(mesh: Mesh, batched: bool = True) -> NamedSharding:
    """Sharding of train states: stacked runs split over ``seed`` (``batched``), replicated over ``data``."""
    return NamedSharding(mesh, P(SEED_AXIS) if batched else P())


def batch_sharding(mesh: Mesh, batched: bool = False) -> NamedSharding:
    """Sharding of batches ``[B, ...]`` (or ``[S, B, ...]`` when ``batched``): examples split over ``data``."""
    return NamedSharding(mesh, P(SEED_AXIS, DATA_AXIS) if batched else P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding that keeps a full copy on every device of ``mesh`` (datasets, single-run states)."""
    return NamedSharding(mesh, P())


def describe(mesh: Mesh) -> str:
    """One line, e.g. ``"2 seed x 4 data on 8 cpu devices (1 process)"``."""
    pl = placement_of(mesh)
    devs = mesh.devices.flat
    first = next(iter(devs))
    procs = len({d.process_index for d in mesh.devices.flat})
    return (f"{pl.seed} seed x {pl.data} data on {pl.num_devices} {first.platform} device"
            f"{'s' * (pl.num_devices != 1)} ({procs} process{'es' * (procs != 1)})")
