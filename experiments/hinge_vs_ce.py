"""Hinge vs cross-entropy: the hinge loss reaches zero and stops, cross-entropy keeps growing margins.

The lectures: "Cross entropy *always* wants to improve (loss never 0), hinge loss saturates." The
multiclass hinge here is the lectures' (Weston–Watkins) ``Σ_{j≠y} max(0, s_j − s_y + 1)``
(``dlcore.losses.multiclass_hinge``; ``loss="crammer_singer_hinge"`` for ``max_{j≠y}``). The
same MLP (40-100-100-10, Adam 1e-3, 6000 steps) is trained with each loss on MNIST-1D; besides
accuracy every split reports the mean margin ``s_y − max_{j≠y} s_j`` (``config.metrics``). What the
claim predicts: with hinge the last training loss is ~0 and the mean margin settles near the
target 1 (plus what the examples beyond it keep); with cross-entropy the training loss stays > 0
and the margin is much larger and still growing (compare ``val/margin`` in the curves). Accuracy is
reported too (a claim about the losses' dynamics, not about which generalizes better). Run:

    dlcore run hinge_vs_ce
    dlcore report runs/hinge_vs_ce/<timestamp>

Faster look: dlcore run hinge_vs_ce --config.num_steps=2000 --config.sweep.seeds=4
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(hparams=dict(learning_rate=1e-3), loss="cross_entropy", metrics=("margin",))
    c.sweep = study(
        dict(loss=dict(path="loss", values=("cross_entropy", "multiclass_hinge"))),
        select=dict(group_by=("loss",)),  # both losses are tested; nothing is chosen between them
    )
    c.claim = dict(
        text="The hinge loss reaches zero on the training batches and stops; cross-entropy stays above zero "
             "and keeps growing the margins",
        checks=(
            "train/loss_last: loss=multiclass_hinge < 0.01",
            "train/loss_last: loss=cross_entropy > 0.0",
            "test/margin: loss=cross_entropy > loss=multiclass_hinge",
        ),
    )
    return c
