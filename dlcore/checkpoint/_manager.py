"""Saving train states with orbax: every N steps and at the end, keep the last k and the best.

A checkpoint step ``<dir>/<step>/`` holds three orbax items:

- ``state``: the whole :class:`dlcore.train.TrainState` (params, model state, optimizer state, step,
  stream keys — which with the step fix the data sampler's position —, hyperparameter arrays,
  status/stop step, and ``extra`` such as early-stopping counters), for one run or a stacked sweep;
- ``history``: the metric history so far (so a resumed run reports the whole curve);
- ``meta``: JSON — dlcore version, step, the state's structure (leaf paths, dtypes, shapes) and its
  fingerprint, the history's keys, per-run status, and the caller's metadata (seeds, config, …).

Writes are atomic: orbax writes into ``<step>.orbax-checkpoint-tmp-*`` and renames it to
``<step>`` only when every file is written, so a crash mid-write leaves the previous checkpoint
usable (the temporary directory is ignored by restore and removed by the next manager). After the
commit, ``dlcore_files.json`` records each file's size and CRC-32 so later damage is named.

Saving is asynchronous by default: the training thread copies the state to host memory (it is
donated to the next compiled chunk) and a background thread writes it, so training overlaps I/O.
When writes are slower than the saving interval, a newer request supersedes one still waiting
(training does not stall; the newest state is what matters for resuming).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import os
import signal
import threading
import time
import warnings
from typing import Any, Callable, Mapping, NamedTuple

import jax
import numpy as np

from dlcore.checkpoint import _errors as E
from dlcore.errors import CheckpointError, remove_quietly, storage_error
from dlcore.host import host_step as _host_step, to_host as _to_host
from dlcore.parallel import barrier

ITEMS = ("state", "history", "meta")
CHECKPOINT_SUBDIR = "checkpoints"  # a run directory's checkpoints live here

# Test-only fault injection (never set in normal use): "kill-in-commit:STEP" SIGKILLs the process
# after every file of checkpoint STEP is written but before its commit (rename); "pause-in-commit:STEP"
# stalls the writer there instead (a test then kills the process mid-write);
# "sleep-after-save:SECONDS" pauses the writer after each commit (a window to kill the process).
TEST_FAULT_ENV = "DLCORE_CHECKPOINT_TEST_FAULT"


def _remove_partial_step(directory: str, step: int) -> None:
    """Remove the temporary directories of ``step`` and the step itself if it lacks its file list."""
    import glob

    for tmp in glob.glob(os.path.join(glob.escape(directory), f"{step}.orbax-checkpoint-tmp*")):
        remove_quietly(tmp)
    final = os.path.join(directory, str(step))
    if os.path.isdir(final) and not os.path.exists(os.path.join(final, E.FILE_LIST)):
        remove_quietly(final)  # committed by orbax but its file list could not be written
    for tmp in glob.glob(os.path.join(glob.escape(final), f"{E.FILE_LIST}.tmp*")):
        remove_quietly(tmp)


class _QuietOrbaxThreadErrors:
    """Drops the tracebacks orbax's writer threads log and print when a write fails.

    The same failure is raised once, as a :class:`CheckpointError` naming the step, by the
    manager; tensorstore's late callbacks into orbax's closed event loop ("Event loop is closed")
    are noise of the same failure.
    """

    installed = False

    @classmethod
    def install(cls) -> None:
        import logging
        import sys

        if cls.installed:
            return
        cls.installed = True

        class _Filter(logging.Filter):
            def filter(self, record):
                return "_SignalingThread.run() raised an exception" not in str(record.msg)

        logging.getLogger("absl").addFilter(_Filter())
        previous = sys.unraisablehook

        def hook(u):
            if isinstance(u.exc_value, RuntimeError) and "Event loop is closed" in str(u.exc_value):
                return
            previous(u)

        sys.unraisablehook = hook


class Restored(NamedTuple):
    """A restored checkpoint.

    Attributes:
      state: the train state (the target's structure and shardings), or nested dicts of numpy
        arrays when restored without a target.
      history: the metric history at that step (``{name: np.ndarray}``).
      step: the step restored.
      metadata: the checkpoint's ``meta`` JSON.
      skipped: ``[(step, message)]`` newer steps that were not usable (with ``fallback=True``).
    """

    state: Any
    history: dict
    step: int
    metadata: dict
    skipped: list


def host_step(state) -> int:
    """The (common) step of a state or a stacked batch of states, as an int."""
    return _host_step(state, CheckpointError)


def _fault() -> tuple[str, str]:
    spec = os.environ.get(TEST_FAULT_ENV, "")
    kind, _, arg = spec.partition(":")
    return kind, arg


def _temporary_path_class():
    """orbax's atomic-rename path, or (test-only) one that dies before committing a chosen step."""
    kind, arg = _fault()
    if kind not in ("kill-in-commit", "pause-in-commit"):
        return None
    from orbax.checkpoint._src.path import atomicity

    class _FaultBeforeCommit(atomicity.AtomicRenameTemporaryPath):
        async def finalize(self, *args, **kwargs):
            if self.get_final().name == arg:  # all files are written; the rename has not happened
                if kind == "kill-in-commit":
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(600)
            return await super().finalize(*args, **kwargs)

    return _FaultBeforeCommit


def _orbax_manager(directory: str, keep: int, best_mode: str | None):
    import orbax.checkpoint as ocp
    from orbax.checkpoint import checkpoint_managers as cm

    extra = {}
    if jax.process_count() > 1:
        # Process 0 writes the gathered host copy; the others never call orbax. orbax cannot create the
        # directory for a subset of processes (create=True raises), so the caller creates it first.
        extra["multiprocessing_options"] = ocp.options.MultiprocessingOptions(
            primary_host=0, active_processes={0}, barrier_sync_key_prefix="dlcore_checkpoint")

    policies = [cm.LatestN(n=keep)]
    if best_mode is not None:
        # BestN keeps the n largest after sorting; reverse=True sorts descending (smallest kept).
        policies.append(cm.BestN(get_metric_fn=lambda m: m["best"], reverse=best_mode == "min", n=1,
                                 keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        enable_async_checkpointing=False,  # our own writer thread does the overlap (see save)
        preservation_policy=cm.AnyPreservationPolicy(policies),
        cleanup_tmp_directories=True,  # half-written steps of a killed run
        create=jax.process_count() == 1,
        temporary_path_class=_temporary_path_class(),
        **extra,
    )
    return ocp.CheckpointManager(directory, options=options, item_names=ITEMS)


class CheckpointManager:
    """Checkpoints of one training run or a whole vmapped sweep, in ``directory``.

    Args:
      directory: where the step directories go (created; e.g. ``<run_dir>/checkpoints``).
      every: save when training crosses a multiple of ``every`` steps (checked after each compiled
        chunk, so saves land on chunk ends); ``0``: only at the end.
      keep: keep the ``keep`` newest checkpoints ...
      best_metric, best_mode: ... plus the best one by the last validation ``best_metric``
        (mean over the runs that did not diverge); ``best_metric=None`` keeps only the newest.
      metadata: JSON-able facts stored with every checkpoint (seeds, config, experiment);
        :meth:`resume` checks that ``seeds`` agree.
      async_save: write in a background thread (training continues meanwhile).
      fallback: :meth:`resume` skips damaged newest steps (see there).

    A :class:`dlcore.train.Checkpointer`: pass it as ``checkpoint=`` to ``fit``/``run_seeds``/
    ``run_batch`` and the loop resumes from it, saves when due and closes it::

        >>> res = fit(recipe, data, 0, hparams=hp, num_steps=6000, batch_size=100, eval_every=500,
        ...           checkpoint=CheckpointManager("/tmp/ck", every=500))      # doctest: +SKIP

    A run whose every seed has diverged is not saved again after the first checkpoint that records
    it, so the last finite states stay.

    Multi-host: every process creates the manager and calls ``save``/``resume`` together (the state is
    gathered to host memory, a collective); process 0 writes, every process restores its own shards.
    The directory must be on a file system all processes share.
    """

    def __init__(
        self,
        directory: str,
        *,
        every: int = 0,
        keep: int = 3,
        best_metric: str | None = "accuracy",
        best_mode: str = "max",
        metadata: Mapping[str, Any] | None = None,
        async_save: bool = True,
        fallback: bool = False,
    ):
        if isinstance(every, bool) or int(every) != every or every < 0:
            raise CheckpointError(f"checkpoint every={every!r} must be an integer >= 0 (0: only at the end)")
        if isinstance(keep, bool) or int(keep) != keep or keep < 1:
            raise CheckpointError(f"keep={keep!r} checkpoints must be an integer >= 1")
        if best_mode not in ("min", "max"):
            raise CheckpointError(f"best_mode must be 'min' or 'max', got {best_mode!r}")
        self.directory = os.path.abspath(os.fspath(directory))
        self.every, self.keep = int(every), int(keep)
        self.best_metric, self.best_mode = best_metric, best_mode
        self.metadata = E.as_jsonable(dict(metadata or {}))
        self.async_save, self.fallback = async_save, fallback
        # With several processes (multi-host), every process gathers the state (a collective), process 0
        # writes it; every process restores its own shards. The directory must be on a file system all
        # processes share.
        self._writer = jax.process_index() == 0
        self._mngr = None
        try:
            if self._writer:
                os.makedirs(self.directory, exist_ok=True)
                self._mngr = _orbax_manager(self.directory, self.keep, best_mode if best_metric else None)
        except OSError as e:
            raise CheckpointError(
                f"cannot create the checkpoint directory {self.directory}: {e.strerror or e}; "
                "free space or choose a writable place"
            ) from None
        finally:
            barrier("checkpoint-directory")  # the others list steps only once process 0 has cleaned up
        if not os.path.isdir(self.directory):
            raise CheckpointError(
                f"process {jax.process_index()} cannot see the checkpoint directory {self.directory} that process 0 "
                "created; put the run directory (--out) on a file system every process shares"
            )
        _QuietOrbaxThreadErrors.install()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dlcore-checkpoint")
        self._pending: concurrent.futures.Future | None = None  # the writer thread's current run
        self._lock = threading.Lock()
        self._queue: list[tuple] = []  # requests the writer has not started (at most 2)
        self._draining = self._writing = False
        self.skipped_steps: list[int] = []  # requests superseded by a newer one while the disk was busy
        steps = self.steps()
        self._last_step = steps[-1] if steps else -1
        self._last_all_stopped = False
        self.save_s = 0.0  # time the training thread spent in save() (the cost seen by training)

    # -- saving ---------------------------------------------------------------------------------

    @property
    def last_step(self) -> int:
        """The step last saved or resumed from (``-1`` if none)."""
        return self._last_step

    def steps(self) -> list[int]:
        """Committed steps in the directory, ascending (half-written ones are not listed)."""
        from dlcore.checkpoint._restore import checkpoint_steps

        return checkpoint_steps(self.directory)

    def callback(self, num_steps: int | None = None) -> Callable:
        """A ``run_loop`` callback ``(state, history, step)``: save every ``every`` steps and at ``num_steps``."""

        def cb(state, history, step):
            due = self.every > 0 and step // self.every > max(self._last_step, 0) // self.every
            if num_steps is not None and step >= num_steps:
                due = True
            if due and step > self._last_step:
                self.save(state, history)

        return cb

    def save(self, state, history: Mapping | None = None, *, force: bool = False) -> bool:
        """Save ``state`` (and the history so far) at its step; returns whether a save was taken.

        The state is copied to host memory before returning (the next compiled chunk may donate
        its buffers). With ``async_save`` a background thread writes it; while that thread is busy
        with an earlier step, a newer request replaces one still waiting (training never stalls on
        a slow disk; ``skipped_steps`` lists the superseded ones). A step that is already saved is
        not written again. A run whose every seed stopped or diverged is saved
        once (recording that), then not again unless ``force``: its last finite state is kept.
        """
        t0 = time.perf_counter()
        step = host_step(state)
        self._raise_failed()
        status = np.asarray(_to_host(state.status))
        all_stopped = bool(np.all(status != 0))
        if step == self._last_step or step in self.steps():
            return False
        if all_stopped and self._last_all_stopped and not force:
            return False
        host_state = _to_host(state)
        hist = {k: np.array(v) for k, v in (history or {}).items()}  # copies: the loop keeps appending
        self._last_step, self._last_all_stopped = step, all_stopped
        job = (step, host_state, hist, status)
        if not self._writer:  # another process of a multi-host run: it only joined the gather
            self.save_s += time.perf_counter() - t0
            return True
        if self.async_save:
            with self._lock:
                # A request waiting behind a write in progress is superseded by this newer one;
                # otherwise it queues (so two saves in a row are both written).
                if self._queue and (self._writing or len(self._queue) >= 2):
                    self.skipped_steps.append(self._queue.pop()[0])
                self._queue.append(job)
                if not self._draining:
                    self._draining = True
                    self._pending = self._pool.submit(self._drain)
        else:
            self._write(*job)
        self.save_s += time.perf_counter() - t0
        return True

    def _drain(self) -> None:
        """Writer thread: write the queued request, then any that arrived meanwhile."""
        try:
            while True:
                with self._lock:
                    if not self._queue:
                        self._draining = self._writing = False
                        return
                    job = self._queue.pop(0)
                    self._writing = True
                self._write(*job)
                with self._lock:
                    self._writing = False
        except BaseException:
            with self._lock:
                self._draining = self._writing = False
                self._queue.clear()
            raise

    def _meta(self, host_state, hist, step) -> dict:
        specs = E.leaf_specs(host_state)
        status = np.asarray(host_state.status)
        return {
            "format": E.FORMAT,
            "dlcore_version": E.dlcore_version(),
            "step": step,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "fingerprint": E.fingerprint(specs),
            "leaves": specs,
            "num_runs": int(status.shape[0]) if status.ndim else None,
            "status": status.tolist(),
            "stop_step": np.asarray(host_state.stop_step).tolist(),
            "history_keys": {f"h{i}": [k, list(v.shape), v.dtype.name] for i, (k, v) in enumerate(sorted(hist.items()))},
            "metadata": self.metadata,
        }

    def _best_metrics(self, status, hist) -> dict | None:
        if not self.best_metric:
            return None
        worst = -np.inf if self.best_mode == "max" else np.inf
        key = f"val/{self.best_metric}"
        value = worst
        if key in hist and hist[key].size:
            last = np.asarray(hist[key])[..., -1].reshape(-1)
            ok = (status.reshape(-1) != 2) & np.isfinite(last)  # DIVERGED runs do not count
            if ok.any():
                value = float(np.mean(last[ok]))
        return {"best": value if np.isfinite(value) else (-1e30 if self.best_mode == "max" else 1e30)}

    def _write(self, step, host_state, hist, status) -> None:
        import orbax.checkpoint as ocp

        meta = self._meta(host_state, hist, step)
        metrics = self._best_metrics(status, hist)


        arrays = {}
        for name, (key, shape, _) in meta["history_keys"].items():
            if int(np.prod(shape)) > 0:  # zero-size arrays are rebuilt from their shape on restore
                arrays[name] = hist[key]
        items = dict(state=ocp.args.StandardSave(host_state), meta=ocp.args.JsonSave(meta))
        if arrays:  # orbax refuses an empty item
            items["history"] = ocp.args.StandardSave(arrays)
        final = os.path.join(self.directory, str(step))
        try:
            self._mngr.save(
                step,
                args=ocp.args.Composite(**items),
                metrics=metrics,
                force=True,
            )
            E.write_file_list(final)
        except Exception as e:  # noqa: BLE001 - orbax/tensorstore raise ValueError, OSError, RuntimeError ...
            # A full disk or a file-size limit: tensorstore reports RESOURCE_EXHAUSTED / OUT_OF_RANGE as a
            # ValueError from orbax's threads. Remove this step's temporary (or uncommitted) files so
            # only whole checkpoints remain; the earlier ones are untouched.
            _remove_partial_step(self.directory, step)
            prev = [s for s in self.steps() if s < step]
            kept = (f" (the checkpoint at step {prev[-1]} is intact; resume from it)" if prev
                    else " (no earlier checkpoint)")
            raise CheckpointError(str(storage_error(final, e, "write checkpoint", kept))) from None
        kind, arg = _fault()
        if kind == "sleep-after-save":
            time.sleep(float(arg))

    def _raise_failed(self) -> None:
        if self._pending is not None and self._pending.done():
            fut, self._pending = self._pending, None
            fut.result()  # re-raises the writer's CheckpointError in the training thread

    def wait(self) -> None:
        """Block until every requested write is committed; re-raise a writer error."""
        while self._pending is not None:
            fut = self._pending
            fut.result()
            with self._lock:
                if self._pending is fut and not self._draining:
                    self._pending = None

    def finish(self, state, history: Mapping | None = None) -> None:
        """Save the final state if its step is not saved yet, and wait for the writes."""
        self.save(state, history)
        self.wait()

    def close(self) -> None:
        """Wait for pending writes and release orbax's resources."""
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)
            if self._mngr is not None:
                self._mngr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- restoring ------------------------------------------------------------------------------

    def restore(self, target=None, **kwargs) -> Restored:
        """:func:`dlcore.checkpoint.restore` from this directory (waits for pending writes first)."""
        from dlcore.checkpoint._restore import restore

        self.wait()
        return restore(self.directory, target, **kwargs)

    def resume(self, target, history: Mapping | None = None, *, fallback: bool | None = None, sharding=None,
               check: tuple[str, ...] = ("seeds",)):
        """``(state, history)`` from the newest valid checkpoint, or ``(target, history)`` if none.

        Args:
          target: the state this program would start from (concrete or abstract): it gives the
            structure, dtypes and shapes (and, unless ``sharding``, the shardings) to restore into.
            If it holds concrete ``hparams`` they must equal the checkpoint's.
          fallback: skip damaged newest steps (they are renamed ``<step>.corrupt-<time>``, kept
            for inspection) and continue from the newest valid one.
          check: metadata keys that must agree between this manager and the checkpoint.
        """
        if not self.steps():
            return target, (dict(history) if history is not None else None)
        fallback = self.fallback if fallback is None else fallback
        r = self.restore(target, fallback=fallback, sharding=sharding)
        barrier("checkpoint-restored")  # every process has read the step before process 0 renames damaged ones
        for step, msg in r.skipped:
            src = os.path.join(self.directory, str(step))
            dst = f"{src}.corrupt-{int(time.time())}"
            if self._writer:
                os.replace(src, dst)
            warnings.warn(f"checkpoint step {step} is not usable ({msg}); moved to {dst}, resuming from step {r.step}",
                          RuntimeWarning, stacklevel=2)
        if r.skipped and self._mngr is not None:
            self._mngr.reload()
        saved = r.metadata.get("metadata", {})
        for k in check:
            if k in saved and k in self.metadata and saved[k] != self.metadata[k]:
                raise CheckpointError(
                    f"checkpoint {os.path.join(self.directory, str(r.step))} is of {k}={saved[k]}, this run has "
                    f"{k}={self.metadata[k]}; resume with the same {k} or use another directory"
                )
        _check_hparams(target, r.state, os.path.join(self.directory, str(r.step)))
        self._last_step = r.step
        self._last_all_stopped = bool(np.all(np.asarray(_to_host(r.state.status)) != 0))
        return r.state, r.history


def _check_hparams(target, restored, where: str) -> None:
    hp = getattr(target, "hparams", None)
    if not hp or not all(isinstance(v, (jax.Array, np.ndarray)) for v in jax.tree.leaves(hp)):
        return
    mine, theirs = _to_host(hp), _to_host(restored.hparams)
    bad = [k for k in mine if k in theirs and not np.array_equal(np.asarray(mine[k]), np.asarray(theirs[k]))]
    if bad:
        k = bad[0]

        def fmt(a):
            a = np.asarray(a)
            return f"{a.item():.6g}" if a.ndim == 0 else "[" + ", ".join(f"{x:.6g}" for x in a.ravel()) + "]"

        raise CheckpointError(
            f"checkpoint {where} has {k}={fmt(theirs[k])}, this run asks for {k}={fmt(mine[k])}; "
            "resume with the hyperparameters that wrote it or use another directory"
        )
