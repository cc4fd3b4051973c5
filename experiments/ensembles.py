"""Ensembles and bagging: test accuracy and calibration (ECE) vs the number of averaged networks.

The lectures: "train multiple models and average their results; if errors are uncorrelated the
expected error falls with the ensemble size. Bagging: k different datasets (or SGD/init noise) —
in theory bootstrap samples, in practice all the data." For every seed, ``members`` = 8 MLPs
(40-100-100-10, Adam 1e-3, batch 100, 3000 steps on MNIST-1D) train together as one
``dlcore.nn.Ensemble`` (one compiled program for all seeds' members; member ``m`` of seed ``s``
starts from the initial parameters of a lone run of seed 1000·s + m; all members see the same
minibatch order, so without bagging they differ by their initialization only). With ``bagging``
every member's loss weights each example by its count in the member's own bootstrap resample
(``dlcore.nn.bootstrap_counts``, key ``(seed, "bagging")``): about 63% of the examples, some
repeated. The ensemble of ``size`` M averages the softmax probabilities of the seed's first M
members (``dlcore.nn.ensemble_predict``), so the sizes are nested and one training serves all of
them. Per point: ``val/accuracy``, ``val/ece``, ``test/accuracy``, ``test/ece`` (15 bins,
``dlcore.metrics.expected_calibration_error``), ``test/nll`` and ``test/member_acc`` (the mean
accuracy of the M members alone). The networks train inside ``measure`` (``dlcore.train.fit``), so
this is a measured study. Run (about 2–4 minutes on 2 CPU cores):

    dlcore run ensembles
    dlcore report runs/ensembles/<timestamp>

Larger: dlcore run ensembles --config.members=16 --config.sweep.axes.size.values="(1,2,4,8,16)"
--config.num_steps=6000 --config.sweep.seeds=16
"""

import ml_collections
import numpy as np

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(hparams=dict(learning_rate=1e-3), num_steps=3000, eval_every=1000)
    c.members = 8
    c.size = 1
    c.bagging = False
    c.sweep = study(
        dict(size=dict(path="size", values=(1, 2, 4, 8), integer=True),
             bagging=dict(path="bagging", values=(False, True))),
        select=dict(group_by=("size", "bagging")),  # every point is reported
    )
    c.claim = dict(
        text="Averaging 8 networks instead of 1 raises test accuracy and lowers the calibration error (ECE); "
             "bagging (bootstrap resamples) does not beat training every member on all the data",
        checks=(
            "test/accuracy: size=8 bagging=False > size=1 bagging=False",
            "test/ece: size=8 bagging=False < size=1 bagging=False",
            "test/accuracy: size=8 bagging=False >= size=8 bagging=True",
        ),
    )
    return c


_CACHE: dict = {}  # one training per (bagging, seeds, settings) serves every ensemble size


def _train(config, seeds, bagging: bool):
    """Member probabilities ``{"val": [S, M, N, C], "test": ...}`` and labels for ``seeds``."""
    import jax
    import jax.numpy as jnp

    from dlcore import random as drandom
    from dlcore.cli._build import build_dataset, build_model, build_optimizer
    from dlcore.nn import Ensemble, bootstrap_counts, ensemble_loss, ensemble_metrics
    from dlcore.train import Recipe, fit

    data = build_dataset(config.dataset)
    m = int(config.members)
    ids = [1000 * int(s) + j for s in seeds for j in range(m)]
    model = Ensemble(build_model(config.model, data.num_classes), member_ids=ids)
    recipe = Recipe(model, build_optimizer(config.optimizer, int(config.num_steps)), loss=ensemble_loss,
                    metrics=ensemble_metrics)
    if bagging:
        n = int(data.y_train.shape[0])
        counts = jnp.concatenate([bootstrap_counts(drandom.key(int(s), "bagging"), n, m) for s in seeds])
        data = data.replace(y_train=jnp.concatenate([data.y_train[:, None].astype(jnp.int32), counts.T], axis=1))
    res = fit(recipe, data, 0, hparams=dict(config.hparams), num_steps=int(config.num_steps),
              batch_size=int(config.batch_size), eval_every=int(config.eval_every), evaluate_test=False,
              progress=False)
    variables = {"params": res.state.params, **res.state.model_state}
    (xv, yv), (xt, yt) = data.split("val"), data.split("test")
    logits = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, jnp.concatenate([xv, xt]))  # [S·M, N, C]
    probs = np.asarray(jax.nn.softmax(logits, axis=-1)).reshape(len(seeds), m, *logits.shape[1:])
    nv = int(xv.shape[0])
    return {"val": (probs[:, :, :nv], np.asarray(yv)), "test": (probs[:, :, nv:], np.asarray(yt))}


def measure(config, seeds):
    import jax.numpy as jnp

    from dlcore.errors import ConfigError
    from dlcore.metrics import expected_calibration_error

    size, m = int(config.size), int(config.members)
    if not 1 <= size <= m:
        raise ConfigError(f"config.size={size} must be between 1 and config.members={m}")
    settings = {k: v for k, v in config.to_dict().items() if k not in ("size", "claim")}
    key = (bool(config.bagging), tuple(int(s) for s in seeds), repr(sorted(settings.items())))
    if key not in _CACHE:
        _CACHE[key] = _train(config, seeds, bool(config.bagging))
    out = {}
    for split, (probs, y) in _CACHE[key].items():  # probs [S, M, N, C]
        if split == "val" and y.size == 0:
            continue
        p = probs[:, :size].mean(axis=1)  # [S, N, C]
        out[f"{split}/accuracy"] = (p.argmax(-1) == y).mean(-1)
        out[f"{split}/ece"] = np.asarray([float(expected_calibration_error(jnp.asarray(q), jnp.asarray(y)))
                                          for q in p])
        if split == "test":
            out["test/nll"] = -np.log(np.take_along_axis(p, y[None, :, None], -1)[..., 0] + 1e-12).mean(-1)
            out["test/member_acc"] = (probs[:, :size].argmax(-1) == y).mean(axis=(1, 2))
    return out
