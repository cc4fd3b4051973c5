"""Runs ``dlcore ARGS...`` with a real file-size limit that starts at a chosen write (tests/test_faults_io.py).

    python tests/_fault_driver.py WHERE LIMIT_BYTES -- run tiny ...

WHERE: ``none`` (no limit), ``start`` (limit from the beginning, like ``ulimit -f``), ``checkpoint:N`` (from the N-th
checkpoint write on), ``tensorboard`` (from the first event file on), or a file name such as
``results.csv`` / ``history.npz`` / ``curves.png`` / ``manifest.json`` (from the atomic write of
that file on). The failure itself is the kernel's: writes past the limit fail with EFBIG (Python
ignores SIGXFSZ), in Python and in tensorstore's C++ threads alike.
"""

import contextlib
import resource
import sys


def limit(nbytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def main() -> int:
    where, nbytes = sys.argv[1], int(sys.argv[2])
    argv = sys.argv[sys.argv.index("--") + 1:]
    if where == "none":
        pass
    elif where == "start":
        limit(nbytes)
    elif where.startswith("checkpoint:"):
        from dlcore.checkpoint import _manager

        nth, real = int(where.split(":")[1]), _manager.CheckpointManager._write
        calls = []

        def _write(self, *a, **k):
            calls.append(1)
            if len(calls) == nth:
                limit(nbytes)
            return real(self, *a, **k)

        _manager.CheckpointManager._write = _write
    elif where == "tensorboard":
        from dlcore.tracking import _writers

        real_init = _writers.TensorBoardWriter.__init__

        def __init__(self, *a, **k):
            limit(nbytes)
            real_init(self, *a, **k)

        _writers.TensorBoardWriter.__init__ = __init__
    else:  # a file written through dlcore.errors.atomic_path (patched before anything imports it)
        from dlcore import errors

        real_atomic = errors.atomic_path

        @contextlib.contextmanager
        def atomic_path(path, *a, **k):
            if str(path).endswith(where):
                limit(nbytes)
            with real_atomic(path, *a, **k) as tmp:
                yield tmp

        errors.atomic_path = atomic_path
    from dlcore.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
