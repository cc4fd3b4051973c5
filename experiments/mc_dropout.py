"""MC dropout: averaging stochastic passes with dropout on gives lower calibration error (ECE) than
the deterministic net.

The lectures (uncertainty): keep dropout on at test time and average ``T`` passes — an approximate
Bayesian model average whose predictive probabilities are better calibrated than those of the
single deterministic pass (all neurons on). Here the over-sized MLP of ``dropout_study``
(40-256-256-10, Adam 1e-3, 3000 steps, long enough to become over-confident) trains on MNIST-1D at
dropout rates 0, 0.1, 0.3 and 0.5 (a vectorized axis: one compiled program). After training every
run is measured on the test split (``config.measure.calibration``, :func:`dlcore.train.calibration`):
``test/ece`` of the deterministic net, ``test/mc_ece`` and ``test/mc_accuracy`` of MC dropout with
``T = 30`` passes, and ``test/ece_gain = ece − mc_ece`` (15 equal-width bins). Rate 0 is the control
(MC dropout is the deterministic net: gain exactly 0). Run:

    dlcore run mc_dropout
    dlcore report runs/mc_dropout/<timestamp>

Faster look: dlcore run mc_dropout --config.num_steps=1000 --config.sweep.seeds=4
More passes, longer: --config.measure.calibration.mc_samples=100 --config.num_steps=6000
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(model=dict(widths=(256, 256)), hparams=dict(learning_rate=1e-3, dropout_rate=0.0),
                    num_steps=3000, measure=dict(calibration=dict(mc_samples=30, num_bins=15)))
    c.sweep = study(
        dict(dropout_rate=dict(values=(0.0, 0.1, 0.3, 0.5))),
        select=dict(group_by=("dropout_rate",)),  # every rate is measured on the test split
    )
    c.claim = dict(
        text="MC dropout (30 passes with dropout on) has a lower expected calibration error on the test split "
             "than the same net's deterministic pass",
        checks=(
            "test/ece_gain: dropout_rate=0.1 > 0",
            "test/ece_gain: dropout_rate=0.3 > 0",
            "test/ece_gain: dropout_rate=0.5 > 0",
        ),
    )
    return c
