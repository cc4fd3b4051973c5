"""Early stopping with patience vs a fixed long schedule.

The lectures: watch the validation loss, stop when it has not improved for ``patience``
evaluations, and keep the best parameters — "equal or better test loss, in fewer steps" than
training for a fixed long schedule that overfits. The over-sized MLP of `dropout_study`
(40-256-256-10, Adam 1e-3, 6000 steps) overfits MNIST-1D; validation every 100 steps. Patience
is a structural axis (``early_stopping.patience``; 0 = no early stopping: the fixed schedule);
each run of the early-stopped point keeps its own best parameters and stop step (``stop_step`` in
results.csv; the curves end where every seed has stopped). Run:

    dlcore run early_stopping
    dlcore report runs/early_stopping/<timestamp>

Faster look: dlcore run early_stopping --config.num_steps=3000 --config.sweep.seeds=4
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(model=dict(widths=(256, 256)), hparams=dict(learning_rate=1e-3), eval_every=100)
    c.early_stopping = ml_collections.ConfigDict(dict(patience=10, metric="loss", mode="min", restore_best=True))
    c.sweep = study(
        dict(patience=dict(path="early_stopping.patience", values=(0, 10))),
        select=dict(group_by=("patience",)),  # both are tested; nothing is chosen between them
    )
    c.claim = dict(
        text="Early stopping (patience 10 on the validation loss, best parameters kept) gives an equal or "
             "lower test loss than the fixed 6000-step schedule, in fewer steps",
        checks=("test/loss: patience=10 < patience=0",),
    )
    return c
