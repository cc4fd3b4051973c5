"""Optimizers (by name, vmappable hyperparameters)."""

from dlcore.optim._optimizers import OPTIMIZERS, OptimizerFn, optimizer_fn
