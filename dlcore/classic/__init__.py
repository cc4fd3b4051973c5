"""Classic machine learning as pure, jittable functions: linear/logistic regression, kNN, PCA.

Each method is checked against a reference implementation (NumPy, scikit-learn) in the tests.
"""

from dlcore.classic._knn import knn_neighbors, knn_predict, pairwise_distances, vote
from dlcore.classic._linear import (
    LinearModel,
    add_bias_column,
    check_xy,
    fit_linear,
    fit_linear_gd,
    gaussian_log_likelihood,
    least_squares,
    noise_variance,
    predict_linear,
)
from dlcore.classic._logistic import (
    LogisticModel,
    binary_cross_entropy,
    fit_binary_logistic,
    fit_softmax_regression,
    logistic_logits,
    predict_logistic,
    predict_proba,
    softmax_cross_entropy,
)
from dlcore.classic._pca import PCA, fit_pca, pca_inverse_transform, pca_transform, tsne

__all__ = [
    "LinearModel",
    "LogisticModel",
    "PCA",
    "add_bias_column",
    "binary_cross_entropy",
    "check_xy",
    "fit_binary_logistic",
    "fit_linear",
    "fit_linear_gd",
    "fit_pca",
    "fit_softmax_regression",
    "gaussian_log_likelihood",
    "knn_neighbors",
    "knn_predict",
    "least_squares",
    "logistic_logits",
    "noise_variance",
    "pairwise_distances",
    "pca_inverse_transform",
    "pca_transform",
    "predict_linear",
    "predict_logistic",
    "predict_proba",
    "softmax_cross_entropy",
    "tsne",
    "vote",
]
