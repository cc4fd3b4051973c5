"""Experiments and their configs: loading ``experiments/<name>.py`` and ``--config.path=value``."""

from __future__ import annotations

import ast
import importlib.util
import os
import pathlib
import sys

import ml_collections

from dlcore.errors import ConfigError

# Sections whose keys users may add from the command line (numeric hyperparameters).
OPEN_SECTIONS = ("hparams",)


def experiment_dirs() -> list[pathlib.Path]:
    """Where experiment names are looked up: ``./experiments`` then the source tree's."""
    here = pathlib.Path.cwd() / "experiments"
    src = pathlib.Path(__file__).resolve().parents[2] / "experiments"
    return [d for d in dict.fromkeys([here, src]) if d.is_dir()]


def available_experiments() -> list[str]:
    names = set()
    for d in experiment_dirs():
        names.update(p.stem for p in d.glob("*.py") if not p.stem.startswith("_"))
    return sorted(names)


def resolve_experiment(spec: str) -> pathlib.Path:
    """The file of an experiment given by path or by name."""
    p = pathlib.Path(spec)
    if p.suffix == ".py" or os.sep in spec:
        if p.is_file():
            return p.resolve()
        raise ConfigError(f"experiment file {spec!r} does not exist")
    for d in experiment_dirs():
        f = d / f"{spec}.py"
        if f.is_file():
            return f
    avail = ", ".join(available_experiments()) or "none found"
    raise ConfigError(
        f"unknown experiment {spec!r}; available: {avail} (or give the path of a .py file with get_config())"
    )


def load_experiment(spec: str):
    """Import an experiment file; returns ``(name, module)``. The module must define ``get_config``.

    A file that does not import (syntax error, failing import, an exception at import time) is a
    :class:`ConfigError` naming the file and line, not a traceback.
    """
    path = resolve_experiment(spec)
    mod_spec = importlib.util.spec_from_file_location(f"dlcore_experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(mod_spec)
    # Experiments derive from a shared base config beside them (`from _base import base_config`).
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        mod_spec.loader.exec_module(module)
    except SyntaxError as e:
        where = f"{e.filename or path}:{e.lineno}" if e.lineno else str(e.filename or path)
        raise ConfigError(f"experiment file {where}: syntax error: {e.msg}; fix the file") from None
    except ImportError as e:
        raise ConfigError(f"experiment {str(path)!r} cannot be imported: {_where(e, path)}{type(e).__name__}: {e}; "
                          "install the missing package or fix the import") from None
    except Exception as e:  # noqa: BLE001 - any error of user code at import time
        raise ConfigError(f"experiment {str(path)!r} failed while importing: {_where(e, path)}"
                          f"{type(e).__name__}: {e}; fix the file") from None
    finally:
        sys.path.remove(folder)
        sys.modules.pop("_base", None)  # another folder's _base.py must not be served from the cache
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError(f"experiment {str(path)!r} has no get_config() function; define get_config() "
                          "returning an ml_collections.ConfigDict")
    user_get_config = module.get_config
    # Every caller (run, study, check) gets the checked version: an exception or a wrong type is one line.
    module.get_config = lambda: experiment_config(user_get_config, str(path))
    return path.stem, module


def _where(err: BaseException, path) -> str:
    """``file:line: `` of the deepest frame of ``err`` inside the experiment's folder, or ``''``."""
    import traceback

    folder = str(pathlib.Path(path).parent)
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith(folder)]
    return f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""


def experiment_config(get_config, path: str) -> ml_collections.ConfigDict:
    """Call an experiment's ``get_config()``; an exception or a wrong return type is a ConfigError."""
    where = path
    try:
        config = get_config()
    except Exception as e:  # noqa: BLE001 - user code
        raise ConfigError(f"get_config() of {where} raised {_where(e, where)}{type(e).__name__}: {e}; "
                          "fix the experiment file") from None
    if isinstance(config, dict) and not isinstance(config, ml_collections.ConfigDict):
        config = ml_collections.ConfigDict(config)
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"get_config() of {where} returned {type(config).__name__}, not an "
                          "ml_collections.ConfigDict; return one (see experiments/_base.py)")
    return config


def parse_overrides(args: list[str]) -> dict[str, str]:
    """``["--config.a.b=1", "--config.c", "x"]`` -> ``{"a.b": "1", "c": "x"}``."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--config."):
            raise ConfigError(f"unrecognised argument {a!r}; override config values as --config.path=value")
        body = a[len("--config."):]
        if "=" in body:
            k, v = body.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            k, v = body, args[i + 1]
            i += 1
        else:
            raise ConfigError(f"{a!r} has no value; write --config.{body}=VALUE")
        if not k:
            raise ConfigError(f"{a!r} names no config key")
        out[k] = v
        i += 1
    return out


def _parse_value(path: str, raw: str, current):
    """Parse ``raw`` into the type of ``current`` (bool, int, float, str, tuple/list, None)."""
    kind = type(current).__name__
    try:
        if isinstance(current, bool):
            low = raw.strip().lower()
            if low in ("true", "1", "yes"):
                return True
            if low in ("false", "0", "no"):
                return False
            raise ValueError
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
        if isinstance(current, str):
            return raw
        if isinstance(current, (tuple, list)):
            v = ast.literal_eval(raw)
            v = (v,) if not isinstance(v, (tuple, list)) else v
            return type(current)(v)
        if current is None:
            try:
                return ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                return raw
    except (ValueError, SyntaxError):
        pass
    raise ConfigError(f"--config.{path}: expected {kind} (like {current!r}), got {raw!r}")


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict[str, str]) -> ml_collections.ConfigDict:
    """Set ``config[path] = value`` for each override, type-checked against the current value.

    Unknown keys are errors (listing the valid ones), except new numeric keys under ``hparams``.
    """
    config = config.copy_and_resolve_references()
    for path, raw in overrides.items():
        parts = path.split(".")
        node = config
        for j, part in enumerate(parts[:-1]):
            if not isinstance(node, ml_collections.ConfigDict) or part not in node:
                where = ".".join(parts[:j]) or "the config"
                valid = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else "none"
                raise ConfigError(f"unknown config key --config.{path}: {where} has no {part!r} (valid: {valid})")
            node = node[part]
        leaf = parts[-1]
        if not isinstance(node, ml_collections.ConfigDict):
            raise ConfigError(f"--config.{path}: {'.'.join(parts[:-1])} is not a section")
        if leaf not in node:
            if parts[0] in OPEN_SECTIONS and len(parts) == 2:
                try:
                    node[leaf] = float(raw)
                except ValueError:
                    raise ConfigError(f"--config.{path}: hyperparameters are numeric, got {raw!r}") from None
                continue
            raise ConfigError(
                f"unknown config key --config.{path}; valid keys here: {', '.join(sorted(node.keys()))}"
            )
        current = node[leaf]
        if isinstance(current, ml_collections.ConfigDict):
            raise ConfigError(f"--config.{path} is a section; set one of its keys: {', '.join(sorted(current.keys()))}")
        node[leaf] = _parse_value(path, raw, current)
    return config
