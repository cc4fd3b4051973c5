"""Learning-rate decay schedules compared: constant, step, exponential, 1/t, cosine, cosine with warmup.

The lectures' decay formulas (``dlcore.optim.get_schedule``; epoch = 36 steps of batch 100 on
MNIST-1D's 3,600 training examples, 6000 steps ≈ 167 epochs): ``step`` halves the rate every 40
epochs, ``exponential`` multiplies it by 0.98 per epoch (0.035 at the end), ``inverse_time``
``1/(1 + 0.05·e)`` (0.11 at the end), ``cosine`` decays to 0, ``cosine_warmup`` adds a 300-step
linear warmup. Claim: at the same peak rate (Adam 1e-2) every decaying schedule ends with a better
validation loss than the constant rate (the constant rate keeps bouncing around the minimum). The
schedule is structural (one program each); the report compares each schedule with the best, paired
by seed, and tests the best on the test split. MLP 40-100-100-10. Run:

    dlcore run lr_schedules
    dlcore report runs/lr_schedules/<timestamp>

Faster look: dlcore run lr_schedules --config.sweep.seeds=4
"""

import ml_collections

from _base import base_config, study

EPOCH = dict(steps_per_epoch=36)


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.optimizer.schedule_kwargs = ml_collections.ConfigDict(dict(
        step=dict(rate=0.5, every=40, **EPOCH),
        exponential=dict(rate=0.98, **EPOCH),
        inverse_time=dict(decay=0.05, **EPOCH),
        cosine=dict(),
        cosine_warmup=dict(schedule="cosine", warmup_steps=300),
    ))
    c.sweep = study(
        dict(schedule=dict(path="optimizer.schedule",
                           values=("constant", "step", "exponential", "inverse_time", "cosine", "cosine_warmup"))),
        select=dict(metric="val/loss"),
    )
    c.claim = dict(
        text="At the same peak rate every decaying schedule ends with a lower validation loss than the constant rate",
        checks=tuple(f"val/loss: schedule={s} < schedule=constant"
                     for s in ("step", "exponential", "inverse_time", "cosine", "cosine_warmup")),
    )
    return c
