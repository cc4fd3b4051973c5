"""Pure, keyed training: the train state, the steps, the options, hooks and compiled chunked loops."""

from dlcore.status import DIVERGED, RUNNING, STATUS_NAMES, STOPPED
from dlcore.train._fit import FitResult, Loop, fit, run_loop
from dlcore.train._hooks import EarlyStopping, Hook, ReduceOnPlateau, early_stopping_summary
from dlcore.train._measure import calibration, gradient_noise, input_gradient_norms
from dlcore.train._lr_finder import LRCheckResult, LRFinderResult, lr_drop_check, lr_find
from dlcore.train._options import Callback, CheckpointPlan, Checkpointer, RunOptions, options_from
from dlcore.train._state import (
    Recipe,
    TrainState,
    as_hparams,
    broadcast_hparams,
    classification_loss,
    classification_metrics,
    init_state,
    weight_penalty,
)
from dlcore.train._step import evaluate, make_eval_step, make_train_step
