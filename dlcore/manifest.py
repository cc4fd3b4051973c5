"""Run manifests: what ran, where, with which versions, and a hash of the final parameters."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

import jax
import numpy as np

PACKAGES = (
    "dlcore", "jax", "jaxlib", "flax", "optax", "chex", "orbax-checkpoint", "tensorflow-datasets",
    "numpy", "scipy", "ml-collections", "mnist1d",
)


def params_sha256(params) -> str:
    """SHA-256 of a parameter pytree: each leaf's path, dtype, shape and raw bytes, in order.

    >>> import jax.numpy as jnp
    >>> params_sha256({"w": jnp.zeros(2)}) == params_sha256({"w": jnp.zeros(2)})
    True
    """
    h = hashlib.sha256()
    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    for path, leaf in leaves:
        a = np.ascontiguousarray(np.asarray(jax.device_get(leaf)))
        h.update(jax.tree_util.keystr(path).encode())
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def run_hashes(batched_params, num_runs: int) -> list[str]:
    """``params_sha256`` of each run of a pytree stacked on axis 0."""
    host = jax.device_get(batched_params)
    return [params_sha256(jax.tree.map(lambda a: a[i], host)) for i in range(num_runs)]


def git_commit(path: str | None = None) -> dict[str, Any]:
    """The git commit of ``path`` (default: cwd) and whether the tree has uncommitted changes."""
    cwd = path or os.getcwd()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True,
                text=True, timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": dirty if commit else None}


def versions() -> dict[str, str | None]:
    """Installed versions of the packages that determine a run's numbers."""
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def environment() -> dict[str, Any]:
    """Backend, devices, XLA flags and the JAX settings that change random bits or numerics."""
    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
        "process_count": jax.process_count(),
        "device_kinds": sorted({d.device_kind for d in devices}),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "jax_threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
        "jax_enable_x64": bool(jax.config.jax_enable_x64),
        "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
        "platform": platform.platform(),
        "hostname": platform.node(),
    }


def build_manifest(*, experiment: str, config: dict, seeds, params_hashes, extra: dict | None = None) -> dict:
    """The manifest of a run: seeds, config, versions, backend, devices, flags, commit, hashes."""
    return {
        "experiment": experiment,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "seeds": [int(s) for s in seeds],
        "config": config,
        "versions": versions(),
        "environment": environment(),
        "git": git_commit(),
        "params_sha256": {str(int(s)): h for s, h in zip(seeds, params_hashes)},
        **(extra or {}),
    }


def write_json_atomic(path: str, obj) -> None:
    """Write JSON to ``path`` via a temporary file and ``os.replace`` (never a half-written file).

    A failed write (full disk, file-size limit, read-only place) removes the temporary file and
    raises :class:`dlcore.errors.StorageError` naming ``path``.
    """
    from dlcore.errors import atomic_path

    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"  # before any file exists
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def _json_default(o):
    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)
