"""dlcore.classic k-NN: scikit-learn agreement, blocking, tie rules, memory, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.classic import knn_neighbors, knn_predict, pairwise_distances, vote
from dlcore.classic._knn import _default_block, _neighbors
from dlcore.data import fit_standardizer, generate_digits
from dlcore.errors import ConfigError, ShapeError


@pytest.fixture(scope="module")
def digits():
    d = generate_digits()
    x_tr, x_te = d["x"].reshape(len(d["x"]), -1), d["x_test"].reshape(len(d["x_test"]), -1)
    s = fit_standardizer(x_tr)
    return {"raw": (x_tr, d["y"], x_te), "std": (s(x_tr), d["y"], s(x_te))}


@pytest.mark.parametrize("metric,sk_metric", [("l2", "euclidean"), ("l1", "manhattan")])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_predictions_equal_sklearn_on_digits(digits, metric, sk_metric, k):
    from sklearn.neighbors import KNeighborsClassifier

    x_tr, y_tr, x_te = digits["std"]  # standardized digits: no two distances tie
    ref = KNeighborsClassifier(n_neighbors=k, algorithm="brute", metric=sk_metric).fit(x_tr, y_tr).predict(x_te)
    np.testing.assert_array_equal(knn_predict(x_tr, y_tr, x_te, k=k, metric=metric, num_classes=10), ref)
    # Raw digits (integers 0-16) have exactly tied distances. Which of two equidistant points
    # scikit-learn keeps is unspecified (argpartition); wherever the k-th and (k+1)-th distances
    # differ the neighbour set is well defined and the predictions must agree.
    x_tr, y_tr, x_te = digits["raw"]
    ref = KNeighborsClassifier(n_neighbors=k, algorithm="brute", metric=sk_metric).fit(x_tr, y_tr).predict(x_te)
    got = np.asarray(knn_predict(x_tr, y_tr, x_te, k=k, metric=metric, num_classes=10))
    dist, _ = knn_neighbors(x_tr, x_te, k=k + 1, metric=metric)
    defined = np.asarray(dist[:, k - 1] < dist[:, k])
    assert defined.mean() > 0.8
    np.testing.assert_array_equal(got[defined], ref[defined])


def test_neighbors_equal_sklearn_kneighbors(digits):
    from sklearn.neighbors import NearestNeighbors

    x_tr, _, x_te = digits["std"]
    ref_d, ref_i = NearestNeighbors(n_neighbors=4, algorithm="brute").fit(x_tr).kneighbors(x_te)
    d, i = knn_neighbors(x_tr, x_te, k=4)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_allclose(d, ref_d, rtol=1e-4, atol=1e-3)


def test_pairwise_distances_equal_scipy():
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5)).astype(np.float32), rng.normal(size=(9, 5)).astype(np.float32)
    np.testing.assert_allclose(pairwise_distances(a, b, "l2"), cdist(a, b, "euclidean"), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pairwise_distances(a, b, "l1"), cdist(a, b, "cityblock"), rtol=1e-5)
    np.testing.assert_allclose(pairwise_distances(a, a, "l2").diagonal(), 0.0, atol=1e-3)


@pytest.mark.parametrize("metric", ["l2", "l1"])
def test_blocking_changes_nothing(digits, metric):
    x_tr, y_tr, x_te = digits["std"]
    d_all, i_all = knn_neighbors(x_tr, x_te, k=5, metric=metric, block_size=len(x_te))
    d_blk, i_blk = knn_neighbors(x_tr, x_te, k=5, metric=metric, block_size=37)  # 359 = 9·37 + 26: padded
    np.testing.assert_array_equal(i_blk, i_all)
    if metric == "l1":
        np.testing.assert_array_equal(d_blk, d_all)  # elementwise sums: bit-exact
    else:
        np.testing.assert_allclose(d_blk, d_all, rtol=1e-5)  # matmul tiling depends on the block


def test_full_distance_matrix_never_materialises():
    # Compile (not run) the 10k x 10k problem: scratch memory stays far below the 400 MB matrix.
    n, d = 10_000, 64
    spec = jax.ShapeDtypeStruct((n, d), jnp.float32)
    for metric in ("l2", "l1"):
        bs = _default_block(n, d, metric)
        compiled = _neighbors.lower(spec, spec, k=5, metric=metric, block_size=bs).compile()
        temp = compiled.memory_analysis().temp_size_in_bytes
        assert temp < 0.1 * n * n * 4, (metric, temp)


def test_tie_rules():
    # Equal distances: the lower training index comes first.
    x_tr = jnp.array([[1.0], [-1.0], [1.0], [-1.0]])
    _, idx = knn_neighbors(x_tr, jnp.array([[0.0]]), k=4)
    np.testing.assert_array_equal(idx, [[0, 1, 2, 3]])
    # Vote ties: smallest label by default (scikit-learn's rule), or the nearest tied class.
    np.testing.assert_array_equal(vote(jnp.array([[2, 1, 1, 2], [3, 0, 3, 0], [4, 4, 4, 1]]), 5), [1, 0, 4])
    np.testing.assert_array_equal(vote(jnp.array([[2, 1, 1, 2], [3, 0, 3, 0]]), 5, "nearest"), [2, 3])
    x_tr = jnp.array([[0.0], [1.0], [3.0], [4.0]])
    y_tr = jnp.array([1, 0, 1, 0])
    q = jnp.array([[0.1]])  # neighbours in order 0, 1, 2, 3: labels 1, 0, 1, 0 -> 2:2 tie
    assert int(knn_predict(x_tr, y_tr, q, k=4)[0]) == 0
    assert int(knn_predict(x_tr, y_tr, q, k=4, tie_break="nearest")[0]) == 1


def test_jit_and_determinism(digits):
    x_tr, y_tr, x_te = digits["std"]
    f = jax.jit(lambda a, b, c: knn_predict(a, b, c, k=3, num_classes=10))
    np.testing.assert_array_equal(f(x_tr, y_tr, x_te[:50]), knn_predict(x_tr, y_tr, x_te[:50], k=3))


def test_bad_input(digits):
    x_tr, y_tr, x_te = digits["std"]
    with pytest.raises(ConfigError, match=r"k must be an integer in \[1, 3\].*lower k"):
        knn_predict(x_tr[:3], y_tr[:3], x_te, k=5)
    with pytest.raises(ConfigError, match="k must be"):
        knn_predict(x_tr, y_tr, x_te, k=0)
    with pytest.raises(ShapeError, match="1438 examples but y_train"):
        knn_predict(x_tr, y_tr[:10], x_te, k=1)
    with pytest.raises(ShapeError, match="features"):
        knn_predict(x_tr, y_tr, x_te[:, :10], k=1)
    with pytest.raises(ShapeError, match="2-D"):
        knn_predict(x_tr.reshape(-1, 8, 8), y_tr, x_te, k=1)
    with pytest.raises(ConfigError, match="valid choices: l1, l2"):
        knn_predict(x_tr, y_tr, x_te, k=1, metric="cosine")
    with pytest.raises(ConfigError, match="pass num_classes"):
        jax.jit(lambda a, b, c: knn_predict(a, b, c, k=1))(x_tr, y_tr, x_te)
    with pytest.raises(ConfigError, match="tie_break"):
        knn_predict(x_tr, y_tr, x_te, k=1, tie_break="random")
