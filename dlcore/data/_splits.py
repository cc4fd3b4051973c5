"""Keyed train/val/test splits (any fractions), stratified splits, k-fold and stratified k-fold.

The lectures' recipe: fit parameters on train, choose hyperparameters on validation, touch test
once (60/20/20; 80/10/10 and any other fractions work too). Every split here is a pure function of
a JAX key and the labels, returns sorted NumPy index arrays, and is computed on the host (split
sizes are data-dependent, so these are not traced).

Rounding rules (documented so the sizes are predictable):

* :func:`split_indices`: split sizes by largest remainder of ``fraction·N`` (they sum to N, each
  within one of ``fraction·N``).
* :func:`stratified_split_indices`: the same rule *within every class*, so every class's share of
  every split is within one example of ``fraction·N_class``; split totals may then differ from
  ``fraction·N`` by less than the number of classes.
* k-fold: fold sizes differ by at most one (the first ``N mod k`` folds are one larger);
  stratified k-fold deals each class's shuffled members round-robin, so every fold holds
  ``⌊N_c/k⌋`` or ``⌈N_c/k⌉`` of class c and fold sizes also differ by at most one.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import numpy as np

from dlcore.errors import ConfigError, DataError, ShapeError

_SUM_TOL = 1e-6


class Fold(NamedTuple):
    """One cross-validation fold: sorted ``train`` and ``val`` index arrays (a partition of N)."""

    train: np.ndarray
    val: np.ndarray


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    f = np.asarray(fractions, dtype=np.float64)
    if f.ndim != 1 or len(f) < 2:
        raise ConfigError(f"fractions must list at least two split fractions, got {fractions!r}; e.g. (0.6, 0.2, 0.2)")
    if np.any(f < 0) or not np.all(np.isfinite(f)):
        raise ConfigError(f"split fractions must be finite and non-negative, got {list(fractions)}")
    if abs(f.sum() - 1.0) > _SUM_TOL:
        raise ConfigError(
            f"split fractions must sum to 1, got {list(fractions)} (sum {f.sum():.6g}); "
            "e.g. (0.6, 0.2, 0.2) or (0.8, 0.1, 0.1)"
        )
    return f


def _largest_remainder(n: int, f: np.ndarray) -> np.ndarray:
    # Floors first, then one extra to the largest remainders (ties: the earlier split).
    exact = f * n
    counts = np.floor(exact).astype(np.int64)
    short = n - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:short]] += 1
    return counts


def _permutation(key, n: int) -> np.ndarray:
    return np.asarray(jax.random.permutation(key, n)) if n else np.zeros(0, np.int64)


def _labels(y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ShapeError(f"labels must be a 1-D array [N], got shape {y.shape}")
    return y


def split_indices(
    key: jax.Array, num_examples: int, fractions: Sequence[float] = (0.6, 0.2, 0.2)
) -> tuple[np.ndarray, ...]:
    """Random disjoint index sets covering ``range(num_examples)``, one per fraction.

    Args:
      key: split key (e.g. ``dlcore.random.key(seed, "split")``).
      num_examples: N.
      fractions: split fractions summing to 1, e.g. ``(0.6, 0.2, 0.2)`` for train/val/test.
    Returns:
      one sorted int array per fraction.

    >>> import jax
    >>> tr, va, te = split_indices(jax.random.PRNGKey(0), 10, (0.6, 0.2, 0.2))
    >>> len(tr), len(va), len(te)
    (6, 2, 2)
    """
    f = _check_fractions(fractions)
    counts = _largest_remainder(int(num_examples), f)
    perm = _permutation(key, int(num_examples))
    bounds = np.cumsum(counts)[:-1]
    return tuple(np.sort(part) for part in np.split(perm, bounds))


def _class_members(key, y: np.ndarray):
    # One uniform draw per example orders every class's members (one random call for all classes,
    # compiled once per N instead of once per class size); argsort is stable, so it is exact.
    u = np.asarray(jax.random.uniform(key, (len(y),)))
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        yield c, members[np.argsort(u[members], kind="stable")]


def stratified_split_indices(
    key: jax.Array, y_N, fractions: Sequence[float] = (0.6, 0.2, 0.2)
) -> tuple[np.ndarray, ...]:
    """Like :func:`split_indices`, but every class is split in the given proportions.

    Every class needs at least one example per split with a non-zero fraction.

    Args:
      key: split key.
      y_N: integer class labels.
      fractions: split fractions summing to 1.
    Returns:
      one sorted int array per fraction; class c has ``fraction·N_c`` members of each (± < 1).
    Raises:
      DataError: a class has fewer examples than there are (non-empty) splits.

    >>> import jax, numpy as np
    >>> tr, te = stratified_split_indices(jax.random.PRNGKey(0), np.array([0] * 8 + [1] * 4), (0.75, 0.25))
    >>> np.bincount(np.array([0] * 8 + [1] * 4)[te]).tolist()
    [2, 1]
    """
    f = _check_fractions(fractions)
    y = _labels(y_N)
    needed = int(np.count_nonzero(f))
    parts = [[] for _ in f]
    for c, members in _class_members(key, y):
        if len(members) < needed:
            raise DataError(
                f"class {c} has {len(members)} example(s), too few to stratify into {needed} splits; "
                "drop or merge rare classes, or use split_indices (not stratified)"
            )
        counts = _largest_remainder(len(members), f)
        for part, chunk in zip(parts, np.split(members, np.cumsum(counts)[:-1])):
            part.append(chunk)
    return tuple(np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts)


def _check_folds(num_folds: int, n: int):
    if not isinstance(num_folds, (int, np.integer)) or num_folds < 2:
        raise ConfigError(f"num_folds must be an integer >= 2, got {num_folds!r}")
    if num_folds > n:
        raise ConfigError(f"num_folds={num_folds} exceeds the number of examples ({n}); use fewer folds")


def _folds_from_ids(fold_id: np.ndarray, num_folds: int) -> list[Fold]:
    return [Fold(np.flatnonzero(fold_id != i), np.flatnonzero(fold_id == i)) for i in range(num_folds)]


def kfold_indices(key: jax.Array, num_examples: int, num_folds: int = 5) -> list[Fold]:
    """k-fold cross-validation on a keyed shuffle: every example is in exactly one ``val`` set.

    >>> import jax
    >>> [len(f.val) for f in kfold_indices(jax.random.PRNGKey(0), 10, 3)]
    [4, 3, 3]
    """
    n = int(num_examples)
    _check_folds(num_folds, n)
    sizes = np.full(num_folds, n // num_folds)
    sizes[: n % num_folds] += 1
    fold_id = np.empty(n, np.int64)
    fold_id[_permutation(key, n)] = np.repeat(np.arange(num_folds), sizes)
    return _folds_from_ids(fold_id, num_folds)


def stratified_kfold_indices(key: jax.Array, y_N, num_folds: int = 5) -> list[Fold]:
    """k-fold cross-validation keeping every class's proportion in every fold (within one example).

    Raises:
      DataError: a class has fewer examples than ``num_folds``.

    >>> import jax, numpy as np
    >>> y = np.array([0] * 6 + [1] * 3)
    >>> [np.bincount(y[f.val]).tolist() for f in stratified_kfold_indices(jax.random.PRNGKey(0), y, 3)]
    [[2, 1], [2, 1], [2, 1]]
    """
    y = _labels(y_N)
    _check_folds(num_folds, len(y))
    order = []
    for c, members in _class_members(key, y):
        if len(members) < num_folds:
            raise DataError(
                f"class {c} has {len(members)} example(s), fewer than num_folds={num_folds}; "
                "use fewer folds, drop or merge rare classes, or use kfold_indices (not stratified)"
            )
        order.append(members)
    order = np.concatenate(order)
    fold_id = np.empty(len(y), np.int64)
    # Round-robin over the class-grouped order: per-class and total fold sizes both differ by ≤ 1.
    fold_id[order] = np.arange(len(y)) % num_folds
    return _folds_from_ids(fold_id, num_folds)


def train_val_test_split(
    key: jax.Array,
    x,
    y,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    *,
    stratify: bool = False,
) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Split arrays ``(x, y)`` into ``((x_0, y_0), (x_1, y_1), ...)``, one pair per fraction.

    >>> import jax, numpy as np
    >>> key = jax.random.PRNGKey(0)
    >>> (xtr, ytr), (xva, yva), (xte, yte) = train_val_test_split(
    ...     key, np.zeros((10, 2)), np.arange(10) % 2, (0.6, 0.2, 0.2), stratify=True)
    >>> len(xtr), len(xva), len(xte)
    (6, 2, 2)
    """
    x, y = np.asarray(x), _labels(y)
    if len(x) != len(y):
        raise ShapeError(f"x has {len(x)} examples but y has {len(y)}; pass one label per example")
    parts = stratified_split_indices(key, y, fractions) if stratify else split_indices(key, len(y), fractions)
    return tuple((x[i], y[i]) for i in parts)
