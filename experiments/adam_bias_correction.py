"""Adam's bias correction matters in the first steps only.

Adam's moments start at 0, so without correction ``m_t`` is too small by ``1 − β₁ᵗ`` and ``v_t`` by
``1 − β₂ᵗ``; the uncorrected step ``m/√v`` is then ``(1 − β₁ᵗ)/√(1 − β₂ᵗ)`` times the corrected
one: 3.2× at t = 1, 6.5× at t = 10, 3.2× at t = 100 and 1.26× at t = 1000 (β = 0.9, 0.999) — the
lectures' reason for the correction. Claim: with and without correction (``optimizer.bias_correction``,
``dlcore.optim.optimizer_fn("adam", bias_correction=False)``) the validation loss differs after
20 and 200 steps and not after 2000. Axes: training length (structural: ``num_steps`` 20 / 200 /
2000), bias correction (structural) and the learning rate (vectorized, 1e-3 and 1e-2); the
comparison of corrected vs uncorrected is paired by seed within each (steps, learning rate) group
("each point vs the best of ..." tables). MLP 40-100-100-10 on MNIST-1D. Run:

    dlcore run adam_bias_correction
    dlcore report runs/adam_bias_correction/<timestamp>

Faster look: dlcore run adam_bias_correction --config.sweep.seeds=4
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(optimizer=dict(bias_correction=True), num_steps=2000, eval_every=500)
    c.sweep = study(
        dict(
            steps=dict(path="num_steps", values=(20, 200, 2000), integer=True),
            bias_correction=dict(path="optimizer.bias_correction", values=(True, False)),
            learning_rate=dict(values=(1e-3, 1e-2)),
        ),
        select=dict(metric="val/loss", group_by=("steps", "learning_rate")),
    )
    pair = ("val/loss: steps={0} bias_correction=True learning_rate={1} {2} "
            "steps={0} bias_correction=False learning_rate={1}")
    c.claim = dict(
        text="Adam's bias correction changes the validation loss after 20 and 200 steps, not after 2000",
        checks=tuple(pair.format(s, lr, "!=" if s < 2000 else "~") for s in (20, 200, 2000) for lr in (0.001, 0.01)),
    )
    return c
