"""Tracking: one writer interface (TensorBoard, CSV, W&B offline), one run directory per seed."""

from dlcore.tracking._tensorboard import write_scalars
from dlcore.tracking._writers import (
    WRITERS,
    CSVWriter,
    MultiWriter,
    TensorBoardWriter,
    WandbWriter,
    Writer,
    open_writer,
    run_writers,
    write_history,
)
