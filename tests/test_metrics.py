"""dlcore.metrics vs scikit-learn on random arrays; masks; ECE on constructed cases; jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from dlcore.errors import ConfigError, ShapeError
from dlcore.metrics import (
    accuracy,
    calibration_bins,
    confusion_matrix,
    correct,
    expected_calibration_error,
    f1_score,
    mean_absolute_error,
    mean_bias_error,
    mean_squared_error,
    precision_recall_f1,
    top_k_accuracy,
)

C = 6


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, C)).astype(np.float32)
    labels = rng.integers(0, C, size=200)
    # Correlate predictions with labels so the metrics are not all near chance.
    logits[np.arange(200), labels] += rng.normal(1.0, 1.0, size=200).astype(np.float32)
    mask = rng.random(200) < 0.7
    return logits, labels, mask


def test_accuracy_and_correct(data):
    logits, labels, mask = data
    preds = logits.argmax(1)
    np.testing.assert_allclose(accuracy(logits, labels), skm.accuracy_score(labels, preds), rtol=1e-6)
    np.testing.assert_allclose(accuracy(logits, labels, mask), skm.accuracy_score(labels[mask], preds[mask]), rtol=1e-6)
    np.testing.assert_array_equal(correct(logits, labels), (preds == labels).astype(np.float32))


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_top_k_accuracy_equals_sklearn(data, k):
    logits, labels, mask = data
    ref = skm.top_k_accuracy_score(labels, logits, k=k, labels=np.arange(C))
    np.testing.assert_allclose(top_k_accuracy(logits, labels, k), ref, rtol=1e-6)
    ref_m = skm.top_k_accuracy_score(labels[mask], logits[mask], k=k, labels=np.arange(C))
    np.testing.assert_allclose(jax.jit(top_k_accuracy, static_argnums=2)(logits, labels, k, mask), ref_m, rtol=1e-6)


def test_confusion_matrix_equals_sklearn(data):
    logits, labels, mask = data
    preds = logits.argmax(1)
    cm = jax.jit(confusion_matrix, static_argnums=2)(labels, preds, C)
    assert cm.dtype == jnp.int32
    np.testing.assert_array_equal(cm, skm.confusion_matrix(labels, preds, labels=np.arange(C)))
    np.testing.assert_array_equal(
        confusion_matrix(labels, preds, C, mask), skm.confusion_matrix(labels[mask], preds[mask], labels=np.arange(C))
    )
    w = np.linspace(0.1, 2.0, len(labels))
    np.testing.assert_allclose(
        confusion_matrix(labels, preds, C, w),
        skm.confusion_matrix(labels, preds, labels=np.arange(C), sample_weight=w),
        rtol=1e-5,
    )


@pytest.mark.parametrize("average", [None, "macro", "micro", "weighted"])
def test_precision_recall_f1_equal_sklearn(data, average):
    logits, labels, mask = data
    preds = logits.argmax(1)
    # Make class 5 absent from labels and predictions in the masked subset, class 4 never predicted.
    preds = np.where(preds == 4, 0, preds)
    sub = mask & (labels != 5) & (preds != 5)
    for m in (None, sub):
        sel = slice(None) if m is None else m
        p, r, f, _ = skm.precision_recall_fscore_support(labels[sel], preds[sel], average=average, zero_division=0)
        got = jax.jit(lambda a, b, mm: precision_recall_f1(a, b, C, average=average, mask_B=mm))(labels, preds, m)
        if average is None:  # sklearn reports only the classes it saw
            seen = np.unique(np.r_[labels[sel], preds[sel]])
            got = [np.asarray(g)[seen] for g in got]
        np.testing.assert_allclose(got[0], p, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got[1], r, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got[2], f, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(f1_score(labels, preds, C), skm.f1_score(labels, preds, average="macro"), rtol=1e-5)


def test_micro_f1_is_accuracy(data):
    logits, labels, _ = data
    preds = logits.argmax(1)
    r = precision_recall_f1(labels, preds, C, average="micro")
    np.testing.assert_allclose([r.precision, r.recall, r.f1], [accuracy(logits, labels)] * 3, rtol=1e-6)


@pytest.mark.parametrize("shape", [(50,), (50, 3)])
def test_regression_metrics_equal_sklearn(shape):
    rng = np.random.default_rng(1)
    y, yhat = rng.normal(size=shape), rng.normal(size=shape) + 0.3
    mask = rng.random(50) < 0.6
    np.testing.assert_allclose(mean_squared_error(y, yhat), skm.mean_squared_error(y, yhat), rtol=1e-5)
    np.testing.assert_allclose(mean_absolute_error(y, yhat), skm.mean_absolute_error(y, yhat), rtol=1e-5)
    np.testing.assert_allclose(mean_bias_error(y, yhat), np.mean(y - yhat), rtol=1e-5)  # lecture: Σ(y − ŷ)/n
    assert float(mean_bias_error(y, yhat)) < 0  # ŷ is biased upward by 0.3
    f = jax.jit(lambda a, b, m: (mean_squared_error(a, b, m), mean_absolute_error(a, b, m), mean_bias_error(a, b, m)))
    mse, mae, mbe = f(y, yhat, mask)
    np.testing.assert_allclose(mse, skm.mean_squared_error(y[mask], yhat[mask]), rtol=1e-5)
    np.testing.assert_allclose(mae, skm.mean_absolute_error(y[mask], yhat[mask]), rtol=1e-5)
    np.testing.assert_allclose(mbe, np.mean(y[mask] - yhat[mask]), rtol=1e-5)


def _two_class(conf, right):
    # Probabilities [p, 1−p] predicting class 0 with confidence p; label 0 where "right".
    conf = np.asarray(conf, np.float32)
    return np.stack([conf, 1 - conf], 1), np.where(right, 0, 1)


def test_ece_calibrated_and_uncalibrated():
    ece = jax.jit(expected_calibration_error, static_argnums=2)
    # Calibrated: in each confidence group the accuracy equals the confidence.
    conf = np.r_[np.full(10, 0.6), np.full(10, 0.9)]
    right = np.r_[np.arange(10) < 6, np.arange(10) < 9]
    probs, labels = _two_class(conf, right)
    assert float(ece(probs, labels, 10)) < 1e-6
    # Over-confident: 90% confidence, 50% right -> ECE 0.4; under-confident: 60% sure, all right -> 0.4.
    probs, labels = _two_class(np.full(10, 0.9), np.arange(10) < 5)
    np.testing.assert_allclose(ece(probs, labels, 15), 0.4, atol=1e-6)
    probs, labels = _two_class(np.full(10, 0.6), np.ones(10, bool))
    np.testing.assert_allclose(ece(probs, labels, 15), 0.4, atol=1e-6)
    # Two groups, half the examples each: ECE = ½·|0.7−0.9| + ½·|1.0−0.6| = 0.3.
    probs, labels = _two_class(np.r_[np.full(10, 0.9), np.full(10, 0.6)], np.r_[np.arange(10) < 7, np.ones(10, bool)])
    np.testing.assert_allclose(ece(probs, labels, 15), 0.3, atol=1e-6)


def test_ece_equals_reference_loop_and_respects_mask(data):
    logits, labels, mask = data
    probs = np.asarray(jax.nn.softmax(jnp.asarray(logits) * 2.0))
    conf, pred = probs.max(1), probs.argmax(1)

    def ref(sel):
        edges = np.linspace(0, 1, 11)
        total = 0.0
        for lo, hi in zip(edges[:-1], edges[1:]):
            b = sel & (conf > lo) & (conf <= hi)
            if b.any():
                total += b.sum() * abs((pred[b] == labels[b]).mean() - conf[b].mean())
        return total / sel.sum()

    all_ = np.ones(len(labels), bool)
    np.testing.assert_allclose(expected_calibration_error(probs, labels, 10), ref(all_), rtol=1e-5)
    got = jax.jit(expected_calibration_error, static_argnums=2)(probs, labels, 10, mask)
    np.testing.assert_allclose(got, ref(mask), rtol=1e-5)
    bins = calibration_bins(probs, labels, 10, mask)
    assert float(bins.count.sum()) == mask.sum()


def test_bad_input():
    with pytest.raises(ShapeError, match="same shape"):
        mean_squared_error(jnp.zeros(4), jnp.zeros((4, 1)))
    with pytest.raises(ConfigError, match="unknown average"):
        precision_recall_f1(jnp.zeros(3, int), jnp.zeros(3, int), 2, average="samples")
