"""Does dropout reduce overfitting? dropout rate × seeds on an over-sized MLP.

The lectures: dropout "reduces the effective capacity of a model, but needs more training time";
at test time every neuron is on (dlcore's inverted dropout scales at train time). A wide MLP
(40-256-256-10, Adam 1e-3) overfits MNIST-1D's 3,600 training examples; the dropout rate is a
vectorized axis, so all rates × seeds run as one compiled program (the rate lives in the train
state as an array). The rate is chosen on the validation split, the test split is evaluated once
for it, and the report says which rates are resolved worse than the best at 95% confidence.
Compare `train/loss` and `val/loss` in the curves: the gap shrinks as the rate grows. Run:

    dlcore run dropout_study
    dlcore report runs/dropout_study/<timestamp>

Faster look: dlcore run dropout_study --config.num_steps=1500 --config.sweep.seeds=4
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(model=dict(widths=(256, 256)), hparams=dict(learning_rate=1e-3, dropout_rate=0.0))
    c.sweep = study(dict(dropout_rate=dict(values=(0.0, 0.1, 0.2, 0.3, 0.5))))
    c.claim = dict(  # checked by `dlcore report --catalog` (dlcore/cli/_catalog.py)
        text="Dropout reduces overfitting: the over-sized MLP with dropout 0.2 validates better than without",
        checks=("val/loss: dropout_rate=0.2 < dropout_rate=0", "val/accuracy: dropout_rate=0.2 > dropout_rate=0"),
    )
    return c
