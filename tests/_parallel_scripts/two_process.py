"""One of two real processes training data-parallel over localhost (JAX runtime + gloo collectives).

Usage: python two_process.py PROCESS_ID PORT OUT_DIR
Each process has one CPU device; the mesh (seed=1, data=2) spans both. Each process reads only its
half of the training rows; only process 0 writes OUT_DIR/params.npy and OUT_DIR/result.json.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

pid, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 1)  # one device per process (before the backend starts)

from dlcore import parallel as par  # noqa: E402

info = par.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid, timeout_s=60)

import numpy as np  # noqa: E402

from dlcore.sweep import run_seeds  # noqa: E402


class RowRecorder:
    """An array-like that records which training rows this process reads."""

    def __init__(self, a):
        self.a, self.shape, self.read = a, a.shape, []

    def __getitem__(self, sl):
        self.read.append([sl.start, sl.stop])
        return self.a[sl]


arr = common.arrays()
xr, yr = RowRecorder(arr["x_train"]), RowRecorder(arr["y_train"])
mesh = par.make_mesh(1, 2)
data = par.distribute_dataset(common.dataset(x_train=xr, y_train=yr), mesh, shard_train=True)
result = run_seeds(common.recipe(), data, [0], hparams=common.HPARAMS, mesh=mesh, evaluate_test=False, **common.RUN)
params = par.to_host(result.state.params)
summary = {
    "process": info.process_id, "num_processes": info.num_processes, "devices": jax.device_count(),
    "local_devices": jax.local_device_count(), "rows_read": xr.read, "val_acc": float(result.final["val/accuracy"][0]),
}
print(json.dumps(summary), flush=True)


@par.main_process_only
def write():
    np.save(os.path.join(out, "params.npy"), common.flat(params))
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(summary, f)


write()
jax.distributed.shutdown()
