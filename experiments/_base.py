"""The base config every experiment derives from (as Flax's examples derive from ``default.py``).

An experiment imports it (``from _base import base_config, study``), overrides what differs and
documents its run command. ``dlcore run`` puts this folder on ``sys.path`` while it loads an
experiment, so an experiment copied elsewhere takes ``_base.py`` with it.
"""

import ml_collections


def base_config(**overrides) -> ml_collections.ConfigDict:
    """MNIST-1D, MLP 40-100-100-10, Adam 1e-2, batch 100, 6000 steps, evaluation every 500 steps.

    ``overrides`` replace top-level entries; nested sections are updated key by key
    (``model=dict(widths=(256, 256))`` keeps the other model keys).
    """
    c = ml_collections.ConfigDict()
    c.dataset = ml_collections.ConfigDict(
        dict(name="mnist1d", val_fraction=0.1, split_seed=0, standardize=True, data_dir="")
    )
    c.model = ml_collections.ConfigDict(dict(name="mlp", widths=(100, 100), activation="relu", norm="none"))
    c.optimizer = ml_collections.ConfigDict(dict(name="adam", schedule="constant"))
    # Numeric hyperparameters: carried in the train state, vmappable in sweeps.
    c.hparams = ml_collections.ConfigDict(dict(learning_rate=1e-2))
    c.batch_size = 100
    c.num_steps = 6000
    c.eval_every = 500
    c.seeds = 8
    for key, value in overrides.items():
        if isinstance(value, dict) and key in c and isinstance(c[key], ml_collections.ConfigDict):
            for k, v in value.items():  # new keys too (e.g. a hyperparameter the base does not set)
                c[key][k] = v
        elif isinstance(value, dict):
            c[key] = ml_collections.ConfigDict(value)
        else:
            c[key] = value
    return c


def study(axes: dict, **settings) -> ml_collections.ConfigDict:
    """A ``sweep`` section: ``axes`` plus the settings that differ from the defaults below."""
    s = dict(
        axes=axes,
        strategy="grid",  # grid | random | refine
        seeds=8,
        study_seed=0,
        num_points=0,  # random search: how many points
        refine=dict(start="grid", rounds=1, top_k=1, num=3),
        budget=dict(max_points=0, max_steps=0),  # 0 = unlimited
        select=dict(metric="val/accuracy", mode="auto", statistic="mean", group_by=()),
        max_parallel=0,  # most runs in one program (0 = all at once)
        confidence=0.95,
        bootstrap_resamples=2000,
    )
    for k, v in settings.items():
        s[k] = dict(s[k], **v) if isinstance(s.get(k), dict) and k != "axes" else v
    return ml_collections.ConfigDict(s)
