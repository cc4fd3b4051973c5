"""The ``dlcore`` command line: ``dlcore run EXPERIMENT [--seeds N] [--config.key=value ...]``.

This module imports nothing heavy at the top: it first sets ``XLA_FLAGS`` so that JAX sees one host
device per core on CPU (seed sweeps are split across them) and so that GPU kernels are
deterministic (the same command twice gives the same bits), then imports JAX.
"""

from __future__ import annotations

import os
import sys
import time

STARTED = time.perf_counter()  # start-up is measured from here (the interpreter's own ~50 ms before it)

HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"
GPU_DETERMINISM_FLAG = "--xla_gpu_deterministic_ops"


def configure_determinism() -> None:
    """Ask XLA for run-to-run deterministic GPU kernels (``--xla_gpu_deterministic_ops=true``).

    Without it the same ``dlcore run`` on one H200 gave different parameter hashes twice in a row
    (atomics in scatter-adds, autotuned kernel choices); with it they are equal. It costs little
    on these small models (``docs/scaling.md`` has the measurement) and nothing on CPU/TPU. Must
    run before JAX starts; a value already in ``XLA_FLAGS`` wins, and
    ``DLCORE_GPU_DETERMINISTIC=0`` leaves the flag out. The manifest records ``XLA_FLAGS``.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if GPU_DETERMINISM_FLAG in flags or "jax" in sys.modules:
        return
    if os.environ.get("DLCORE_GPU_DETERMINISTIC", "1").strip().lower() in ("0", "false", "no", "off"):
        return
    os.environ["XLA_FLAGS"] = f"{flags} {GPU_DETERMINISM_FLAG}=true".strip()


def configure_host_devices(count: int | None = None) -> None:
    """Expose ``count`` (default: CPU cores, or ``$DLCORE_HOST_DEVICES``) host devices to XLA.

    Must run before JAX is imported; an existing ``--xla_force_host_platform_device_count`` in
    ``XLA_FLAGS`` wins. Only the CPU platform is affected (GPU/TPU device counts do not change).
    """
    raw = os.environ.get("DLCORE_HOST_DEVICES", "").strip()
    env_count = host_devices_from_env(raw) if raw else None  # a bad value is refused even when unused
    flags = os.environ.get("XLA_FLAGS", "")
    if HOST_DEVICES_FLAG in flags or "jax" in sys.modules:
        return
    if count is None:
        count = env_count or (os.cpu_count() or 1)
    if count > 1:
        os.environ["XLA_FLAGS"] = f"{flags} {HOST_DEVICES_FLAG}={count}".strip()


MAX_HOST_DEVICES = 1024


def host_devices_from_env(raw: str) -> int:
    """``$DLCORE_HOST_DEVICES`` as a count in ``[1, 1024]``, or a :class:`dlcore.errors.ConfigError`.

    >>> host_devices_from_env("4")
    4
    """
    from dlcore.errors import ConfigError

    try:
        count = int(raw)
    except ValueError:
        count = None
    if count is None or not 1 <= count <= MAX_HOST_DEVICES:
        raise ConfigError(f"DLCORE_HOST_DEVICES={raw!r} is not a device count; set it to an integer from 1 to "
                          f"{MAX_HOST_DEVICES} (e.g. the number of CPU cores, {os.cpu_count() or 1}) or unset it")
    return count


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dlcore`` console script; returns the exit code."""
    from dlcore.errors import DlcoreError

    try:
        configure_host_devices()
        configure_determinism()
    except DlcoreError as e:
        print(f"dlcore: error: {e}", file=sys.stderr)
        return 2
    from dlcore.cli._main import run_cli

    return run_cli(sys.argv[1:] if argv is None else list(argv))


def entry() -> None:
    """The ``dlcore`` console script: :func:`main`, then a quick exit.

    After every output is written and closed (checkpoints waited for, event files and plots closed),
    the interpreter's teardown — JAX's backend clean-up and garbage-collecting thousands of modules —
    took ~0.4 s of each command; ``os._exit`` skips it once stdout and stderr are flushed. A
    multi-process run (``jax.distributed`` shuts down at exit), a wandb run (uploads at exit), an
    exception or ``DLCORE_FAST_EXIT=0`` exits the normal way.
    """
    rc = main()
    if "--distributed" in sys.argv or "wandb" in sys.modules or os.environ.get("DLCORE_FAST_EXIT", "1").strip() == "0":
        sys.exit(rc)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    entry()
