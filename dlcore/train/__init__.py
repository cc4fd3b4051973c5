"""Pure, keyed training: the train state, the steps, and compiled chunked loops."""

from dlcore.train._fit import Callback, FitResult, Loop, fit, run_loop
from dlcore.train._state import (
    DIVERGED,
    RUNNING,
    STATUS_NAMES,
    STOPPED,
    Recipe,
    TrainState,
    as_hparams,
    classification_loss,
    classification_metrics,
    init_state,
    weight_penalty,
)
from dlcore.train._step import evaluate, make_eval_step, make_train_step
