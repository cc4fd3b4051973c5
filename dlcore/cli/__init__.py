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
    except DlcoreError as e:
        print(f"dlcore: error: {e}", file=sys.stderr)
        return 2
    from dlcore.cli._main import run_cli

    return run_cli(sys.argv[1:] if argv is None else list(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
