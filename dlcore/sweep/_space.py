"""Search spaces: named axes (log / linear / choice) and their grids.

An axis sets one config value, named by its ``path`` (default ``hparams.<name>``). Numeric axes
under ``hparams.`` are *vectorized*: their values become per-run arrays in the train state and all
of them run in one compiled program. Any other path (``model.widths``, ``model.norm``,
``optimizer.name``, ``batch_size``…) is *structural*: each distinct combination of structural
values compiles its own program (once).

Grids follow the lectures: values evenly spaced in log space, either ``num`` exact log-spaced
values or round "1-3" decades (``steps="1-3"``: 1e-3, 3e-3, 1e-2, …; ``"1-2-5"``: 1e-3, 2e-3,
5e-3, 1e-2, …).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Mapping, Sequence

import numpy as np

from dlcore.errors import ConfigError

SCALES = ("log", "linear", "choice")
SPEC_KEYS = ("path", "scale", "low", "high", "num", "steps", "values", "integer")
RESERVED = ("point", "stage", "seed", "status", "stop_step", "selected", "params_sha256")
"""Names an axis may not take (they are columns of a study's results.csv)."""


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _clean(v: float) -> float:
    # 12 significant digits: geomspace's 0.010000000000000002 prints and hashes as 0.01.
    return float(f"{float(v):.12g}")


def parse_steps(steps: str | Sequence[float], where: str) -> tuple[float, ...]:
    """Mantissas of a decade grid: ``"1-3"`` / ``"1-3-10"`` -> (1, 3); ``"1-2-5"`` -> (1, 2, 5).

    >>> parse_steps("1-3-10", "x"), parse_steps("1-2-5", "x")
    ((1.0, 3.0), (1.0, 2.0, 5.0))
    """
    try:
        parts = steps.split("-") if isinstance(steps, str) else list(steps)
        vals = sorted({float(p) for p in parts})
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: steps {steps!r} is not like '1-3' or '1-2-5'") from None
    vals = [v for v in vals if v != 10.0]  # "1-3-10": 10 is the next decade's 1
    if not vals or any(not 1.0 <= v < 10.0 for v in vals) or 1.0 not in vals:
        raise ConfigError(
            f"{where}: steps {steps!r} must list mantissas in [1, 10) starting at 1, like '1-3' (1e-3, 3e-3, "
            "1e-2, …) or '1-2-5'"
        )
    return tuple(vals)


@dataclasses.dataclass(frozen=True)
class Axis:
    """One dimension of a search space.

    Attributes:
      name: column name in results (e.g. ``learning_rate``).
      path: the config value it sets (``hparams.learning_rate``, ``model.norm``, …).
      scale: ``"log"`` (grid evenly spaced in log space; log-uniform in random search),
        ``"linear"`` (evenly spaced; uniform) or ``"choice"`` (the listed ``values``).
      low, high: bounds of a log/linear axis (inclusive).
      num: number of grid values (log: ``np.geomspace``; linear: ``np.linspace``).
      steps: decade mantissas of a log grid, e.g. ``(1, 3)`` for 1e-3, 3e-3, 1e-2.
      values: explicit values (a choice axis, or an explicit grid of a log/linear axis).
      integer: round values to integers (widths, depths).

    >>> Axis("lr", "hparams.lr", "log", low=1e-3, high=1e-2, steps=(1.0, 3.0)).grid()
    (0.001, 0.003, 0.01)
    """

    name: str
    path: str
    scale: str
    low: float | None = None
    high: float | None = None
    num: int | None = None
    steps: tuple[float, ...] | None = None
    values: tuple | None = None
    integer: bool = False

    @property
    def numeric(self) -> bool:
        """All values are numbers (a log/linear axis, or a choice of numbers)."""
        return self.values is None or all(_is_number(v) for v in self.values)

    @property
    def vectorized(self) -> bool:
        """Runs for different values of this axis share one compiled program (numeric ``hparams.*``)."""
        return self.path.startswith("hparams.") and self.numeric

    @property
    def log(self) -> bool:
        """Plot and refine in log space: a log axis, or positive numeric values spanning ≥ 20×."""
        if self.scale == "log":
            return True
        if self.scale == "choice" and self.numeric and self.values and all(float(v) > 0 for v in self.values):
            return max(map(float, self.values)) / min(map(float, self.values)) >= 20
        return False

    def _cast(self, v):
        if self.integer:
            return int(round(float(v)))
        return _clean(v) if _is_number(v) else v

    def grid(self) -> tuple:
        """The grid values, in increasing order for log/linear axes (listed order for choices)."""
        where = f"sweep.axes.{self.name}"
        if self.values is not None:
            return tuple(self._cast(v) for v in self.values)
        if self.steps is not None:
            lo_dec, hi_dec = math.floor(math.log10(self.low)) - 1, math.ceil(math.log10(self.high)) + 1
            vals = [float(f"{m:g}e{d}") for d in range(lo_dec, hi_dec + 1) for m in self.steps]
            tol = 1e-9
            vals = [v for v in vals if self.low * (1 - tol) <= v <= self.high * (1 + tol)]
            if not vals:
                raise ConfigError(f"{where}: no '{'-'.join(f'{m:g}' for m in self.steps)}' value lies in "
                                  f"[{self.low:g}, {self.high:g}]; widen low/high")
            out = vals
        elif self.num is not None:
            if self.num == 1:
                out = [self.low]
            elif self.scale == "log":
                out = np.geomspace(self.low, self.high, self.num).tolist()
            else:
                out = np.linspace(self.low, self.high, self.num).tolist()
        else:
            raise ConfigError(
                f"{where}: a grid needs num (evenly spaced values), steps ('1-3', log axes) or values; "
                f"set {where}.num"
            )
        return tuple(dict.fromkeys(self._cast(v) for v in out))  # integer rounding may repeat values

    def sample(self, u: np.ndarray) -> list:
        """Map uniform draws ``u`` in [0, 1) to values: log-uniform, uniform or a uniform choice.

        The draws come from the study seed (see :func:`dlcore.sweep.random_points`).
        """
        u = np.asarray(u, dtype=np.float64)
        if self.values is not None:
            idx = np.minimum((u * len(self.values)).astype(np.int64), len(self.values) - 1)
            return [self._cast(self.values[i]) for i in idx]
        if self.scale == "log":
            vals = np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low)))
        else:
            vals = self.low + u * (self.high - self.low)
        if self.integer:
            # floor(low + u·(high − low + 1)) is uniform over the integers low..high.
            vals = np.floor(self.low + u * (self.high - self.low + 1))
            return [int(min(v, self.high)) for v in vals]
        return [_clean(v) for v in vals]

    def contains(self, v) -> bool:
        if self.values is not None:
            return v in self.values or (self.integer and int(v) in self.values)
        return self.low <= float(v) <= self.high

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if v is not None}


def axis_from_spec(name: str, spec: Mapping[str, Any], where: str = "sweep.axes") -> Axis:
    """An :class:`Axis` from a config dict; bad fields raise :class:`ConfigError` naming them.

    Spec keys: ``path`` (default ``hparams.<name>``), ``scale`` (``log``/``linear``/``choice``;
    default ``choice`` when ``values`` is given, else required), ``low``, ``high``, ``num``,
    ``steps``, ``values``, ``integer``.

    >>> axis_from_spec("learning_rate", {"scale": "log", "low": 1e-3, "high": 1e-1, "steps": "1-3"}).grid()
    (0.001, 0.003, 0.01, 0.03, 0.1)
    >>> axis_from_spec("norm", {"path": "model.norm", "values": ("none", "batch")}).vectorized
    False
    """
    w = f"{where}.{name}"
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"{where}: axis name {name!r} must be an identifier (it becomes a CSV column)")
    if name in RESERVED:
        raise ConfigError(f"{w}: {name!r} is a reserved column name ({', '.join(RESERVED)}); rename the axis")
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{w} must be a dict like dict(scale='log', low=1e-3, high=1e-1, num=5), got {spec!r}")
    spec = dict(spec)
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(f"{w}: unknown field {unknown[0]!r}; valid fields: {', '.join(SPEC_KEYS)}")
    path = spec.get("path") or f"hparams.{name}"
    if not isinstance(path, str) or not all(p.isidentifier() for p in path.split(".")):
        raise ConfigError(f"{w}.path must be a dotted config path like 'model.norm', got {path!r}")
    values = spec.get("values")
    scale = spec.get("scale") or ("choice" if values is not None else None)
    if scale is None:
        raise ConfigError(f"{w}: give values=(...) or scale='log'/'linear' with low and high")
    if scale not in SCALES:
        raise ConfigError(f"{w}.scale must be one of {', '.join(SCALES)}, got {scale!r}")
    integer = bool(spec.get("integer", False))
    low, high, num, steps = spec.get("low"), spec.get("high"), spec.get("num"), spec.get("steps")
    if values is not None:
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
            raise ConfigError(f"{w}.values must be a tuple of values, got {values!r}")
        values = tuple(v for v in values)
        if not values:
            raise ConfigError(f"{w}.values is empty; list at least one value")
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"{w}.values repeats a value: {values!r}")
        if scale != "choice" and not all(_is_number(v) for v in values):
            raise ConfigError(f"{w}.values must be numbers for scale={scale!r}, got {values!r}")
        if scale == "log" and any(float(v) <= 0 for v in values):
            raise ConfigError(f"{w}.values must be > 0 on a log axis, got {values!r}")
        if any(k is not None for k in (low, high, num, steps)) and scale == "choice":
            raise ConfigError(f"{w}: a choice axis takes values only (drop low/high/num/steps)")
        if scale != "choice":
            low = min(float(v) for v in values) if low is None else low
            high = max(float(v) for v in values) if high is None else high
    else:
        if scale == "choice":
            raise ConfigError(f"{w}: a choice axis needs values=(...)")
        for k, v in (("low", low), ("high", high)):
            if not _is_number(v):
                raise ConfigError(f"{w}.{k} must be a number, got {v!r}")
        if num is not None and steps is not None:
            raise ConfigError(f"{w}: give num (evenly spaced) or steps ('1-3'), not both")
        if num is not None and (not isinstance(num, (int, np.integer)) or isinstance(num, bool) or num < 1):
            raise ConfigError(f"{w}.num must be a positive integer, got {num!r}")
        if steps is not None:
            if scale != "log":
                raise ConfigError(f"{w}.steps ('1-3' decades) needs scale='log'")
            steps = parse_steps(steps, f"{w}.steps")
    if low is not None:
        low, high = float(low), float(high)
        if scale == "log" and low <= 0:
            raise ConfigError(f"{w}.low must be > 0 on a log axis (log of {low:g} is undefined), got {low:g}")
        if scale == "log" and high <= 0:
            raise ConfigError(f"{w}.high must be > 0 on a log axis, got {high:g}")
        if not np.isfinite([low, high]).all() or low > high or (low == high and (num or 1) > 1):
            raise ConfigError(f"{w}: need low < high, got low={low:g}, high={high:g}")
    if path.startswith("hparams.") and not all(_is_number(v) for v in (values or ())):
        raise ConfigError(f"{w}: hyperparameters under hparams are numeric, got {values!r}; "
                          "set a structural path (e.g. model.norm) for names")
    return Axis(name, path, scale, low, high, num, steps, values, integer)


class Space:
    """A search space: an ordered tuple of :class:`Axis`. ``Space(())`` has one point, ``{}``: a
    plain run is a study with no axes.

    >>> s = space_from_spec({"lr": {"values": (0.1, 0.01)}, "norm": {"path": "model.norm",
    ...                      "values": ("none", "batch")}})
    >>> s.grid_points()[:2]
    [{'lr': 0.1, 'norm': 'none'}, {'lr': 0.1, 'norm': 'batch'}]
    """

    def __init__(self, axes: Sequence[Axis] = ()):
        paths = [a.path for a in axes]
        dup = sorted({p for p in paths if paths.count(p) > 1})
        if dup:
            raise ConfigError(f"sweep.axes: two axes set the same config value {dup[0]!r}; keep one")
        self.axes = tuple(axes)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    def __getitem__(self, name: str) -> Axis:
        for a in self.axes:
            if a.name == name:
                return a
        raise KeyError(name)

    def grid_shape(self) -> tuple[int, ...]:
        return tuple(len(a.grid()) for a in self.axes)

    def grid_points(self) -> list[dict]:
        """The Cartesian product of the axes' grids (first axis varies slowest)."""
        grids = [a.grid() for a in self.axes]
        return [dict(zip(self.names, combo)) for combo in itertools.product(*grids)]

    def vectorized(self) -> tuple[Axis, ...]:
        return tuple(a for a in self.axes if a.vectorized)

    def structural(self) -> tuple[Axis, ...]:
        return tuple(a for a in self.axes if not a.vectorized)

    def to_dict(self) -> dict:
        return {a.name: a.to_dict() for a in self.axes}


def space_from_spec(axes: Mapping[str, Mapping[str, Any]], where: str = "sweep.axes") -> Space:
    """A :class:`Space` from ``{name: spec}`` (see :func:`axis_from_spec`)."""
    if axes is None or not isinstance(axes, Mapping) or not axes:
        raise ConfigError(
            f"{where} is empty; add at least one axis, e.g. "
            f"{where} = dict(learning_rate=dict(scale='log', low=1e-3, high=1e-1, steps='1-3'))"
        )
    return Space([axis_from_spec(n, s, where) for n, s in axes.items()])
