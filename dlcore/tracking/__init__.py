"""Tracking: TensorBoard event files and tabular results."""

from dlcore.tracking._tensorboard import write_scalars
