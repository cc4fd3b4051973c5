"""Argument parsing and dispatch; user errors become one line and exit code 2."""

from __future__ import annotations

import argparse
import sys
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


def run_cli(argv: list[str]) -> int:
    _register_builtin()
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        overrides = {}
        if rest:
            from dlcore.cli._config import parse_overrides

            overrides = parse_overrides(rest)
        return COMMANDS[args.command][1](args, overrides)
    except DlcoreError as e:
        print(f"dlcore: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dlcore: interrupted", file=sys.stderr)
        return 130
