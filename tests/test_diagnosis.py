"""Learning-curve diagnosis on constructed curves."""

import numpy as np
import pytest

from dlcore.diagnostics import diagnose, diagnose_history

T = np.linspace(0, 1, 200)
E = np.linspace(0, 1, 10)


@pytest.mark.parametrize(
    "train,val,label",
    [
        (2.3 * np.exp(-4 * T) + 0.05, 2.3 * np.exp(-4 * E) + 0.08, "good fit"),
        (2.3 - 0.5 * T, 2.3 - 0.5 * E + 0.02, "underfitting"),
        (2.3 * np.exp(-6 * T), np.r_[2.3 * np.exp(-6 * E[:5]), 0.3 + 1.5 * E[5:]], "overfitting"),
        (np.full(200, 2.3) + 0.01 * np.sin(T * 50), np.full(10, 2.3), "train loss not decreasing"),
        (2.3 * np.exp(-4 * T) + 0.5, 2.3 * np.exp(-4 * E) + 0.1, "validation better than train"),
    ],
)
def test_labels(train, val, label):
    d = diagnose(train, val, chance_loss=np.log(10))
    assert d.label == label, str(d)
    assert d.evidence and d.advice and label in str(d)


def test_history_batched():
    h = {"train/loss": np.stack([2.3 * np.exp(-4 * T)] * 2), "val/loss": np.stack([2.3 * np.exp(-4 * E) + 0.02] * 2)}
    assert [d.label for d in diagnose_history(h)] == ["good fit", "good fit"]


def test_too_short():
    with pytest.raises(ValueError, match="at least 2"):
        diagnose([1.0], [1.0])
