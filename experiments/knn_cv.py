"""kNN on digits: k and the L1/L2 distance chosen by k-fold cross-validation, vs test accuracy.

The lectures: hyperparameters (k, the distance) are chosen on validation data, never on the test
set; with little data, k-fold cross-validation — train on k−1 folds, validate on the last, rotate,
average — uses every example for validation once. Each seed is one replicate of the whole
procedure on scikit-learn's 8×8 digits (``dlcore.data.generate_digits``, 1,797 images, pooled):
a stratified 80/20 train/test split (``dlcore.data.stratified_split_indices``), 5 stratified folds
of the training part (``dlcore.data.stratified_kfold_indices``), the cross-validated accuracy of
every candidate k ∈ {1, 3, 5, 7, 9, 15, 25} × {L2, L1} (``dlcore.classic.knn_predict``'s vote on
the nearest neighbours; ties between candidates go to L2, then the smaller k), then each candidate
refitted on the whole training part and scored on the test part. Three rules (the ``rule`` axis):
``cv`` takes the best cross-validated candidate; ``1nn_l2`` is the fixed default (k = 1, L2);
``oracle`` takes the best *test* accuracy — the hindsight bound no honest procedure can use.
Per rule: ``val/accuracy`` (its cross-validated accuracy), ``test/accuracy``, ``test/regret`` (the
oracle's test accuracy minus the rule's), ``test/optimism`` (how optimistic the CV estimate
is), and the chosen ``test/k`` and ``test/l1`` (1 = L1). A measured study (``measure`` below: no
training loop). Run:

    dlcore run knn_cv
    dlcore report runs/knn_cv/<timestamp>

More replicates: dlcore run knn_cv --config.sweep.seeds=32; other folds: --config.num_folds=10;
other candidates: --config.ks="(1,2,3,4,5,6,7,8)"
"""

import ml_collections
import numpy as np

from _base import study


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict(dict(rule="cv", ks=(1, 3, 5, 7, 9, 15, 25), metrics=("l2", "l1"), num_folds=5,
                                       test_fraction=0.2))
    c.sweep = study(
        dict(rule=dict(path="rule", values=("cv", "1nn_l2", "oracle"))),
        select=dict(group_by=("rule",)),  # every rule is reported
    )
    c.claim = dict(
        text="k and the distance chosen by 5-fold cross-validation give a test accuracy within 1 point of the "
             "best candidate in hindsight and no worse than the default 1-NN with L2",
        checks=(
            "test/regret: rule=cv < 0.01",
            "test/accuracy: rule=cv >= rule=1nn_l2",
        ),
    )
    return c


_CACHE: dict = {}  # the three rules share one computation per seed


def _candidates(config):
    return [(m, int(k)) for m in config.metrics for k in config.ks]


def _replicate(config, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(cv_accuracy [C], test_accuracy [C])`` of every candidate for one seed."""
    import jax.numpy as jnp

    from dlcore import random as drandom
    from dlcore.classic import knn_neighbors, vote
    from dlcore.data import generate_digits, stratified_kfold_indices, stratified_split_indices

    d = generate_digits()
    x = np.concatenate([d["x"], d["x_test"]]).reshape(-1, 64).astype(np.float32)
    y = np.concatenate([d["y"], d["y_test"]]).astype(np.int32)
    f = float(config.test_fraction)
    train, test = stratified_split_indices(drandom.key(seed, "split"), y, (1.0 - f, f))
    folds = stratified_kfold_indices(drandom.key(seed, "folds"), y[train], int(config.num_folds))
    cands = _candidates(config)
    k_max = max(k for _, k in cands)

    def accuracies(tr, q):  # every candidate's accuracy on queries q with training rows tr
        out = {}
        for metric in config.metrics:
            _, idx = knn_neighbors(x[tr], x[q], k=k_max, metric=metric)
            labels = jnp.asarray(y[tr])[idx]
            for k in config.ks:
                pred = vote(labels[:, : int(k)], 10)
                out[(metric, int(k))] = float(jnp.mean(pred == jnp.asarray(y[q])))
        return np.asarray([out[c] for c in cands])

    cv = np.mean([accuracies(train[fo.train], train[fo.val]) for fo in folds], axis=0)
    return cv, accuracies(train, test)


def measure(config, seeds):
    cands = _candidates(config)
    out = {k: [] for k in ("val/accuracy", "test/accuracy", "test/regret", "test/optimism", "test/k",
                           "test/l1")}
    for s in seeds:
        key = (int(s), repr(cands), int(config.num_folds), float(config.test_fraction))
        if key not in _CACHE:
            _CACHE[key] = _replicate(config, int(s))
        cv, test = _CACHE[key]
        if config.rule == "cv":
            i = int(np.argmax(cv))  # the first maximum: L2 before L1, smaller k first
        elif config.rule == "oracle":
            i = int(np.argmax(test))
        elif config.rule == "1nn_l2":
            i = cands.index(("l2", 1))
        else:
            from dlcore.errors import ConfigError

            raise ConfigError(f"config.rule must be 'cv', '1nn_l2' or 'oracle', got {config.rule!r}")
        out["val/accuracy"].append(cv[i])
        out["test/accuracy"].append(test[i])
        out["test/regret"].append(test.max() - test[i])
        out["test/optimism"].append(cv[i] - test[i])
        out["test/k"].append(cands[i][1])
        out["test/l1"].append(float(cands[i][0] == "l1"))
    return {k: np.asarray(v, np.float64) for k, v in out.items()}
