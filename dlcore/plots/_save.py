"""Saving a figure atomically: a failed write leaves neither a half-written nor a temporary file."""

from __future__ import annotations

import os

from dlcore.errors import atomic_path


def save_figure(fig, path: str, dpi: int = 110, **kwargs) -> None:
    """``fig.savefig(path)`` through a temporary file renamed into place.

    A full disk or a file-size limit raises :class:`dlcore.errors.StorageError` naming ``path``.
    """
    fmt = os.path.splitext(str(path))[1].lstrip(".") or None
    with atomic_path(str(path), f".{fmt}" if fmt else "") as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt, **kwargs)
