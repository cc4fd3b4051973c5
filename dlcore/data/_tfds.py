"""Reading prepared TFDS classification datasets into NumPy arrays through ``tfds.data_source``."""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from dlcore.errors import DataError

# Datasets that dlcore generates locally on first use (no download).
_LOCAL_BUILDERS = ("mnist1d", "digits")


def default_data_dir(data_dir: str | None = None) -> str:
    """``data_dir`` if given, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
    if data_dir:
        return os.path.expanduser(data_dir)
    return os.path.expanduser(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))


def _prepare_local(name: str, data_dir: str) -> None:
    if name == "mnist1d":
        from dlcore.data._mnist1d import prepare_mnist1d

        prepare_mnist1d(data_dir)
    elif name == "digits":
        from dlcore.data import _digits  # added by the data-handling work; optional

        _digits.prepare_digits(data_dir)


class Records:
    """A split's records read on demand: ``len(r)`` and ``r.take(indices) -> (x, y)`` (only those rows).

    What :func:`load_tfds_arrays` returns for the splits in ``lazy``: a multi-host process reads
    just the training rows its devices hold.
    """

    def __init__(self, source, x_key: str, y_key: str):
        self.source, self.x_key, self.y_key = source, x_key, y_key

    def __len__(self) -> int:
        return len(self.source)

    def take(self, indices) -> tuple[np.ndarray, np.ndarray]:
        return _stack(self.source, self.x_key, self.y_key, [int(i) for i in indices])


def _stack(source, x_key: str, y_key: str, indices=None) -> tuple[np.ndarray, np.ndarray]:
    indices = list(range(len(source))) if indices is None else indices
    n = len(indices)
    try:
        records = source.__getitems__(indices)  # one batched read
    except (AttributeError, TypeError):  # sources without batched reads (e.g. TFDS mocks)
        records = [source[i] for i in indices]
    x = np.stack([np.asarray(r[x_key]) for r in records]) if n else np.zeros((0,))
    y = np.asarray([r[y_key] for r in records], dtype=np.int32)
    return x, y


def load_tfds_arrays(
    name: str, data_dir: str | None = None, splits: tuple[str, ...] = ("train", "test"), lazy: tuple[str, ...] = ()
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """Read the splits of a prepared TFDS classification dataset as arrays.

    Datasets dlcore can generate offline (``mnist1d``) are prepared automatically on first use;
    any other dataset must already be prepared in the data directory (no download is attempted).

    Args:
      name: TFDS name, e.g. ``"mnist1d"`` or ``"mnist"``.
      data_dir: TFDS data directory (default: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
      splits: which splits to read.
      lazy: splits returned as :class:`Records` (read on demand) instead of arrays.
    Returns:
      ``({split: (x [N, ...], y [N] int32)}, num_classes)``.
    """
    data_dir = default_data_dir(data_dir)
    where = "TFDS_DATA_DIR" if os.environ.get("TFDS_DATA_DIR") and data_dir == default_data_dir() else "the data directory"
    if name in _LOCAL_BUILDERS:
        try:
            os.makedirs(data_dir, exist_ok=True)
        except OSError as e:
            raise DataError(
                f"cannot create {where} {data_dir}: {e.strerror or e}; set TFDS_DATA_DIR to a writable directory"
            ) from None
        try:
            _prepare_local(name, data_dir)
        except OSError as e:
            raise DataError(
                f"cannot write dataset {name!r} into {data_dir}: {e.strerror or e}; free space or set "
                "TFDS_DATA_DIR to a writable directory"
            ) from None
        except Exception as e:  # noqa: BLE001 - a damaged prepared copy fails in TFDS/protobuf/json
            raise _damaged(name, data_dir, e) from None
    try:
        sources = dict(zip(splits, tfds.data_source(name, split=list(splits), data_dir=data_dir, download=False)))
    except tfds.core.registered.DatasetNotFoundError as e:
        raise DataError(
            f"unknown dataset {name!r}: TFDS has no builder of that name "
            f"(dlcore generates {', '.join(_LOCAL_BUILDERS)} offline)"
        ) from e
    except (AssertionError, FileNotFoundError, ValueError, KeyError, NotImplementedError) as e:
        if name in _LOCAL_BUILDERS:
            raise _damaged(name, data_dir, e) from None
        raise DataError(
            f"dataset {name!r} is not prepared (as array_record) in {data_dir}; prepare it once with "
            f"`tfds build {name} --file_format=array_record --data_dir {data_dir}` "
            "(or set TFDS_DATA_DIR to where it is)"
        ) from e
    except Exception as e:  # noqa: BLE001 - damaged files: RuntimeError from array_record, protobuf errors
        raise _damaged(name, data_dir, e) from None
    info = sources[splits[0]].dataset_info
    keys = info.supervised_keys
    if not keys or len(keys) != 2:
        raise DataError(f"dataset {name!r} has no (input, label) supervised keys; not a classifier set")
    x_key, y_key = keys
    num_classes = int(info.features[y_key].num_classes)
    try:
        return {s: Records(sources[s], x_key, y_key) if s in lazy else _stack(sources[s], x_key, y_key)
                for s in splits}, num_classes
    except Exception as e:  # noqa: BLE001 - a truncated or corrupt array_record file fails on reading
        raise _damaged(name, data_dir, e) from None


def _damaged(name: str, data_dir: str, err: BaseException) -> DataError:
    """A prepared copy that cannot be read: say which, and the fix that works for this dataset."""
    lines = str(err).strip().splitlines()
    why = f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__
    folder = os.path.join(data_dir, name)
    if name in _LOCAL_BUILDERS:  # generated by dlcore: deleting the copy regenerates it on next use
        fix = f"delete {folder} (rm -r {folder}); dlcore generates it again on the next run"
    else:
        fix = (f"delete {folder} and prepare it again with "
               f"`tfds build {name} --file_format=array_record --data_dir {data_dir}`")
    return DataError(f"dataset {name!r} in {data_dir} is damaged ({why}); {fix}")
