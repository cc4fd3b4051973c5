"""Scale out: seeds and batch shards on a ``(seed, data)`` device mesh, ``pmap``, multi-host.

* :func:`plan_placement`, :func:`make_mesh`, :func:`sweep_mesh` — where a sweep's seeds and batch
  shards go (seeds first; data parallelism over the rest on GPU/TPU; overridable).
* :func:`data_parallel_train_step` (``jit`` + named shardings), :func:`shard_map_train_step`
  (explicit collectives), :func:`pmap_train_step` (the ``pmap`` idiom) — the same results.
* :class:`SyncBatchNorm`, :func:`global_moments` — batch norm over the global batch.
* :func:`initialize`, :func:`is_main_process`, :func:`barrier`, :func:`distribute_dataset`, :func:`to_host` — multi-host.

Sweeps use all of this through :func:`dlcore.sweep.run_seeds` (``data_devices=``, ``seed_devices=``).
See ``docs/scaling.md``.
"""

from dlcore.parallel._batchnorm import SyncBatchNorm, batchnorm_interceptor, global_moments, normalize
from dlcore.parallel._data_parallel import (
    check_batch_size,
    data_parallel_train_step,
    replicate,
    shard_batch,
    shard_map_train_step,
    shard_states,
)
from dlcore.parallel._distributed import (
    DistributedInfo,
    barrier,
    broadcast_string,
    detect_cluster,
    distribute_dataset,
    initialize,
    is_main_process,
    main_process_only,
    put_global,
    shard_rows,
    to_host,
    wait_for_coordinator,
)
from dlcore.parallel._mesh import (
    DATA_AXIS,
    SEED_AXIS,
    Placement,
    batch_sharding,
    describe,
    make_mesh,
    placement_of,
    plan_placement,
    replicated,
    state_sharding,
    sweep_mesh,
)
from dlcore.parallel._pmap import (
    pmap_train_step,
    replicate_for_pmap,
    split_for_pmap,
    split_uneven_for_pmap,
    unreplicate,
)
from dlcore.parallel._sharded import (
    dropout_interceptor,
    global_batch_semantics,
    global_index,
    shard_offset,
    make_sharded_train_step,
)
