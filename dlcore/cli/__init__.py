"""The ``dlcore`` command line: ``dlcore run EXPERIMENT [--seeds N] [--config.key=value ...]``.

This module imports nothing heavy at the top: on CPU it first sets ``XLA_FLAGS`` so that JAX sees
one host device per core (seed sweeps are split across them), then imports JAX.
"""

from __future__ import annotations

import os
import sys

HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"


def configure_host_devices(count: int | None = None) -> None:
    """Expose ``count`` (default: CPU cores, or ``$DLCORE_HOST_DEVICES``) host devices to XLA.

    Must run before JAX is imported; an existing ``--xla_force_host_platform_device_count`` in
    ``XLA_FLAGS`` wins. Only the CPU platform is affected (GPU/TPU device counts do not change).
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if HOST_DEVICES_FLAG in flags or "jax" in sys.modules:
        return
    if count is None:
        count = int(os.environ.get("DLCORE_HOST_DEVICES", os.cpu_count() or 1))
    if count > 1:
        os.environ["XLA_FLAGS"] = f"{flags} {HOST_DEVICES_FLAG}={count}".strip()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dlcore`` console script; returns the exit code."""
    configure_host_devices()
    from dlcore.cli._main import run_cli

    return run_cli(sys.argv[1:] if argv is None else list(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
