"""matplotlib's ``pyplot`` (headless by default) and saving a figure atomically: a failed write leaves
neither a half-written nor a temporary file."""

from __future__ import annotations

import os

from dlcore.errors import atomic_path


def pyplot():
    """``matplotlib.pyplot``, with the Agg backend unless ``MPLBACKEND`` is set (Jupyter sets it).

    ``dlcore run`` calls it in a background thread while training compiles, so the import (~0.3 s
    on the 2-core reference machine) is not in the outputs phase.

    >>> pyplot().figure is not None
    True
    """
    import matplotlib

    if not os.environ.get("MPLBACKEND"):  # Jupyter sets it (inline figures); scripts and the CLI draw headless
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str, dpi: int = 110, **kwargs) -> None:
    """``fig.savefig(path)`` through a temporary file renamed into place.

    A full disk or a file-size limit raises :class:`dlcore.errors.StorageError` naming ``path``.
    """
    fmt = os.path.splitext(str(path))[1].lstrip(".") or None
    with atomic_path(str(path), f".{fmt}" if fmt else "") as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt, **kwargs)
