"""Errors that name the problem and the fix.

Every error a user can cause by bad input derives from :class:`DlcoreError`; the command line
prints it as one line and exits with code 2 (no traceback).
"""

from __future__ import annotations


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
