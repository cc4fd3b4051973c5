"""Errors that name the problem and the fix.

Every error a user can cause by bad input derives from :class:`DlcoreError`; the command line
prints it as one line and exits with code 2 (no traceback).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil


class DlcoreError(Exception):
    """Base class of user-facing errors: the message says what is wrong and how to fix it."""


class ConfigError(DlcoreError, ValueError):
    """A configuration value or key is invalid (unknown name, wrong type, out of range)."""


class DataError(DlcoreError, ValueError):
    """A dataset is missing, not prepared, or its arrays have the wrong shapes."""


class ShapeError(DlcoreError, ValueError):
    """Arrays passed to a function have incompatible shapes."""


class CheckpointError(DlcoreError):
    """A checkpoint is missing, corrupt or incompatible with the current program."""


class DivergedError(DlcoreError, FloatingPointError):
    """Training produced a non-finite loss or gradient."""


def unknown_name(kind: str, name: str, valid) -> ConfigError:
    """Build the standard 'unknown X' error listing the valid choices.

    >>> str(unknown_name("activation", "relu6", ["relu", "tanh"]))
    "unknown activation 'relu6'; valid choices: relu, tanh"
    """
    return ConfigError(f"unknown {kind} {name!r}; valid choices: {', '.join(sorted(valid))}")


class StorageError(DlcoreError):
    """A file could not be written (full disk, file-size limit, read-only place); ``path`` names it."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


_FIXES = {
    errno.ENOSPC: "free space on that disk",
    errno.EFBIG: "raise the file-size limit (ulimit -f) or free space",
    errno.EDQUOT: "free space in your disk quota",
    errno.EACCES: "make it writable or write elsewhere",
    errno.EPERM: "make it writable or write elsewhere",
    errno.EROFS: "write to a writable file system",
}


def os_error_code(err: BaseException) -> int | None:
    """The errno of an ``OSError``, or of a tensorstore/orbax error text (``os_error_code='27'``).

    >>> os_error_code(OSError(28, "No space left on device")), os_error_code(ValueError("x [os_error_code='27']"))
    (28, 27)
    """
    if isinstance(err, OSError) and err.errno:
        return err.errno
    m = re.search(r"os_error_code='?(\d+)", str(err))
    return int(m.group(1)) if m else None


def storage_error(path: str, err: BaseException, what: str = "write", kept: str = "") -> StorageError:
    """One line for a failed write: the path, the reason (from the errno when there is one), the fix.

    >>> str(storage_error("/r/history.npz", OSError(28, "No space left on device")))
    'cannot write /r/history.npz: No space left on device; free space on that disk'
    """
    code = os_error_code(err)
    if code is not None:
        reason = os.strerror(code)
    else:
        lines = str(err).strip().splitlines()
        reason = f"{type(err).__name__}: {lines[0][:300]}" if lines else type(err).__name__
    fix = _FIXES.get(code, "free space or write elsewhere")
    return StorageError(f"cannot {what} {path}: {reason}; {fix}{kept}", path)


def remove_quietly(path: str) -> None:
    """Remove a file or a directory tree if it exists; errors are ignored (cleanup after a failure)."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)
    except OSError:
        pass


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ""):
    """Yield a temporary name beside ``path``; on success rename it to ``path``.

    On any failure the temporary file is removed and an ``OSError`` becomes a :class:`StorageError`
    naming ``path`` (so a failed write leaves neither a half-written file nor a temporary one).

    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> with atomic_path(p) as tmp:
    ...     _ = open(tmp, "w").write("hi")
    >>> open(p).read(), os.listdir(os.path.dirname(p))
    ('hi', ['a.txt'])
    """
    tmp = f"{path}.tmp{os.getpid()}{suffix}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        remove_quietly(tmp)
        if isinstance(e, OSError):
            raise storage_error(path, e) from None
        raise
