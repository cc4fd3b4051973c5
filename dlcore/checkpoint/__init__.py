"""Checkpoints with orbax: exact resume, restore on other device layouts, faults survived.

Save a run (or a whole vmapped sweep) every N steps and at the end, keeping the last k and the
best by a validation metric; resume from the newest valid checkpoint — bit-exact, since the train
state (with the step and the stream keys) determines the rest of the run; fall back past damaged
steps; load just the parameters for inference. The recipe::

    ckpt = CheckpointManager(run_dir + "/checkpoints", every=500, keep=3,
                             metadata={"seeds": [seed]})
    state, history = ckpt.resume(init_state(recipe, seed, hparams, data.x_train[:1]))
    res = fit(recipe, data, seed, hparams=hparams, num_steps=6000, batch_size=100, eval_every=500,
              state=state, history=history, callbacks=[ckpt.callback(6000)])
    ckpt.close()

``fit(..., checkpoint=CheckpointManager(dir, every=500))`` does the same (the loop resumes, saves
and closes it). A whole sweep is one state (runs on axis 0)::

    res = run_seeds(recipe, data, 8, hparams=hparams, num_steps=6000, batch_size=100, eval_every=500,
                    checkpoint=CheckpointManager(d, every=500, metadata={"seeds": list(range(8))}))

A whole study: ``run_study(..., checkpoint=StudyCheckpoints(run_dir, every=500))`` — one
directory per unit of work plus the search plan (``checkpoints/study.json``); a killed study
resumes where it stopped.

The command line: ``dlcore run EXP --checkpoint-every 500 --keep 3``, ``dlcore run EXP --resume
RUN_DIR [--fallback]``, ``--debug-nans``. Parameters for inference: ``load_params(run_dir, run=i)``.

What is bit-exact: resuming on the same device layout gives the same bytes as never stopping
(the history too). Restoring onto another device count restores the same bytes, but a sweep then
*continued* there may round differently (its per-device batch of runs changes the kernels).
"""

from dlcore.checkpoint._errors import fingerprint, leaf_specs, structure_mismatch, verify_files
from dlcore.checkpoint._manager import CHECKPOINT_SUBDIR, CheckpointManager, Restored
from dlcore.checkpoint._study import PLAN_FILE, StudyCheckpoints, read_plan, unit_dirs
from dlcore.checkpoint._restore import (
    abstract_state,
    checkpoint_dir,
    checkpoint_steps,
    load_params,
    read_metadata,
    restore,
)
