"""Optimization: optimizers by name (vmappable hyperparameters), schedules, full-batch
second-order methods, early stopping and the learning-rate finder."""

from dlcore.optim._early_stopping import EarlyStopping, early_stopping_summary
from dlcore.optim._least_squares import LEAST_SQUARES_METHODS, least_squares
from dlcore.optim._lr_finder import LRCheckResult, LRFinderResult, lr_drop_check, lr_find
from dlcore.optim._minimize import CGResult, MinimizeResult, conjugate_gradient, minimize
from dlcore.optim._optimizers import (
    COMMON_HPARAMS,
    OPTIMIZERS,
    OptimizerFn,
    check_hparams,
    optimizer_fn,
    plateau_scale,
)
from dlcore.optim._schedules import SCHEDULES, PlateauSchedule, Schedule, get_schedule, schedule_values
