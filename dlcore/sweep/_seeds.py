"""Many seeds as one program: ``vmap`` over the seed axis, seeds split across devices."""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from dlcore.data import Dataset
from dlcore.errors import ConfigError
from dlcore.train import FitResult, Loop, Recipe, TrainState, init_state, run_loop


def parse_seeds(spec: str | int | Sequence[int], allow_repeats: bool = False) -> list[int]:
    """Seeds from ``8`` (0..7), ``"0:16"`` (a range), ``"3,5,9"`` or a list.

    >>> parse_seeds("2:5"), parse_seeds(3), parse_seeds("1,4")
    ([2, 3, 4], [0, 1, 2], [1, 4])
    """
    try:
        if isinstance(spec, (list, tuple, np.ndarray)):
            seeds = [int(s) for s in spec]
        elif isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
            seeds = list(range(int(spec)))
        elif ":" in spec:
            a, b = spec.split(":")
            seeds = list(range(int(a), int(b)))
        else:
            seeds = [int(s) for s in spec.split(",")]
    except (TypeError, ValueError):
        raise ConfigError(
            f"cannot parse seeds {spec!r}; use a count (8), a range (0:16) or a list (1,2,5)"
        ) from None
    if not seeds:
        raise ConfigError(f"seeds {spec!r} is empty; give at least one seed")
    if not allow_repeats and len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds {spec!r} repeat a seed")
    if any(s < 0 or s >= 2**31 for s in seeds):
        raise ConfigError(f"seeds must lie in [0, 2**31), got {spec!r}")
    return seeds


def broadcast_hparams(hparams: Mapping, num_runs: int) -> dict[str, jax.Array]:
    """Each hyperparameter as a ``float32[num_runs]`` array (scalars are repeated)."""
    out = {}
    for k, v in dict(hparams).items():
        a = np.asarray(v, dtype=np.float32)
        if a.ndim == 0:
            a = np.full((num_runs,), a, np.float32)
        if a.shape != (num_runs,):
            raise ConfigError(f"hyperparameter {k!r} has shape {a.shape}; expected a scalar or ({num_runs},)")
        out[k] = jnp.asarray(a)
    return out


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
    """
    devices = list(devices if devices is not None else jax.local_devices())
    d = max(k for k in range(1, len(devices) + 1) if num_runs % k == 0)
    if d == 1:
        return None
    return Mesh(np.asarray(devices[:d]), ("seed",), axis_types=(jax.sharding.AxisType.Auto,))


def run_batch(
    recipe: Recipe,
    data: Dataset,
    state: TrainState,
    *,
    num_steps: int,
    batch_size: int,
    eval_every: int | None = None,
    eval_batch_size: int | None = None,
    history: dict | None = None,
    devices: Sequence | None = None,
    evaluate_test: bool = True,
    progress: bool | str = True,
    callbacks=(),
    stats_fn=None,
    stats_every: int = 0,
) -> FitResult:
    """Run a batch of stacked states (axis 0) as one compiled program, split over devices."""
    num_runs = int(jax.tree.leaves(state.step)[0].shape[0])
    mesh = seed_mesh(num_runs, devices)
    sharding = None
    if mesh is not None:
        sharding = NamedSharding(mesh, P("seed"))
        state = jax.device_put(state, sharding)
        data = jax.device_put(data, NamedSharding(mesh, P()))  # shared, not copied per seed
    loop = Loop(
        recipe, data, batch_size=batch_size, chunk_size=eval_every or num_steps, batched=True,
        eval_batch_size=eval_batch_size, state_sharding=sharding, stats_fn=stats_fn, stats_every=stats_every,
    )
    return run_loop(
        loop, state, num_steps, history=history, evaluate_test=evaluate_test, progress=progress, callbacks=callbacks
    )


def run_seeds(
    recipe: Recipe,
    data: Dataset,
    seeds: Sequence[int] | int | str,
    *,
    hparams: Mapping,
    num_steps: int,
    batch_size: int,
    eval_every: int | None = None,
    eval_batch_size: int | None = None,
    devices: Sequence | None = None,
    evaluate_test: bool = True,
    progress: bool | str = True,
    callbacks=(),
    stats_fn=None,
    stats_every: int = 0,
) -> FitResult:
    """Train many seeds as one program (``vmap`` over seeds; dataset shared, not copied).

    Seeds are split over the local devices when their number allows (see :func:`seed_mesh`).
    ``hparams`` values may be scalars (shared) or ``[S]`` arrays (one per run).

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
    seeds = parse_seeds(seeds, allow_repeats=True)  # a seed may repeat with other hyperparameters
    state = init_states(recipe, seeds, hparams, data.x_train[:1])
    return run_batch(
        recipe, data, state, num_steps=num_steps, batch_size=batch_size, eval_every=eval_every,
        eval_batch_size=eval_batch_size, devices=devices, evaluate_test=evaluate_test,
        progress=progress, callbacks=callbacks, stats_fn=stats_fn, stats_every=stats_every,
    )
