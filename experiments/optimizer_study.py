"""Which optimizer, each at its own best learning rate? optimizer × learning rate × seeds.

The lectures' optimizers (SGD, momentum, Nesterov, RMSProp, Adam) compared fairly: each gets a
log-spaced learning-rate grid (1e-4 … 3, the lectures' 1-3 steps) and is judged at its best rate,
chosen on the validation split (`select.group_by=("optimizer",)`); the test split is evaluated
once per optimizer. The optimizer is structural (one compiled program each); the learning rate is
vectorized inside it. MLP 40-100-100-10 on MNIST-1D, a short budget (1500 steps) so that speed of
convergence shows. Run:

    dlcore run optimizer_study
    dlcore report runs/optimizer_study/<timestamp>

Faster look: dlcore run optimizer_study --config.sweep.seeds=3 --config.num_steps=500
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(num_steps=1500, eval_every=250)
    c.sweep = study(
        dict(
            learning_rate=dict(scale="log", low=1e-4, high=3.0, steps="1-3"),
            optimizer=dict(path="optimizer.name", values=("sgd", "momentum", "nesterov", "rmsprop", "adam")),
        ),
        select=dict(group_by=("optimizer",)),
    )
    return c
