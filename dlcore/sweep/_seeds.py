"""Many seeds as one program: ``vmap`` over the seed axis, seeds split across devices."""

from __future__ import annotations

import dataclasses

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from dlcore.data import Dataset
from dlcore.errors import ConfigError
from dlcore.parallel import (
    SEED_AXIS,
    batch_sharding,
    check_batch_size,
    distribute_dataset,
    placement_of,
    put_global,
    state_sharding,
    sweep_mesh,
)
from dlcore.train import (
    FitResult,
    Loop,
    Recipe,
    RunOptions,
    TrainState,
    broadcast_hparams,
    init_state,
    options_from,
    run_loop,
)


MAX_SEEDS = 100_000
"""Most seeds one command may ask for (a sweep of 4096 MNIST-1D seeds is ordinary; 10⁹ is a typo)."""


def parse_seeds(spec: str | int | Sequence[int], allow_repeats: bool = False) -> list[int]:
    """Seeds from ``8`` (0..7), ``"0:16"`` (a range), ``"3,5,9"`` or a list.

    A count or range is sized before any list is built: more than :data:`MAX_SEEDS` seeds, or
    seeds outside ``[0, 2**31)``, are refused at once (``0:3000000000`` never allocates).

    >>> parse_seeds("2:5"), parse_seeds(3), parse_seeds("1,4")
    ([2, 3, 4], [0, 1, 2], [1, 4])
    """
    usage = "use a count (8), a range (0:16) or a list (1,2,5)"

    def sized(lo: int, hi: int) -> list[int]:
        if hi - lo > MAX_SEEDS:
            raise ConfigError(f"seeds {spec!r} asks for {hi - lo:,} runs, more than the {MAX_SEEDS:,} one command "
                              f"may train; {usage} of at most {MAX_SEEDS:,} seeds (split larger studies into "
                              "several commands)")
        if lo < 0 or hi > 2**31:
            raise ConfigError(f"seeds must lie in [0, 2**31), got {spec!r}")
        return list(range(lo, hi))

    try:
        if isinstance(spec, bool):
            raise TypeError
        if isinstance(spec, (list, tuple, np.ndarray)):
            if len(spec) > MAX_SEEDS:
                raise ConfigError(f"{len(spec):,} seeds are more than the {MAX_SEEDS:,} one command may train")
            seeds = [int(s) for s in spec]
        elif isinstance(spec, (int, np.integer)) or (isinstance(spec, str) and spec.strip().isdigit()):
            seeds = sized(0, int(spec))
        elif ":" in spec:
            a, b = spec.split(":")
            seeds = sized(int(a), int(b))
        else:
            if spec.count(",") >= MAX_SEEDS:
                raise ConfigError(f"seeds {spec[:40]!r}... list more than {MAX_SEEDS:,} seeds; {usage}")
            seeds = [int(s) for s in spec.split(",")]
    except ConfigError:
        raise
    except (TypeError, ValueError, AttributeError):
        raise ConfigError(f"cannot parse seeds {spec!r}; {usage}") from None
    if not seeds:
        raise ConfigError(f"seeds {spec!r} is empty; give at least one seed")
    if not allow_repeats and len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds {spec!r} repeat a seed")
    if any(s < 0 or s >= 2**31 for s in seeds):
        raise ConfigError(f"seeds must lie in [0, 2**31), got {spec!r}")
    return seeds


def init_states(recipe: Recipe, seeds: Sequence[int], hparams: Mapping, x_example) -> TrainState:
    """Initial states of many runs, stacked on axis 0 (run ``i`` = ``seeds[i]``, ``hparams[.][i]``).

    Run ``i``'s initial parameters are bit-identical to ``init_state(recipe, seeds[i], ...)``.
    """
    seeds_arr = jnp.asarray(np.asarray(seeds, dtype=np.int32))
    hp = broadcast_hparams(hparams, len(seeds))
    return jax.jit(jax.vmap(lambda s, h: init_state(recipe, s, h, x_example)))(seeds_arr, hp)


def seed_mesh(num_runs: int, devices: Sequence | None = None) -> Mesh | None:
    """A 1-D ``seed`` mesh over the largest number of devices that divides ``num_runs``.

    On CPU, XLA runs these small ops on one core per device, so splitting independent runs over
    host devices (``--xla_force_host_platform_device_count``) is what uses the other cores; the
    runs need no communication. Returns ``None`` when one device is used.

    Sweeps now place runs with :func:`dlcore.parallel.sweep_mesh` (a 2-D ``(seed, data)`` mesh);
    this 1-D helper is kept for existing callers.
    """
    devices = list(devices if devices is not None else jax.local_devices())
    d = max(k for k in range(1, len(devices) + 1) if num_runs % k == 0)
    if d == 1:
        return None
    return Mesh(np.asarray(devices[:d]), ("seed",), axis_types=(jax.sharding.AxisType.Auto,))


def batch_loop(recipe: Recipe, data: Dataset, num_runs: int, options: RunOptions) -> tuple[Loop, Any]:
    """The compiled loop of ``num_runs`` stacked runs placed on devices, and the runs' state sharding
    (``None`` on one device). :func:`run_batch` uses it; a study reuses one per structure and size.

    Placement: runs over the mesh's ``seed`` axis, each run's batch over its ``data`` axis
    (gradients all-reduced). ``options.mesh`` (from :func:`dlcore.parallel.make_mesh`) fixes it;
    otherwise :func:`dlcore.parallel.sweep_mesh` chooses from ``options.devices`` (default: all
    devices of all processes), with ``seed_devices``/``data_devices`` as overrides.
    """
    mesh = options.mesh
    if mesh is None:
        mesh = sweep_mesh(num_runs, options.batch_size, devices=options.devices, seed_devices=options.seed_devices,
                          data_devices=options.data_devices)
    pl = placement_of(mesh)
    if num_runs % pl.seed:
        raise ConfigError(f"{num_runs} runs cannot be split over a seed axis of {pl.seed} devices; use a mesh "
                          "whose seed size divides the number of runs")
    check_batch_size(options.batch_size, mesh)
    recipe = resolve_conv_impl(recipe, num_runs, mesh)
    sharding = per_run_batch = block_every = None
    if pl.num_devices > 1 or jax.process_count() > 1:
        sharding = state_sharding(mesh, batched=True)
        # Shared, not copied per seed. When the data axis spans processes each process holds (and reads)
        # only its rows of the training split; otherwise every device needs them all.
        crosses = any(len({d.process_index for d in row}) > 1 for row in mesh.devices)
        data = distribute_dataset(data, mesh, shard_train=crosses)
        if pl.data > 1:
            per_run_batch = batch_sharding(mesh)
            # CPU all-reduce rendezvous: keep <= 50 queued steps with a collective (measured abort at ~300).
            block_every = 50 if next(iter(mesh.devices.flat)).platform == "cpu" else None
    loop = Loop(recipe, data, options, batched=True, state_sharding=sharding, batch_sharding=per_run_batch,
                spmd_axis_name=SEED_AXIS if sharding is not None else None, block_every=block_every)
    return loop, sharding


def resolve_conv_impl(recipe: Recipe, num_runs: int, mesh=None) -> Recipe:
    """``recipe`` with ``conv_impl="auto"`` made concrete: ``"matmul"`` for several runs per CPU device.

    >>> from dlcore.models import ConvBase1D
    >>> from dlcore.optim import optimizer_fn
    >>> resolve_conv_impl(Recipe(ConvBase1D(), optimizer_fn("sgd")), 8).conv_impl
    'matmul'
    """
    if recipe.conv_impl != "auto":
        return recipe
    devices = list(mesh.devices.flat) if mesh is not None else jax.devices()
    runs_per_device = num_runs / (placement_of(mesh).seed if mesh is not None else 1)
    cpu = devices[0].platform == "cpu"
    return dataclasses.replace(recipe, conv_impl="matmul" if cpu and runs_per_device > 1 else "native")


def runs_one_per_device(recipe: Recipe, hparams: Mapping, x_example, devices=None) -> bool:
    """Whether a study should train this model's runs one per device at a time instead of vmapped:
    on CPU devices, for a model that runs a recurrent cell (a Flax ``RNNCellBase``, found by an
    abstract initialisation).

    Measured on the 2-core CPU (``benchmarks/seed_sweep.py --models``): a vmapped GRU sweep ran
    at 0.60× (loaded) and 0.93× (quiet) the seed-steps/s of the same seeds one after another — XLA:CPU turns the vmapped
    scan's small per-step matmuls into batched dots slower than their sum — while MLP and (grouped)
    CNN sweeps are faster vmapped. ``sweep.max_parallel`` overrides the rule.

    >>> from dlcore.nn import MLP, RNNModel
    >>> from dlcore.optim import optimizer_fn
    >>> x1 = np.zeros((1, 40), np.float32)
    >>> hp = {"learning_rate": 1e-2}
    >>> cpu = jax.devices("cpu")
    >>> runs_one_per_device(Recipe(RNNModel(hidden_size=8, cell="gru"), optimizer_fn("adam")), hp, x1, cpu)
    True
    >>> runs_one_per_device(Recipe(MLP(widths=(8,)), optimizer_fn("adam")), hp, x1, cpu)
    False
    """
    devices = list(devices) if devices is not None else jax.devices()
    if devices[0].platform != "cpu":
        return False
    found = []

    def spy(next_fun, args, kwargs, context):
        found.append(isinstance(context.module, nn.RNNCellBase))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(spy):
        jax.eval_shape(lambda: init_state(recipe, 0, hparams, x_example))
    return any(found)


def place_runs(state: TrainState, sharding) -> TrainState:
    """Put a stacked state on the devices of ``sharding`` (the default device when ``None``)."""
    return put_global(state, sharding) if sharding is not None else jax.device_put(state)


def run_batch(
    recipe: Recipe,
    data: Dataset,
    state: TrainState,
    options: RunOptions | None = None,
    *,
    history: dict | None = None,
    **kwargs,
) -> FitResult:
    """Run a batch of stacked states (axis 0) as one compiled program, split over devices.

    ``options`` (:class:`dlcore.train.RunOptions`, or its fields as keywords) as for ``fit``; hooks
    such as early stopping act per run (each keeps its own best parameters and stop step; the loop
    ends when all have stopped); a ``checkpoint`` resumes the batch from its newest valid checkpoint
    (restored onto this placement) and saves when due. Placement: :func:`batch_loop`.
    """
    options = options_from(options, kwargs, "run_batch")
    num_runs = int(jax.tree.leaves(state.step)[0].shape[0])
    loop, sharding = batch_loop(recipe, data, num_runs, options)
    return run_loop(loop, place_runs(state, sharding), history=history)


def run_seeds(
    recipe: Recipe,
    data: Dataset,
    seeds: Sequence[int] | int | str,
    *,
    hparams: Mapping,
    options: RunOptions | None = None,
    **kwargs,
) -> FitResult:
    """Train many seeds as one program (``vmap`` over seeds; dataset shared, not copied).

    ``options`` (:class:`dlcore.train.RunOptions`, or its fields as keywords: ``num_steps``,
    ``batch_size``, ``eval_every``, ``hooks``, ``checkpoint``, ``mesh``…) as for ``fit``.
    Seeds are split over the devices when their number allows, and each seed's batch over the
    devices left (GPU/TPU; on CPU only with ``data_devices``) — see
    :func:`dlcore.parallel.plan_placement`. ``hparams`` values may be scalars (shared) or ``[S]``
    arrays (one per run).

    A seed's initial parameters, data order and dropout masks are bit-identical to the same seed
    run alone; its *trained* weights agree only to floating-point noise (batched kernels round
    differently, and the difference grows along the trajectory), so compare results in
    distribution, not bit for bit, across sweep sizes.

    Returns:
      :class:`dlcore.train.FitResult` with a leading seed axis everywhere.

    >>> res = run_seeds(recipe, data, 8, hparams={"learning_rate": 1e-2},
    ...                 num_steps=6000, batch_size=100, eval_every=500)   # doctest: +SKIP
    >>> res.final["test/accuracy"].shape                                  # doctest: +SKIP
    (8,)
    """
    options = options_from(options, kwargs, "run_seeds")
    seeds = parse_seeds(seeds, allow_repeats=True)  # a seed may repeat with other hyperparameters
    state = init_states(recipe, seeds, hparams, data.x_train[:1])
    return run_batch(recipe, data, state, options)
