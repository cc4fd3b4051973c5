"""Optimization: optimizers by name (vmappable hyperparameters), schedules, full-batch
and full-batch second-order methods (early stopping and the learning-rate finder run the
training loop, so they live in dlcore.train)."""

from dlcore.optim._least_squares import LEAST_SQUARES_METHODS, least_squares
from dlcore.optim._minimize import CGResult, MinimizeResult, conjugate_gradient, minimize
from dlcore.optim._optimizers import (
    COMMON_HPARAMS,
    OPTIMIZERS,
    Optimizer,
    OptimizerFn,
    WrappedOptimizer,
    check_hparams,
    optimizer_fn,
    optimizer_schedule,
    plateau_scale,
    plateau_update,
)
from dlcore.optim._schedules import SCHEDULES, PlateauSchedule, Schedule, get_schedule, schedule_values
