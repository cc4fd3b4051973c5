"""``python -m dlcore.cli``: the same as the ``dlcore`` script."""

from dlcore.cli import entry

entry()
