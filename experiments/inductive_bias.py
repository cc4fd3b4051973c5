"""Inductive bias on MNIST-1D: logistic < MLP < CNN ≈ GRU, and shuffling the 40 positions hurts
the CNN and the GRU but not the MLP (the MNIST-1D paper's table, Greydanus 2020).

The reference setup, which this config reproduces: all 4,000 training examples (no validation
split, ``dataset.val_fraction=0.0``), raw inputs (``dataset.standardize=False``), Adam 1e-2, batch
100, 6000 steps, and the paper's four models (``dlcore.models``: ``logistic`` 410 parameters,
``mnist1d_mlp`` 40-100-100-10 with a residual hidden layer, 15,210; ``mnist1d_cnn`` 3 strided
convs, 5,210; ``mnist1d_gru`` bidirectional GRU with hidden size 6 and a linear head over all 40
steps' outputs, 5,134). ``shuffled=True`` reorders the 40 positions of every example (train and
test) by one fixed permutation (``model.permute_inputs``: ``dlcore.models.PermuteInputs``, the same
permutation as ``load_dataset(..., permute_seed=0)``). Both axes are structural (8 programs); every
point is its own selection group, so the test split is evaluated for all 8 points, each with a
95% CI over seeds, beside the published figure (``config.reference``, shown by
``dlcore report --catalog``). With no validation split the validation columns are NaN by design.

Published test accuracy (%): logistic 32, MLP 68, CNN 94, GRU 91; shuffled 32, 68, 56, 57. Run:

    dlcore run inductive_bias
    dlcore report runs/inductive_bias/<timestamp>

Faster look: dlcore run inductive_bias --config.num_steps=2000 --config.sweep.seeds=4
With a validation split (standardized inputs): --config.dataset.val_fraction=0.1 --config.dataset.standardize=True
"""

import ml_collections

from _base import base_config, study

REFERENCE = dict(
    metric="test/accuracy",
    source="Greydanus (2020), Scaling down deep learning / github.com/greydanus/mnist1d README",
    axes=("model", "shuffled"),
    values=(
        ("logistic", False, 0.32), ("mnist1d_mlp", False, 0.68), ("mnist1d_cnn", False, 0.94),
        ("mnist1d_gru", False, 0.91),
        ("logistic", True, 0.32), ("mnist1d_mlp", True, 0.68), ("mnist1d_cnn", True, 0.56),
        ("mnist1d_gru", True, 0.57),
    ),
)


def get_config() -> ml_collections.ConfigDict:
    c = base_config(dataset=dict(val_fraction=0.0, standardize=False), num_steps=6000, eval_every=500)
    c.model = ml_collections.ConfigDict(dict(name="mnist1d_mlp", permute_inputs=False, permute_seed=0))
    c.sweep = study(
        dict(
            model=dict(path="model.name", values=("logistic", "mnist1d_mlp", "mnist1d_cnn", "mnist1d_gru")),
            shuffled=dict(path="model.permute_inputs", values=(False, True)),
        ),
        select=dict(group_by=("model", "shuffled")),  # no choice to make: every point is tested
    )
    c.reference = REFERENCE
    acc = "test/accuracy: model={} shuffled={} {} model={} shuffled={}"
    c.claim = dict(
        text="On MNIST-1D logistic < MLP < CNN ≈ GRU; shuffling the 40 positions hurts the CNN and the GRU, "
             "not the MLP (published: 32/68/94/91%, shuffled 32/68/56/57%)",
        checks=(
            acc.format("mnist1d_mlp", False, ">", "logistic", False),
            acc.format("mnist1d_cnn", False, ">", "mnist1d_mlp", False),
            acc.format("mnist1d_gru", False, ">", "mnist1d_mlp", False),
            acc.format("mnist1d_cnn", False, "~", "mnist1d_gru", False),
            acc.format("mnist1d_cnn", False, ">", "mnist1d_cnn", True),
            acc.format("mnist1d_gru", False, ">", "mnist1d_gru", True),
            acc.format("mnist1d_mlp", False, "~", "mnist1d_mlp", True),
        ),
    )
    return c
