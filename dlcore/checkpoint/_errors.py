"""Checkpoint validation: structure fingerprints, file lists, and errors that name the file.

A checkpoint step directory holds orbax's items (``state``, ``history``, ``meta``) and, written
after orbax has committed the step, ``dlcore_files.json``: the size and CRC-32 of every file. On
restore the file list is checked first, so a truncated or altered file is named exactly instead of
surfacing as a deep tensorstore error; then the ``meta`` JSON (format, dlcore version, structure)
is compared with the program restoring it.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from typing import Any, Sequence

import jax
import numpy as np

from dlcore.errors import CheckpointError

class Incompatible(CheckpointError):
    """A readable checkpoint of another structure or version (an older step will not fit either)."""


FORMAT = 1  # bump when the layout of a checkpoint changes
FILE_LIST = "dlcore_files.json"
META_FILE = os.path.join("meta", "metadata")  # where orbax's JsonSave puts the ``meta`` item


def dlcore_version() -> str:
    import dlcore

    return dlcore.__version__


def leaf_specs(tree) -> list[list]:
    """``[[path, dtype, shape], ...]`` of every leaf (arrays or ``ShapeDtypeStruct``), in order.

    >>> import jax.numpy as jnp
    >>> leaf_specs({"w": jnp.zeros((2, 3))})
    [["['w']", 'float32', [2, 3]]]
    """
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        out.append([jax.tree_util.keystr(path), np.dtype(leaf.dtype).name, [int(d) for d in np.shape(leaf)]])
    return out


def fingerprint(specs: Sequence[Sequence]) -> str:
    """SHA-256 of a structure (leaf paths, dtypes, shapes): equal iff the pytrees are interchangeable.

    >>> import jax.numpy as jnp
    >>> fingerprint(leaf_specs({"w": jnp.zeros(2)})) == fingerprint(leaf_specs({"w": jnp.ones(2)}))
    True
    """
    h = hashlib.sha256()
    for path, dtype, shape in specs:
        h.update(f"{path}|{dtype}|{tuple(shape)}\n".encode())
    return h.hexdigest()


def _fmt(spec) -> str:
    return f"{spec[1]}{list(spec[2])}"


def structure_mismatch(saved: Sequence[Sequence], current: Sequence[Sequence], limit: int = 3) -> list[str]:
    """Human-readable differences between two ``leaf_specs`` lists (empty when they match).

    >>> structure_mismatch([["a", "float32", [2]]], [["a", "float32", [3]]])
    ['a: checkpoint float32[2], this program float32[3]']
    """
    s = {p: (p, d, sh) for p, d, sh in saved}
    c = {p: (p, d, sh) for p, d, sh in current}
    out = []
    for p in c:
        if p in s and (s[p][1] != c[p][1] or list(s[p][2]) != list(c[p][2])):
            out.append(f"{p}: checkpoint {_fmt(s[p])}, this program {_fmt(c[p])}")
    missing = [p for p in c if p not in s]
    extra = [p for p in s if p not in c]
    if missing:
        out.append(f"not in the checkpoint: {', '.join(missing[:limit])}" + (" …" if len(missing) > limit else ""))
    if extra:
        out.append(f"only in the checkpoint: {', '.join(extra[:limit])}" + (" …" if len(extra) > limit else ""))
    return out[: limit + 2]


def _crc32(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


def _walk(step_dir: str) -> list[str]:
    out = []
    for root, _, files in os.walk(step_dir):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), step_dir)
            if rel != FILE_LIST and not rel.startswith(FILE_LIST):
                out.append(rel)
    return sorted(out)


def write_file_list(step_dir: str) -> None:
    """Record the size and CRC-32 of every file of a committed step (atomically, via rename)."""
    files = {rel: [os.path.getsize(os.path.join(step_dir, rel)), _crc32(os.path.join(step_dir, rel))]
             for rel in _walk(step_dir)}
    tmp = os.path.join(step_dir, f"{FILE_LIST}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump({"format": FORMAT, "files": files}, f)
    os.replace(tmp, os.path.join(step_dir, FILE_LIST))


def verify_files(step_dir: str) -> None:
    """Check a step against its file list; raise :class:`CheckpointError` naming the bad file.

    A step without a file list (the process died between orbax's commit and the list) is not
    checked here; orbax's own reads still fail loudly on damage.
    """
    listing = os.path.join(step_dir, FILE_LIST)
    if not os.path.exists(listing):
        return
    try:
        with open(listing) as f:
            files = json.load(f)["files"]
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint file {listing} is unreadable ({e}); the step is damaged") from None
    for rel, (size, crc) in files.items():
        path = os.path.join(step_dir, rel)
        if not os.path.exists(path):
            raise CheckpointError(f"checkpoint file {path} is missing; the step is damaged")
        actual = os.path.getsize(path)
        if actual != size:
            what = "truncated" if actual < size else "longer than written"
            raise CheckpointError(f"checkpoint file {path} is {what}: {actual} bytes, {size} were written")
        if _crc32(path) != crc:
            raise CheckpointError(f"checkpoint file {path} is corrupt: its CRC-32 differs from the one written")


def read_meta(step_dir: str) -> dict:
    """The ``meta`` item of a step (format, version, step, structure, seeds, config, …)."""
    path = os.path.join(step_dir, META_FILE)
    try:
        with open(path) as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {path} is missing; {step_dir} is not a dlcore checkpoint step") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint file {path} is not valid JSON ({e}); the step is damaged") from None
    if not isinstance(meta, dict) or "format" not in meta or "leaves" not in meta:
        raise CheckpointError(f"checkpoint file {path} lacks dlcore metadata (format, leaves); not a dlcore checkpoint")
    return meta


def check_meta(meta: dict, step_dir: str, target_specs: Sequence | None, *, allow_other_version: bool = False) -> None:
    """Raise :class:`CheckpointError` if the checkpoint's format, version or structure do not fit."""
    path = os.path.join(step_dir, META_FILE)
    if meta["format"] != FORMAT:
        raise Incompatible(
            f"checkpoint {path} has format {meta['format']}, this dlcore reads format {FORMAT}; "
            f"restore it with dlcore {meta.get('dlcore_version', '?')}"
        )
    theirs, ours = meta.get("dlcore_version"), dlcore_version()
    if theirs != ours and not allow_other_version:
        raise Incompatible(
            f"checkpoint {path} was written by dlcore {theirs}, this is dlcore {ours}; restore it with dlcore "
            f"{theirs}, or pass allow_other_version=True if the state's layout is known to be unchanged"
        )
    if target_specs is not None and fingerprint(target_specs) != meta.get("fingerprint"):
        diff = structure_mismatch(meta["leaves"], target_specs)
        raise Incompatible(
            f"checkpoint {path} does not fit this program's train state: {'; '.join(diff) or 'leaf order differs'}. "
            "Resume with the same model, optimizer and number of runs (seeds) that wrote it"
        )


def describe_failure(step_dir: str, err: BaseException) -> CheckpointError:
    """Wrap an orbax/tensorstore failure as a :class:`CheckpointError` naming the step directory."""
    msg = str(err).strip().splitlines()
    first = msg[0] if msg else type(err).__name__
    return CheckpointError(f"cannot read checkpoint {step_dir}: {type(err).__name__}: {first[:400]}")


def as_jsonable(x: Any):
    """Numbers, lists and dicts only (numpy scalars/arrays and tuples converted) for JSON metadata."""
    if isinstance(x, dict):
        return {str(k): as_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [as_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return as_jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return repr(x)  # JSON has no NaN/inf
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)
