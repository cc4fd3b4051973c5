"""k-nearest neighbours (lecture 2): L1/L2 distances, k, majority vote; blocked over queries.

Queries are processed in blocks of ``block_size`` rows by ``lax.map``, so only a
``[block_size, N_train]`` distance block (L1: ``[block_size, N_train, D]`` differences) exists at a
time: a 10k × 10k problem never materialises its full distance matrix.

Rules (fixed, so results are reproducible and comparable with scikit-learn):

* **Neighbour order**: by distance; equal distances: the lower training index first
  (``lax.top_k`` is stable).
* **Vote tie** (``tie_break="smallest"``, the default): among the classes with the most votes, the
  smallest class id — the rule of scikit-learn's ``KNeighborsClassifier`` (``argmax`` of counts).
  ``tie_break="nearest"``: the tied class that owns the nearest neighbour.
* **L2** distances use ``‖a‖² − 2a·b + ‖b‖²`` (one matmul per block, clamped at 0), as scikit-learn
  does; the L1 path sums ``|a − b|`` exactly.
* **Bits**: L1 results do not depend on ``block_size``; L2 distances may differ in the last bits
  between block sizes (the matmul's tiling changes), which can only reorder neighbours whose
  distances agree to ~1e-6 relative.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.errors import ConfigError, ShapeError, unknown_name

METRICS = ("l2", "l1")
TIE_BREAKS = ("smallest", "nearest")
_BLOCK_ELEMENTS = 1 << 22  # ≈16 MiB of float32 per block (distances or L1 differences)


def pairwise_distances(a_MxD, b_NxD, metric: str = "l2") -> jax.Array:
    """Distances ``[M, N]`` between rows of ``a`` and ``b``: ``"l2"`` (Euclidean) or ``"l1"``.

    >>> import jax.numpy as jnp
    >>> pairwise_distances(jnp.array([[0., 0.]]), jnp.array([[3., 4.]]), "l1").tolist()
    [[7.0]]
    """
    if metric not in METRICS:
        raise unknown_name("kNN metric", metric, METRICS)
    a, b = jnp.asarray(a_MxD), jnp.asarray(b_NxD)
    if metric == "l1":
        return jnp.sum(jnp.abs(a[:, None, :] - b[None, :, :]), axis=-1)
    sq = jnp.sum(a * a, axis=1)[:, None] - 2.0 * (a @ b.T) + jnp.sum(b * b, axis=1)[None, :]
    return jnp.sqrt(jnp.maximum(sq, 0.0))  # rounding can make the expansion slightly negative


def _check(x_train, y_shape, x_query, k):
    if jnp.ndim(x_train) != 2 or jnp.ndim(x_query) != 2:
        raise ShapeError(
            f"x_train and x_query must be 2-D [N, D], got {jnp.shape(x_train)} and {jnp.shape(x_query)}; "
            "flatten with x.reshape(len(x), -1)"
        )
    if tuple(y_shape) != jnp.shape(x_train)[:1]:
        raise ShapeError(
            f"x_train has {jnp.shape(x_train)[0]} examples but y_train has shape {tuple(y_shape)}; "
            "pass one label per training row"
        )
    if jnp.shape(x_query)[1] != jnp.shape(x_train)[1]:
        raise ShapeError(
            f"queries have {jnp.shape(x_query)[1]} features but training inputs have {jnp.shape(x_train)[1]}"
        )
    n = jnp.shape(x_train)[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 or k > n:
        raise ConfigError(f"k must be an integer in [1, {n}] (the training set size), got {k!r}; lower k")


def _default_block(n_train: int, dim: int, metric: str) -> int:
    per_row = n_train * (dim if metric == "l1" else 1)
    return max(1, _BLOCK_ELEMENTS // max(per_row, 1))


@functools.partial(jax.jit, static_argnames=("k", "metric", "block_size"))
def _neighbors(x_train, x_query, k, metric, block_size):
    m, d = x_query.shape
    num_blocks = -(-m // block_size)
    pad = num_blocks * block_size - m
    # Padding rows are real zeros; their results are sliced off below.
    q = jnp.concatenate([x_query, jnp.zeros((pad, d), x_query.dtype)]).reshape(num_blocks, block_size, d)

    def one_block(qb):
        neg, idx = jax.lax.top_k(-pairwise_distances(qb, x_train, metric), k)
        return -neg, idx

    dist, idx = jax.lax.map(one_block, q)
    return dist.reshape(-1, k)[:m], idx.reshape(-1, k)[:m]


def knn_neighbors(x_train_NxD, x_query_MxD, *, k: int, metric: str = "l2", block_size: int | None = None):
    """The ``k`` nearest training rows of every query, nearest first.

    Args:
      x_train_NxD: training inputs.
      x_query_MxD: queries.
      k: number of neighbours, ``1 <= k <= N``.
      metric: ``"l2"`` or ``"l1"``.
      block_size: queries per block (default: sized so a block holds ≈4M numbers).
    Returns:
      ``(distances [M, k], indices [M, k] int32)``.
    """
    if metric not in METRICS:
        raise unknown_name("kNN metric", metric, METRICS)
    _check(x_train_NxD, jnp.shape(x_train_NxD)[:1], x_query_MxD, k)
    x_train = jnp.asarray(x_train_NxD)
    x_train = x_train.astype(jnp.result_type(x_train.dtype, jnp.float32))
    x_query = jnp.asarray(x_query_MxD).astype(x_train.dtype)
    m = x_query.shape[0]
    bs = block_size or _default_block(x_train.shape[0], x_train.shape[1], metric)
    return _neighbors(x_train, x_query, int(k), metric, int(max(1, min(bs, m))))


def vote(neighbor_labels_MxK, num_classes: int, tie_break: str = "smallest") -> jax.Array:
    """Majority vote over neighbour labels (nearest first) with a fixed tie rule. ``[M]`` int32.

    >>> import jax.numpy as jnp
    >>> vote(jnp.array([[2, 1, 1], [2, 1, 0]]), 3).tolist()  # second row: 3-way tie -> class 0
    [1, 0]
    >>> vote(jnp.array([[2, 1, 0]]), 3, tie_break="nearest").tolist()
    [2]
    """
    if tie_break not in TIE_BREAKS:
        raise unknown_name("tie_break", tie_break, TIE_BREAKS)
    lab = jnp.asarray(neighbor_labels_MxK).astype(jnp.int32)
    onehot = jax.nn.one_hot(lab, num_classes, dtype=jnp.int32)  # [M, K, C]
    counts = jnp.sum(onehot, axis=1)
    if tie_break == "smallest":
        return jnp.argmax(counts, axis=-1).astype(jnp.int32)  # argmax: first (smallest) maximum
    k = lab.shape[1]
    # Score = count·(k+1) + closeness of the class's nearest neighbour (< k+1): counts decide,
    # closeness only breaks ties.
    closeness = jnp.max(onehot * (k - jnp.arange(k, dtype=jnp.int32))[None, :, None], axis=1)
    return jnp.argmax(counts * (k + 1) + closeness, axis=-1).astype(jnp.int32)


def knn_predict(
    x_train_NxD,
    y_train_N,
    x_query_MxD,
    *,
    k: int,
    metric: str = "l2",
    num_classes: int | None = None,
    tie_break: str = "smallest",
    block_size: int | None = None,
) -> jax.Array:
    """k-NN classification of every query by majority vote.

    Args:
      x_train_NxD, y_train_N: the training set (labels are integer class ids).
      x_query_MxD: the points to classify.
      k: neighbours, ``1 <= k <= N``.
      metric: ``"l2"`` or ``"l1"``.
      num_classes: C (default ``max(y_train) + 1``; pass it under ``jit``).
      tie_break: ``"smallest"`` (scikit-learn's rule) or ``"nearest"``.
      block_size: queries per ``lax.map`` block.
    Returns:
      ``[M]`` int32 predicted labels.

    >>> import jax.numpy as jnp
    >>> xt = jnp.array([[0.], [1.], [10.], [11.]]); yt = jnp.array([0, 0, 1, 1])
    >>> knn_predict(xt, yt, jnp.array([[0.4], [10.6]]), k=3).tolist()
    [0, 1]
    """
    _check(x_train_NxD, jnp.shape(y_train_N), x_query_MxD, k)
    if tie_break not in TIE_BREAKS:
        raise unknown_name("tie_break", tie_break, TIE_BREAKS)
    y = jnp.asarray(y_train_N).astype(jnp.int32)
    if num_classes is None:
        if isinstance(y, jax.core.Tracer):
            raise ConfigError("knn_predict under jit needs num_classes (labels are traced); pass num_classes=C")
        num_classes = int(jnp.max(y)) + 1
    _, idx = knn_neighbors(x_train_NxD, x_query_MxD, k=k, metric=metric, block_size=block_size)
    return vote(y[idx], num_classes, tie_break)
