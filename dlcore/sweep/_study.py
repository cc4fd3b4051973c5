"""Studies: points × seeds as few compiled programs, selection on validation, test once.

A *run* is one (point, seed) pair. Runs are grouped by *structure* — the values of the axes that
change the program (model widths, norm, optimizer name, batch size…). Within a structure every
run is one row of a stacked :class:`dlcore.train.TrainState`: the numeric ``hparams.*`` axes are
per-run float32 arrays in ``state.hparams`` and the seed decides the run's keys, so all points and
seeds of a structure train as ONE ``vmap``-ed, ``lax.scan``-ned program (compiled once per
structure and batch shape), split over the host devices.

Memory: the dataset is shared by every run (replicated once per device, never per run). When a
structure has more runs than ``max_parallel``, its runs are cut into equal chunks that run one
after another with the same compiled program. A run's randomness (initial parameters, data
order, dropout masks) depends only on its seed and step, so it is bit-identical in any chunking;
its trained weights agree to floating-point noise only (batched kernels of different widths round
differently). Chunks are padded with copies of their last run to a common size that divides over
the devices; the copies' results are dropped.

Selection uses the validation split only (``val/<metric>``, mean or IQM over seeds); the test
split is evaluated once, for the chosen point(s), after the search.
"""

from __future__ import annotations

import functools
import math
import os
import time
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.data import Dataset
from dlcore.errors import ConfigError
from dlcore.host import jit_once, to_host
from dlcore.sweep._search import Budget, SearchPlan, run_search, search_plan
from dlcore.sweep._seeds import batch_loop, parse_seeds, place_runs, runs_one_per_device
from dlcore.sweep._space import Space
from dlcore.train import CheckpointPlan, Loop, Recipe, RunOptions, evaluate, init_state, run_loop


class Setup(NamedTuple):
    """What one structure trains with (returned by the study's ``build`` function).

    Attributes:
      recipe: the structure's :class:`dlcore.train.Recipe`.
      options: its :class:`dlcore.train.RunOptions` (steps, batch, evaluation, hooks, statistics);
        the study's own options supply progress, callbacks, placement and checkpoints.
      hparams: base numeric hyperparameters (axes override theirs per run).
      measure: optional ``measure(states, seeds, data) -> {name: [S]}``, called once per point after
        training with the point's ``S`` final states (stacked host arrays) and their seeds: numbers a
        study records beside the metrics (``results.csv`` columns), e.g. calibration or gradient noise.
        Names start with ``train/``, ``val/`` or ``test/``; ``test/`` ones are kept for the selected
        points only, like the test metrics.
      data: the structure's own dataset, when a structural axis changes the data (e.g. a synthetic
        task's lag); ``None``: the study's dataset.
    """

    recipe: Recipe
    options: RunOptions
    hparams: Mapping[str, float]
    measure: Callable | None = None
    data: Dataset | None = None


Build = Callable[[Mapping[str, Any]], Setup]
"""``build({config_path: value, …}) -> Setup`` for one combination of structural axis values."""


class Selection(NamedTuple):
    """How the best point is chosen (validation only).

    Attributes:
      metric: a validation metric, ``"val/accuracy"`` or ``"val/loss"``…
      mode: ``"max"``, ``"min"`` or ``"auto"`` (min for names containing "loss", else max).
      statistic: ``"mean"`` or ``"iqm"`` over seeds.
      group_by: axis names; the best point is chosen within each combination of their values
        (e.g. ``("norm",)``: the best learning rate with and without batch norm).
    """

    metric: str = "val/accuracy"
    mode: str = "auto"
    statistic: str = "mean"
    group_by: tuple[str, ...] = ()

    @property
    def higher_is_better(self) -> bool:
        return self.mode == "max" or (self.mode == "auto" and "loss" not in self.metric)


def check_selection(sel: Selection, space: Space) -> Selection:
    """Validate a :class:`Selection`; errors name the ``sweep.select.*`` field."""
    if not isinstance(sel.metric, str) or not sel.metric.startswith("val/"):
        split = str(sel.metric).split("/")[0]
        extra = (" — the test split is evaluated once, for the chosen point, and never used to choose it"
                 if split == "test" else "")
        raise ConfigError(
            f"sweep.select.metric={sel.metric!r} is not a validation metric; selection uses the validation "
            f"split only (e.g. 'val/accuracy' or 'val/loss'){extra}"
        )
    if sel.mode not in ("max", "min", "auto"):
        raise ConfigError(f"sweep.select.mode must be 'max', 'min' or 'auto', got {sel.mode!r}")
    if sel.statistic not in ("mean", "iqm"):
        raise ConfigError(f"sweep.select.statistic must be 'mean' or 'iqm', got {sel.statistic!r}")
    group_by = (sel.group_by,) if isinstance(sel.group_by, str) else tuple(sel.group_by or ())
    for g in group_by:
        if g not in space.names:
            raise ConfigError(f"sweep.select.group_by names {g!r}, not an axis; axes: {', '.join(space.names)}")
    return sel._replace(group_by=group_by)


class StudyResult(NamedTuple):
    """Everything a study produced (host arrays; ``P`` points, ``S`` seeds).

    Attributes:
      space, seeds, selection: the study's definition.
      points: ``P`` dicts axis name -> value; ``stages``: the search stage of each point.
      metrics: ``val/<m>`` ``[P, S]`` final validation metrics; ``test/<m>`` ``[P, S]``, NaN except
        for the selected points.
      status, stop_step: ``[P, S]`` run status (see :data:`dlcore.train.STATUS_NAMES`).
      train_loss_last: ``[P, S]`` last training-step loss.
      histories: per point ``{"train/<m>": [S, T], "val/<m>": [S, E], "eval_step": [E]}``.
      hashes: ``[P][S]`` SHA-256 of each run's final parameters.
      scores: ``[P]`` the selection statistic of each point.
      selected: indices of the chosen point(s) (one per ``group_by`` combination).
      groups: per structure: its values, points, runs, chunks and chunk size.
      timing: ``wall_s``, ``compile_s``, ``run_s``, ``programs`` (train programs compiled).
      states: per point, the final :class:`TrainState` of its ``S`` seeds on the host, without the
        optimizer state (``opt_state=None``); None for unchosen points when ``keep_states=False``.
    """

    space: Space
    seeds: list[int]
    selection: Selection
    points: list[dict]
    stages: list[int]
    metrics: dict[str, np.ndarray]
    status: np.ndarray
    stop_step: np.ndarray
    train_loss_last: np.ndarray
    histories: list[dict]
    hashes: list[list[str]]
    scores: np.ndarray
    selected: list[int]
    groups: list[dict]
    timing: dict
    states: list | None


def plan_chunks(num_runs: int, max_parallel: int, num_devices: int) -> tuple[int, int]:
    """``(chunk_size, num_chunks)`` for ``num_runs`` runs, at most ``max_parallel`` per chunk (0: all).

    Chunks are balanced, and their size is a multiple of ``num_devices`` where that is possible
    without exceeding ``max_parallel`` (the remainder is padded), so every device gets work.

    >>> plan_chunks(15, 0, 2), plan_chunks(32, 8, 2), plan_chunks(10, 4, 1)
    ((16, 1), (8, 4), (4, 3))
    """
    if not isinstance(max_parallel, (int, np.integer)) or isinstance(max_parallel, bool) or max_parallel < 0:
        raise ConfigError(f"sweep.max_parallel must be a non-negative integer (0 = all at once), got {max_parallel!r}")
    limit = int(max_parallel) or num_runs
    n_chunks = -(-num_runs // limit)
    size = -(-num_runs // n_chunks)
    if num_devices > 1 and size >= num_devices and size % num_devices:
        up = -(-size // num_devices) * num_devices
        if not max_parallel or up <= max_parallel:
            size = up
        elif limit >= num_devices:
            size = limit // num_devices * num_devices
    return size, -(-num_runs // size)


def _structure_key(point: Mapping, space: Space) -> tuple:
    return tuple(repr(point[a.name]) for a in space.structural())


class _Group:
    """One structure: its setup, its compiled loops (one per batch size of runs) and their placement."""

    def __init__(self, structure: dict, setup: Setup, data: Dataset, devices, callbacks):
        self.structure, self.setup, self.data = structure, setup, data
        recipe = setup.recipe
        x1 = data.x_train[:1]
        # One jitted single-run initializer per structure, its results stacked on the host: bit-identical
        # to dlcore.sweep.init_states (random bits do not depend on batching), it compiles ~2.5x faster
        # than the vmapped initializer and serves every chunk size; compiled as a run-once program.
        self._init1 = jit_once(lambda s, h: init_state(recipe, s, h, x1))
        # The study supplies placement and callbacks; test is evaluated once, after the search.
        self.options = setup.options.replace(devices=devices, callbacks=tuple(callbacks), evaluate_test=False,
                                             progress=False, checkpoint=None)
        self.loops: dict[int, tuple[Loop, Any]] = {}
        # Recurrent models on CPU train one run per device at a time (vmapped they were slower).
        self.one_per_device = runs_one_per_device(recipe, setup.hparams, x1, devices)
        self.test_eval = jax.jit(jax.vmap(
            functools.partial(evaluate, recipe, batch_size=setup.options.eval_batch_size), in_axes=(0, None, None)
        ))

    def init(self, seeds: np.ndarray, hparams: Mapping[str, np.ndarray]):
        """Initial states of runs ``seeds[i]`` with ``hparams[k][i]``, stacked on axis 0 (host arrays)."""
        # Dispatch every run's init, then copy them all at once (one blocking copy per run cost ~40 ms).
        states = jax.device_get([
            self._init1(jnp.int32(s), {k: jnp.float32(v[i]) for k, v in hparams.items()})
            for i, s in enumerate(np.asarray(seeds).tolist())
        ])
        return jax.tree.map(lambda *xs: np.stack(xs), *states)

    def loop(self, size: int) -> tuple[Loop, Any]:
        """The compiled loop for ``size`` runs (built once; every chunk of that size reuses it)."""
        if size not in self.loops:
            self.loops[size] = batch_loop(self.setup.recipe, self.data, size, self.options)
        return self.loops[size]


def runs_in_memory(setup: Setup, data: Dataset, budget: int, num_devices: int = 1, structure=None) -> int:
    """How many runs of ``setup`` fit in ``budget`` bytes at once (a multiple of ``num_devices``
    where possible); a :class:`ConfigError` when not even one does (checked before any work).

    >>> from dlcore.data import from_arrays
    >>> from dlcore.nn import MLP
    >>> from dlcore.optim import optimizer_fn
    >>> x = np.zeros((100, 40), np.float32)
    >>> data = from_arrays(x, np.arange(100) % 10, x[:10], np.arange(10) % 10, val_fraction=0.1)
    >>> s = Setup(Recipe(MLP(widths=(100, 100)), optimizer_fn("adam")), RunOptions(num_steps=100, batch_size=100),
    ...           {"learning_rate": 1e-2})
    >>> runs_in_memory(s, data, 2**30, 2)
    1084
    """
    o = setup.options
    abstract = jax.eval_shape(lambda: init_state(setup.recipe, 0, setup.hparams, data.x_train[:1]))
    state = sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in jax.tree.leaves(abstract))
    # The state, its donated copy, gradients and optimizer temporaries; the per-step metrics of a
    # chunk; the activations of a step (forward and backward) from the batch's input size.
    x_row = int(np.prod(data.x_train.shape[1:])) * data.x_train.dtype.itemsize
    per_run = 4 * state + 8 * 4 * o.chunk_size + 16 * o.batch_size * x_row
    fit = int(budget // per_run)
    if fit < 1:
        raise ConfigError(
            f"one run of {_describe(structure or {}) or 'this experiment '}needs about {per_run / 2**30:.2f} GiB, "
            f"more than the {budget / 2**30:.2f} GiB available; use a smaller model or batch "
            "(or give a larger memory budget)")
    return fit if fit < num_devices else fit // num_devices * num_devices


def default_memory_budget(devices) -> int:
    """Bytes a study may use for the runs it trains at once by default: half the host's available
    memory (CPU) or 80% of the accelerators' memory limit."""
    dev = devices[0]
    if dev.platform != "cpu":
        stats = dev.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(0.8 * stats["bytes_limit"] * len(devices))
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return avail // 2


def _select(scores: np.ndarray, points: Sequence[dict], sel: Selection) -> list[int]:
    s = np.where(np.isfinite(scores), scores, -np.inf if sel.higher_is_better else np.inf)
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(points):
        groups.setdefault(tuple(repr(p[g]) for g in sel.group_by), []).append(i)
    out = []
    for idx in groups.values():
        vals = s[idx]
        j = int(np.argmax(vals)) if sel.higher_is_better else int(np.argmin(vals))  # first wins ties
        out.append(idx[j])
    return out


def _score(values_S: np.ndarray, statistic: str) -> float:
    from dlcore.stats import iqm

    v = np.asarray(values_S, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    return float(np.mean(v)) if statistic == "mean" else iqm(v)


def study_plan(space: Space, seeds, strategy: str, study_seed: int, num_points: int, refine, budget: Budget,
               selection: Selection) -> tuple[list[int], Selection, SearchPlan]:
    """The checked seeds, selection and search plan of a study (shared by trained and measured studies)."""
    seeds = parse_seeds(seeds)
    selection = check_selection(selection, space)
    refine = dict(refine or {})
    unknown = sorted(set(refine) - {"rounds", "top_k", "num", "start"})
    if unknown:
        raise ConfigError(f"sweep.refine: unknown field {unknown[0]!r}; valid: rounds, top_k, num, start")
    plan = search_plan(space, strategy, study_seed=study_seed, num_points=num_points, budget=budget, **refine)
    return seeds, selection, plan


def run_study(
    space: Space,
    build: Build,
    data: Dataset,
    seeds: Sequence[int] | int | str,
    *,
    strategy: str = "grid",
    study_seed: int = 0,
    num_points: int = 0,
    refine: Mapping[str, Any] | None = None,
    budget: Budget = Budget(),
    selection: Selection = Selection(),
    max_parallel: int = 0,
    devices: Sequence | None = None,
    keep_states: bool = True,
    progress: bool | str = True,
    callbacks: Sequence = (),
    checkpoint: CheckpointPlan | None = None,
    keep_opt_state: bool = False,
    memory_budget: int | None = None,
) -> StudyResult:
    """Run a study: search ``space`` with ``strategy``, every point for every seed.

    Args:
      space: the axes (:func:`dlcore.sweep.space_from_spec`).
      build: ``build(structure) -> Setup`` where ``structure`` maps the structural axes' config
        paths to values (``{}`` when every axis is a numeric hyperparameter).
      data: the dataset, shared by all points (a structure's ``Setup.data`` replaces it for that structure).
      seeds: seeds run for every point (so points are compared *paired* by seed).
      strategy: ``"grid"``, ``"random"`` or ``"refine"`` (see :mod:`dlcore.sweep._search`).
      study_seed: keys random search and the report's bootstrap.
      num_points: points of a random search (or of refine's random start).
      refine: ``{"rounds", "top_k", "num", "start"}`` for ``strategy="refine"``.
      budget: :class:`Budget` (max points, max total steps).
      selection: :class:`Selection` (validation metric, mode, statistic, group_by).
      max_parallel: most runs in one program (0: all runs of a structure at once).
      devices: devices to split runs over (default: all devices).
      progress: a progress bar per unit of work (``str``: its label).
      callbacks: host functions ``(state, history, step)`` after each chunk of each unit.
      checkpoint: a :class:`dlcore.train.CheckpointPlan` (:class:`dlcore.checkpoint.StudyCheckpoints`):
        each unit of work (one structure's chunk of runs in one search stage) saves and resumes
        through its own checkpointer, so a killed study resumes where it stopped: finished units
        are restored (not retrained), the running one continues bit-exactly, and the search replays
        the same stages (the plan records them and checks the replay).
      keep_states: return every run's final state (host arrays, no optimizer state); when False,
        only the chosen points' states are returned.
      memory_budget: bytes the runs trained at once may use (default: :func:`default_memory_budget`);
        a structure whose runs do not fit is split into chunks (as with ``max_parallel``), and one
        whose single run does not fit is refused before any work.
      keep_opt_state: keep the optimizer state in the returned states too (to replay a diverged
        step, :func:`dlcore.diagnostics.find_nan_op`).
    Returns:
      :class:`StudyResult`.

    >>> import numpy as np
    >>> from dlcore.data import from_arrays
    >>> from dlcore.nn import MLP
    >>> from dlcore.optim import optimizer_fn
    >>> from dlcore.sweep import space_from_spec
    >>> x = np.linspace(-1, 1, 400, dtype=np.float32).reshape(100, 4)
    >>> data = from_arrays(x, np.arange(100) % 2, x[:20], np.arange(20) % 2, val_fraction=0.2)
    >>> recipe = Recipe(MLP(widths=(8,), num_outputs=2), optimizer_fn("adam"))
    >>> space = space_from_spec({"learning_rate": {"scale": "log", "low": 1e-3, "high": 1e-2, "steps": "1-3"}})
    >>> opts = RunOptions(num_steps=20, batch_size=16)
    >>> res = run_study(space, lambda s: Setup(recipe, opts, {"learning_rate": 1e-2}), data, 2, progress=False)
    >>> len(res.points), res.metrics["val/accuracy"].shape, res.timing["programs"]
    (3, (3, 2), 1)
    """
    t_start = time.perf_counter()
    seeds, selection, plan = study_plan(space, seeds, strategy, study_seed, num_points, refine, budget, selection)
    plan_chunks(1, max_parallel, 1)  # validates max_parallel before anything runs
    devices = list(devices if devices is not None else jax.devices())
    S = len(seeds)
    label = progress if isinstance(progress, str) else "study"
    budget = int(memory_budget) if memory_budget is not None else default_memory_budget(devices)
    if budget <= 0:
        raise ConfigError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")

    groups: dict[tuple, _Group] = {}

    def group_of(point) -> _Group:
        k = _structure_key(point, space)
        if k not in groups:
            structure = {a.path: point[a.name] for a in space.structural()}
            setup = build(structure)
            groups[k] = _Group(structure, setup, data if setup.data is None else setup.data, devices, callbacks)
        return groups[k]

    points: list[dict] = []
    stages: list[int] = []
    units: list[dict] = []  # every unit of work run so far (for the checkpoint plan's record)
    per_point: list[dict] = []  # val metrics, status, history, state reference per point
    run_s = 0.0
    chunks_info: dict[tuple, dict] = {}

    steps_run = 0.0

    def evaluate_points(new_points: list[dict], stage: int) -> list[float]:
        nonlocal run_s, steps_run
        order: dict[tuple, list[int]] = {}
        for j, p in enumerate(new_points):
            order.setdefault(_structure_key(p, space), []).append(j)
        results: list[dict | None] = [None] * len(new_points)
        for skey, js in order.items():
            g = group_of(new_points[js[0]])
            st = g.setup
            runs = [(j, s) for j in js for s in seeds]  # point-major: point j's seeds are adjacent
            R = len(runs)
            # Runs that do not fit in memory together are split into chunks (same randomness per run).
            limit = runs_in_memory(g.setup, g.data, budget, len(devices), g.structure)
            if g.one_per_device and not max_parallel:
                limit = min(limit, len(devices))
            size, n_chunks = plan_chunks(R, min(max_parallel or R, limit), len(devices))
            # A later stage reuses a program already compiled for this structure when padding to its
            # batch size wastes at most half of it (compiling costs more than a few padded rows).
            reuse = [z for z in g.loops if size <= z <= 2 * size and (not max_parallel or z <= max_parallel)]
            if reuse:
                size = min(reuse)
                n_chunks = -(-R // size)
            base = dict(st.hparams)
            hp_runs = {k: np.full((R,), v, np.float32) for k, v in base.items()}
            for a in space.vectorized():
                hk = a.path.split(".", 1)[1]
                hp_runs[hk] = np.asarray([new_points[j][a.name] for j, _ in runs], np.float32)
            seeds_runs = np.asarray([s for _, s in runs], np.int32)
            loop, sharding = g.loop(size)
            outs = []
            for c in range(n_chunks):
                idx = np.arange(c * size, (c + 1) * size)
                real = int(np.sum(idx < R))
                idx = np.minimum(idx, R - 1)  # pad with copies of the last run (dropped below)
                state = place_runs(g.init(seeds_runs[idx], {k: v[idx] for k, v in hp_runs.items()}), sharding)
                n_units = len(units)
                # A study without axes in one chunk is a plain run: its checkpoints stay at the top.
                name = "" if (not space.names and n_chunks == 1 and stage == 0) else f"unit{n_units:04d}"
                unit_meta = dict(unit=name, stage=stage, structure=_describe(g.structure).rstrip(" ·"), chunk=c,
                                 points=[len(points) + runs[i][0] for i in idx.tolist()],
                                 seeds=seeds_runs[idx].tolist())
                desc = label if not space.names else (
                    f"{label} · stage {stage} · {_describe(g.structure)}chunk {c + 1}/{n_chunks}")
                opts = g.options.replace(progress=desc if progress else False,
                                         checkpoint=checkpoint.unit(name, unit_meta) if checkpoint else None)
                res = run_loop(loop, state, options=opts)
                run_s += res.timing["run_s"]
                if res.timing["run_s"] > 0:
                    steps_run += res.timing["steps_per_s"] * res.timing["run_s"]
                units.append(unit_meta)
                if checkpoint is not None:
                    checkpoint.record(dict(units=units, stages=_stage_record(points, stages, new_points, stage)))
                # Kept on the host for the test evaluation, without the optimizer state (2-3× the params).
                host_state = to_host(res.state if keep_opt_state else res.state.replace(opt_state=None))
                outs.append((real, res.final, res.history, host_state))
            info = chunks_info.setdefault(skey, dict(structure=g.structure, points=[], runs=0, chunks=0,
                                                     chunk_size=size))
            info["runs"] += R
            info["chunks"] += n_chunks
            info["chunk_size"] = size
            # Concatenate the chunks' real rows back into run order.
            cut = lambda a, n: np.asarray(a)[:n]  # noqa: E731
            final = {k: np.concatenate([cut(o[1][k], o[0]) for o in outs]) for k in outs[0][1]}
            hist = _concat_histories([(o[0], o[2]) for o in outs])
            state_all = jax.tree.map(lambda *xs: np.concatenate([cut(x, o[0]) for x, o in zip(xs, outs)]),
                                     *[o[3] for o in outs])
            for r0, j in enumerate(js):
                rows = slice(r0 * S, (r0 + 1) * S)
                results[j] = dict(
                    final={k: v[rows] for k, v in final.items()},
                    history={k: (v if k in ("eval_step", "stats_step") else v[rows]) for k, v in hist.items()},
                    state=jax.tree.map(lambda a: a[rows], state_all),
                    group=skey,
                )
        if selection.metric not in results[0]["final"]:
            raise ConfigError(f"sweep.select.metric={selection.metric!r} is not reported; available: "
                              f"{', '.join(sorted(results[0]['final']))}")
        scores = []
        for j, p in enumerate(new_points):
            points.append(dict(p))
            stages.append(stage)
            per_point.append(results[j])
            chunks_info[results[j]["group"]]["points"].append(len(points) - 1)
            scores.append(_score(results[j]["final"][selection.metric], selection.statistic))
        return scores

    def cost(point) -> int:
        return S * int(group_of(point).setup.options.num_steps)  # building a structure compiles nothing

    run_search(plan, evaluate_points, cost=cost, higher_is_better=selection.higher_is_better)

    P_ = len(points)
    val_keys = sorted(per_point[0]["final"])
    metrics = {k: np.stack([pp["final"][k] for pp in per_point]).astype(np.float64) for k in val_keys}
    status = np.stack([np.asarray(pp["state"].status) for pp in per_point])
    stop_step = np.stack([np.asarray(pp["state"].stop_step) for pp in per_point])
    loss_last = np.stack([np.asarray(pp["history"]["train/loss"])[:, -1] for pp in per_point])
    scores = np.asarray([_score(metrics[selection.metric][i], selection.statistic) for i in range(P_)])
    selected = _select(scores, points, selection)

    # The test split, once, for the chosen point(s) only.
    test: dict[str, np.ndarray] = {}
    for i in selected:
        g = groups[per_point[i]["group"]]
        out = to_host(g.test_eval(per_point[i]["state"], *g.data.split("test")))
        for k, v in out.items():
            test.setdefault(f"test/{k}", np.full((P_, S), np.nan))[i] = np.asarray(v)
    metrics.update(test)
    metrics.update(weight_statistics([pp["state"].params for pp in per_point]))
    metrics.update(_measurements(per_point, groups, seeds, selected))

    from dlcore.manifest import run_hashes

    hashes = [run_hashes(pp["state"].params, S) for pp in per_point]
    histories = [pp["history"] for pp in per_point]
    states = [pp["state"] if (keep_states or i in selected) else None for i, pp in enumerate(per_point)]
    loops = [lp for g in groups.values() for (lp, _) in g.loops.values()]
    timing = dict(
        wall_s=time.perf_counter() - t_start,
        compile_s=float(sum(lp.compile_s for lp in loops)),
        run_s=run_s,
        steps_per_s=steps_run / run_s if run_s > 0 else math.nan,
        programs=len(loops),
    )
    return StudyResult(space, seeds, selection, points, stages, metrics, status, stop_step, loss_last, histories,
                       hashes, scores, selected, list(chunks_info.values()), timing, states)


def first_stage_points(plan: SearchPlan, build: Build, seeds: Sequence[int] | int | str) -> list[dict]:
    """The points of a study's first stage (``plan`` from :func:`dlcore.sweep.search_plan`), checked
    against the plan's budget, without running anything (builds each structure once to read its
    ``num_steps``; compiles nothing). Raises :class:`ConfigError` when the first stage does not fit."""
    from dlcore.sweep._search import first_stage

    n_seeds = len(parse_seeds(seeds))
    space = plan.space
    steps: dict[tuple, int] = {}

    def cost(point) -> int:
        k = _structure_key(point, space)
        if k not in steps:
            steps[k] = int(build({a.path: point[a.name] for a in space.structural()}).options.num_steps)
        return n_seeds * steps[k]

    return first_stage(plan, cost)


def _stage_record(points: list[dict], stages: list[int], new_points: list[dict], stage: int) -> list[dict]:
    """Points per search stage (finished stages and the one running) for the checkpoint plan."""
    out: dict[int, list] = {}
    for p, s in zip(points, stages):
        out.setdefault(s, []).append(p)
    out[stage] = list(new_points)
    return [dict(stage=s, points=[{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in p.items()}
                                  for p in ps]) for s, ps in sorted(out.items())]


def _concat_histories(parts: list[tuple[int, dict]]) -> dict:
    """Concatenate chunks' histories (first ``n`` runs of each) along the run axis. A chunk whose
    runs all stopped early (early stopping) has fewer steps: it is padded with NaN on the right."""
    longest = max(parts, key=lambda p: len(p[1].get("eval_step", ())))[1]
    out = {}
    for k in longest:
        if k in ("eval_step", "stats_step"):
            out[k] = np.asarray(longest[k])
            continue
        T = np.asarray(longest[k]).shape[1]
        rows = []
        for n, h in parts:
            a = np.asarray(h[k])[:n]
            if a.shape[1] < T:
                a = a.astype(np.result_type(a.dtype, np.float32))
                a = np.concatenate([a, np.full((n, T - a.shape[1]) + a.shape[2:], np.nan, a.dtype)], axis=1)
            rows.append(a)
        out[k] = np.concatenate(rows)
    return out


def _describe(structure: Mapping) -> str:
    if not structure:
        return ""
    return " ".join(f"{k.split('.')[-1]}={v}" for k, v in structure.items()) + " · "


SMALL_WEIGHT = 1e-3  # |w| below this counts as zero in ``weights/sparsity``


def weight_statistics(params_per_point: Sequence) -> dict[str, np.ndarray]:
    """``weights/sparsity`` (fraction of kernel entries with ``|w| < 1e-3``) and ``weights/l2_norm``
    (``√Σ w²`` over kernels), ``[P, S]``, from each point's stacked final parameters ``[S, ...]``.
    Kernels are the leaves with at least 2 dimensions per run (biases and norms left out), as in
    :func:`dlcore.train.weight_penalty`.

    >>> w = {"k": np.asarray([[[0.0, 1.0], [1e-4, -2.0]]]), "b": np.zeros((1, 2))}
    >>> {k: np.round(v, 4).tolist() for k, v in weight_statistics([w]).items()}
    {'weights/sparsity': [[0.5]], 'weights/l2_norm': [[2.2361]]}
    """
    sparsity, norm = [], []
    for params in params_per_point:
        kernels = [np.asarray(a, np.float64) for a in jax.tree.leaves(params) if np.ndim(a) >= 3]
        if not kernels:
            sparsity.append(np.full((len(jax.tree.leaves(params)[0]),), np.nan))
            norm.append(sparsity[-1])
            continue
        flat = np.concatenate([k.reshape(k.shape[0], -1) for k in kernels], axis=1)
        sparsity.append(np.mean(np.abs(flat) < SMALL_WEIGHT, axis=1))
        norm.append(np.sqrt(np.sum(flat**2, axis=1)))
    return {"weights/sparsity": np.stack(sparsity), "weights/l2_norm": np.stack(norm)}


MEASURE_PREFIXES = ("train/", "val/", "test/")


def _measurements(per_point, groups, seeds, selected) -> dict[str, np.ndarray]:
    """``[P, S]`` arrays of the setups' ``measure`` results (NaN where a point has none)."""
    out: dict[str, np.ndarray] = {}
    P, S = len(per_point), len(seeds)
    for i, pp in enumerate(per_point):
        measure = groups[pp["group"]].setup.measure
        if measure is None:
            continue
        for k, v in measure(pp["state"], list(seeds), groups[pp["group"]].data).items():
            if not k.startswith(MEASURE_PREFIXES) or k == "train/loss_last":
                raise ConfigError(f"a study measurement is named {k!r}; names start with train/, val/ or test/ "
                                  "(and train/loss_last is taken)")
            if k.startswith("test/") and i not in selected:
                continue  # the test split is looked at for the chosen points only
            v = np.asarray(v, np.float64)
            if v.shape != (S,):
                raise ConfigError(f"study measurement {k!r} has shape {v.shape}; expected one number per seed ({S},)")
            out.setdefault(k, np.full((P, S), np.nan))[i] = v
    return out


def study_rows(result: StudyResult) -> list[dict]:
    """Tidy rows, one per point × seed: ``point, stage, <axes…>, seed, status, stop_step, selected,
    val/<m>…, test/<m>…`` (test empty except for the chosen points), ``train/loss_last``, the
    setups' ``train/`` measurements, ``weights/sparsity``, ``weights/l2_norm`` and ``params_sha256``."""
    from dlcore.train import STATUS_NAMES

    rows = []
    keys = sorted(k for k in result.metrics if k.startswith("val/")) + sorted(
        k for k in result.metrics if k.startswith("test/"))
    for i, p in enumerate(result.points):
        for j, s in enumerate(result.seeds):
            row = {"point": i, "stage": result.stages[i]}
            row.update({n: p[n] for n in result.space.names})
            st = int(result.status[i, j])
            row.update(seed=int(s), status=STATUS_NAMES.get(st, str(st)), stop_step=int(result.stop_step[i, j]),
                       selected=int(i in result.selected))
            for k in keys:
                v = float(result.metrics[k][i, j])
                row[k] = "" if math.isnan(v) and k.startswith("test/") else v
            row["train/loss_last"] = float(result.train_loss_last[i, j])
            for k in sorted(k for k in result.metrics if k.startswith(("train/", "weights/"))):
                row[k] = float(result.metrics[k][i, j])
            row["params_sha256"] = result.hashes[i][j]
            rows.append(row)
    return rows


def study_history(result: StudyResult) -> dict[str, np.ndarray]:
    """Flat arrays for ``history.npz``: ``point<i>/<key>`` per point, plus ``seeds``."""
    out: dict[str, np.ndarray] = {"seeds": np.asarray(result.seeds)}
    for i, h in enumerate(result.histories):
        for k, v in h.items():
            out[f"point{i}/{k}"] = np.asarray(v)
    return out
