"""Metrics: classification (accuracy, top-k, confusion matrix, precision/recall/F1), regression
(MBE, MAE, MSE) and calibration (ECE). All jittable; all take a mask for padded batches."""

from dlcore.metrics._calibration import CalibrationBins, calibration_bins, expected_calibration_error
from dlcore.metrics._classification import (
    PrecisionRecallF1,
    accuracy,
    confusion_matrix,
    correct,
    f1_score,
    margin,
    precision_recall_f1,
    top_k_accuracy,
)
from dlcore.metrics._regression import mean_absolute_error, mean_bias_error, mean_squared_error

__all__ = [
    "CalibrationBins",
    "PrecisionRecallF1",
    "accuracy",
    "calibration_bins",
    "confusion_matrix",
    "correct",
    "expected_calibration_error",
    "f1_score",
    "margin",
    "mean_absolute_error",
    "mean_bias_error",
    "mean_squared_error",
    "precision_recall_f1",
    "top_k_accuracy",
]
