"""Argument parsing and dispatch; user errors become one line and exit code 2."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Callable

from dlcore.errors import DlcoreError

# name -> (add_arguments(parser), command(args, overrides) -> exit code, help). Extend to add commands.
COMMANDS: dict[str, tuple[Callable, Callable, str]] = {}


def register(name: str, add_arguments: Callable, command: Callable, help: str) -> None:
    COMMANDS[name] = (add_arguments, command, help)


def _register_builtin() -> None:
    from dlcore.cli import _run

    register("run", _run.add_arguments, _run.cmd_run, "train an experiment for one or many seeds")
    from dlcore.cli import _check

    register("check", _check.add_arguments, _check.cmd_check, "run the debugging recipe (pass/fail report)")
    from dlcore.cli import _report

    register("report", _report.add_arguments, _report.cmd_report, "re-print a run's statistics and re-draw its plots")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlcore", description="Reproducible seed-sweep studies with JAX/Flax.",
        epilog="Config values are overridden with --config.path=value (e.g. --config.hparams.learning_rate=3e-3).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, _, help_) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_, description=help_))
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers send before a kill), raised in the main thread like Ctrl-C.

    Being a ``KeyboardInterrupt``, it unwinds through the same ``finally`` blocks: the checkpoint
    manager waits for the checkpoint being written before the process exits.
    """


def _on_sigterm(signum, frame):
    raise Terminated()


def run_cli(argv: list[str]) -> int:
    """Parse ``argv`` and run the command; returns the exit code.

    0: done; 2: bad input or a storage failure (one line ``dlcore: error: ...``); 130: interrupted
    by SIGINT (Ctrl-C); 143: terminated by SIGTERM. On 130 and 143 the checkpoint being written is
    finished first, so ``--resume RUN_DIR`` continues from it.
    """
    _register_builtin()
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        overrides = {}
        if rest:
            from dlcore.cli._config import parse_overrides

            overrides = parse_overrides(rest)
        return COMMANDS[args.command][1](args, overrides)
    except DlcoreError as e:
        print(f"dlcore: error: {e}", file=sys.stderr)
        return 2
    except Terminated:
        print("dlcore: terminated (SIGTERM); the checkpoint being written was finished — "
              "continue with --resume RUN_DIR", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("dlcore: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
