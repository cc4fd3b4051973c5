"""From an experiment config to library objects (the only place that reads configs)."""

from __future__ import annotations

from typing import Any, Callable

import ml_collections

from dlcore.errors import ConfigError, unknown_name


def _mlp(cfg, num_classes):
    from dlcore.nn import MLP, NORMS, get_activation

    widths = cfg.get("widths", (100, 100))
    if isinstance(widths, (int, float)):
        widths = (widths,)
    if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
        raise ConfigError(f"config.model.widths must be positive integers, got {tuple(widths)!r}; "
                          'e.g. --config.model.widths="(100,100)"')
    norm = cfg.get("norm", "none")
    if norm not in NORMS:
        raise unknown_name("norm (config.model.norm)", str(norm), NORMS)
    get_activation(cfg.get("activation", "relu"))  # unknown names: one line listing the valid ones
    bn_momentum = cfg.get("bn_momentum", 0.9)
    if isinstance(bn_momentum, bool) or not isinstance(bn_momentum, (int, float)) or not 0 <= bn_momentum < 1:
        raise ConfigError(f"config.model.bn_momentum must be in [0, 1), got {bn_momentum!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"the dataset has {num_classes!r} classes; a classifier needs at least 1")
    return MLP(
        widths=tuple(int(w) for w in cfg.get("widths", (100, 100))),
        num_outputs=num_classes,
        activation=cfg.get("activation", "relu"),
        norm=cfg.get("norm", "none"),
        bn_momentum=float(cfg.get("bn_momentum", 0.9)),
    )


def _rnn(cfg, num_classes):
    from dlcore.nn import RNNModel

    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k != "name"}
    # A regression task (num_classes 0, e.g. the adding problem) predicts one number.
    kwargs.setdefault("num_outputs", num_classes if num_classes > 0 else 1)
    try:
        return RNNModel(**kwargs)
    except TypeError as e:
        raise ConfigError(f"config.model (rnn): {e}") from None


MODEL_BUILDERS: dict[str, Callable[[Any, int], Any]] = {"mlp": _mlp, "rnn": _rnn}
"""Model name -> ``builder(model_config, num_classes) -> linen.Module``; extend to add models."""


MODEL_WRAPPER_KEYS = ("permute_inputs", "permute_seed")
"""Model-section keys read here, not passed to the model: ``permute_inputs`` (bool) reorders the
input positions by the fixed permutation of ``permute_seed`` (default 0) — ``dlcore.models.PermuteInputs``."""


def build_model(cfg: ml_collections.ConfigDict, num_classes: int):
    """The Linen module named by ``cfg.name`` (``MODEL_BUILDERS``, else ``dlcore.models``)."""
    if any(k in cfg for k in MODEL_WRAPPER_KEYS):
        inner = ml_collections.ConfigDict({k: v for k, v in cfg.items() if k not in MODEL_WRAPPER_KEYS})
        model = build_model(inner, num_classes)
        if not cfg.get("permute_inputs", False):
            return model
        from dlcore.models import PermuteInputs

        return PermuteInputs(model, seed=int(cfg.get("permute_seed", 0)))
    name = cfg.get("name")
    if name in MODEL_BUILDERS:
        return MODEL_BUILDERS[name](cfg, num_classes)
    try:
        from dlcore import models
    except ImportError:
        models = None
    get_model = getattr(models, "get_model", None) if models is not None else None
    if get_model is not None:
        kwargs = {k: v for k, v in cfg.items() if k != "name"}
        return get_model(name, num_classes=num_classes, **kwargs)
    raise unknown_name("model", str(name), MODEL_BUILDERS)


SYNTHETIC_DATASETS = ("adding", "copy")
"""``config.dataset.name`` of generated sequence tasks (:func:`dlcore.tasks.synthetic_dataset`):
``num_train``, ``num_val``, ``num_test`` and the task's parameters in ``config.dataset.task``
(``adding``: ``seq_len``, ``lag``; ``copy``: ``copy_len``, ``lag``, ``num_symbols``), generated from
``dlcore.random.key(split_seed, "data")``. A study may sweep them (``dataset.task.lag``)."""


def build_dataset(cfg: ml_collections.ConfigDict, lazy_train: bool = False):
    from dlcore.data import load_dataset

    if cfg.get("name") in SYNTHETIC_DATASETS:
        from dlcore import random as drandom
        from dlcore.tasks import synthetic_dataset

        sizes = {k: cfg.get(k, d) for k, d in (("num_train", 2000), ("num_val", 500), ("num_test", 1000))}
        for k, v in sizes.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"config.dataset.{k} must be a positive integer, got {v!r}")
        task = cfg.get("task") or {}
        task = task.to_dict() if isinstance(task, ml_collections.ConfigDict) else dict(task)
        try:
            return synthetic_dataset(cfg.name, drandom.key(int(cfg.get("split_seed", 0)), "data"), **sizes, **task)
        except TypeError as e:
            raise ConfigError(f"config.dataset.task: {e}") from None
    return load_dataset(
        cfg.get("name", "mnist1d"),
        val_fraction=float(cfg.get("val_fraction", 0.1)),
        split_seed=int(cfg.get("split_seed", 0)),
        standardize=cfg.get("standardize", True),
        data_dir=cfg.get("data_dir") or None,
        # None or negative: positions as they are; else one fixed permutation for every split.
        permute_seed=None if cfg.get("permute_seed") is None or cfg.get("permute_seed") < 0
        else int(cfg.get("permute_seed")),
        lazy_train=lazy_train,  # multi-host: the training rows are read per process (see _run._load_data)
    )


def build_optimizer(cfg: ml_collections.ConfigDict, num_steps: int):
    from dlcore import optim

    schedule = None
    sched_name = cfg.get("schedule", "constant")
    if sched_name not in (None, "", "constant"):
        get_schedule = getattr(optim, "get_schedule", None)
        if get_schedule is None:
            raise ConfigError(f"schedule {sched_name!r} needs dlcore.optim.get_schedule")
        kwargs = dict(cfg.get("schedule_kwargs", {}) or {})
        # Per-schedule arguments (a study sweeping optimizer.schedule): schedule_kwargs.<name> = {...},
        # whose optional "schedule" entry names the schedule it configures (e.g. a warmup variant).
        per = kwargs.get(sched_name)
        if isinstance(per, (dict, ml_collections.ConfigDict)):
            kwargs = dict(per)
            sched_name = kwargs.pop("schedule", sched_name)
        schedule = get_schedule(sched_name, num_steps=num_steps, **kwargs)
    # Every other key is a static option of the optimizer (e.g. bias_correction=False for adam).
    static = {k: v for k, v in cfg.items() if k not in ("name", "schedule", "schedule_kwargs")}
    return optim.optimizer_fn(cfg.get("name", "adam"), schedule=schedule, **static)


LOSSES = ("cross_entropy", "multiclass_hinge", "crammer_singer_hinge", "mse")
"""``config.loss`` names (default ``cross_entropy``): per-example losses of the logits (``mse``: of a
scalar prediction; its metric is ``mse`` instead of accuracy)."""


def build_loss(name: str | None):
    """The Recipe loss ``(outputs, batch, hparams) -> [B]`` named by ``config.loss``."""
    from dlcore import losses
    from dlcore.errors import unknown_name

    if name in (None, "", "cross_entropy"):
        return None  # the Recipe's default (cross-entropy with optional label smoothing)
    if name == "mse":  # scalar targets (the adding problem): squared error of a one-output model
        from dlcore.tasks import regression_loss

        return regression_loss
    if name == "multiclass_hinge":
        return lambda out, batch, hp: losses.multiclass_hinge(out, batch["y"], hp.get("margin", 1.0))
    if name == "crammer_singer_hinge":
        return lambda out, batch, hp: losses.multiclass_hinge(out, batch["y"], hp.get("margin", 1.0),
                                                              kind="crammer_singer")
    raise unknown_name("loss", str(name), LOSSES)


AUGMENTS = ("none", "flip", "crop", "brightness", "contrast")
"""``config.augment`` names (joined by ``+`` to chain them, e.g. ``"crop+contrast"``), applied to
training batches (:mod:`dlcore.data`); ``config.augment_options.<name>`` overrides the defaults:
``flip=dict(prob=0.5)`` (left-right), ``crop=dict(padding=1)`` (pad and cut a random window: a
shift of up to ``padding`` pixels), ``brightness=dict(max_delta=0.5)``, ``contrast=dict(lower=0.6, upper=1.4)``."""

AUGMENT_DEFAULTS = dict(flip=dict(prob=0.5), crop=dict(padding=1), brightness=dict(max_delta=0.5),
                        contrast=dict(lower=0.6, upper=1.4))


def build_augment(name, options=None):
    """The Recipe's ``augment(key, x) -> x`` named by ``config.augment`` (None for ``"none"``)."""
    import functools

    from dlcore import data as ddata

    if name in (None, "", "none"):
        return None
    parts = str(name).split("+")
    fns = {"flip": ddata.random_flip, "crop": ddata.random_crop, "brightness": ddata.random_brightness,
           "contrast": ddata.random_contrast}
    options = options.to_dict() if isinstance(options, ml_collections.ConfigDict) else dict(options or {})
    augs = []
    for part in parts:
        if part not in fns:
            raise unknown_name("augmentation (config.augment, joined by '+')", part, AUGMENTS)
        opts = dict(AUGMENT_DEFAULTS[part], **dict(options.get(part) or {}))
        try:
            import inspect

            inspect.signature(fns[part]).bind(None, None, **opts)
        except TypeError as e:
            raise ConfigError(f"config.augment_options.{part}: {e}") from None
        augs.append(functools.partial(fns[part], **opts))
    return augs[0] if len(augs) == 1 else ddata.compose(*augs)


def build_recipe(config: ml_collections.ConfigDict, num_classes: int):
    from dlcore.train import Recipe

    loss = build_loss(config.get("loss"))
    extra = {} if loss is None else {"loss": loss}
    augment = build_augment(config.get("augment"), config.get("augment_options"))
    if augment is not None:
        extra["augment"] = augment
    metrics = build_metrics(config.get("metrics", ()))
    if config.get("loss") == "mse":
        from dlcore.tasks import regression_metrics

        metrics = regression_metrics
    if metrics is not None:
        extra["metrics"] = metrics
    return Recipe(
        model=build_model(config.model, num_classes),
        optimizer=build_optimizer(config.optimizer, int(config.num_steps)),
        **extra,
    )


EXTRA_METRICS = ("margin",)
"""``config.metrics`` names reported beside accuracy (train/val/test): ``margin`` = s_y − max_{j≠y} s_j."""


def build_metrics(names):
    """The Recipe metrics: accuracy plus the ``config.metrics`` names (None: the default, accuracy only)."""
    names = tuple(names or ())
    if not names:
        return None
    from dlcore import metrics
    from dlcore.errors import unknown_name

    for n in names:
        if n not in EXTRA_METRICS:
            raise unknown_name("metric (config.metrics)", str(n), EXTRA_METRICS)

    def fn(out, batch):
        m = {"accuracy": metrics.correct(out, batch["y"])}
        if "margin" in names:
            m["margin"] = metrics.margin(out, batch["y"])
        return m

    return fn


MEASURES = ("calibration", "gradient_noise", "step_time", "input_gradients")
"""``config.measure`` sections: numbers measured once per run after training (``results.csv`` columns).

* ``calibration=dict(mc_samples=30, num_bins=15)``: ``test/ece`` of the deterministic net and, with
  ``mc_samples > 0``, ``test/mc_ece``, ``test/mc_accuracy`` and ``test/ece_gain = ece − mc_ece``
  of MC dropout (:func:`dlcore.train.calibration`).
* ``gradient_noise=dict(num_batches=32)``: ``train/grad_var`` = E‖g_B − g‖² of minibatches of the
  run's batch size around the full-batch gradient, and ``train/grad_trace`` (the 1/B law's tr Σ), at
  the final parameters and (``…_init``) at the initial ones (:func:`dlcore.train.gradient_noise`).
* ``step_time=dict(probe_steps=20)``: ``train/step_ms`` per training step and ``train/us_per_example``
  (:func:`dlcore.diagnostics.step_seconds`; wall-clock, so not reproducible bit for bit).
* ``input_gradients=dict(num_examples=500)``: for sequence inputs ``[N, T, D]``, the mean gradient
  norm of the loss with respect to each step's input at the final parameters
  (:func:`dlcore.train.input_gradient_norms`, on the first ``num_examples`` training examples):
  ``train/input_grad_log10_first_last`` = log10 of the first step's over the last step's.
"""


def check_measure(cfg) -> dict:
    """``config.measure`` as ``{name: options}`` (unknown names and options are a :class:`ConfigError`)."""
    sec = cfg.get("measure", None)
    if not sec:
        return {}
    sec = sec.to_dict() if isinstance(sec, ml_collections.ConfigDict) else dict(sec)
    allowed = {"calibration": {"mc_samples", "num_bins"}, "gradient_noise": {"num_batches"},
               "step_time": {"probe_steps"}, "input_gradients": {"num_examples"}}
    out = {}
    for name, opts in sec.items():
        if name not in MEASURES:
            raise unknown_name("measurement (config.measure)", str(name), MEASURES)
        opts = dict(opts or {})
        bad = sorted(set(opts) - allowed[name])
        if bad:
            raise ConfigError(f"config.measure.{name}.{bad[0]} is not an option; valid: "
                              f"{', '.join(sorted(allowed[name]))}")
        for k, v in opts.items():
            low = 0 if k == "mc_samples" else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                kind = "non-negative" if low == 0 else "positive"
                raise ConfigError(f"config.measure.{name}.{k} must be a {kind} integer, got {v!r}")
        out[name] = opts
    return out


def build_measure(cfg, recipe):
    """The study's per-point ``measure(states, seeds, data)`` (``None`` without ``config.measure``)."""
    sections = check_measure(cfg)
    if not sections:
        return None
    batch_size = int(cfg.batch_size)

    def measure(states, seeds, data):
        import jax
        import numpy as np

        from dlcore import random as drandom
        from dlcore.train import calibration, gradient_noise, init_state

        out = {}
        keys = jax.numpy.stack([drandom.key(s, "measure") for s in seeds])
        if "calibration" in sections:
            o = sections["calibration"]
            x, y = data.split("test")
            fn = jax.jit(jax.vmap(lambda st, k: calibration(recipe, st, x, y, num_bins=o.get("num_bins", 15),
                                                            mc_samples=o.get("mc_samples", 0), key=k)))
            out.update({f"test/{k}": v for k, v in fn(states, keys).items() if k != "accuracy"})
        if "gradient_noise" in sections:
            nb = sections["gradient_noise"].get("num_batches", 32)
            x, y = data.split("train")
            b = min(batch_size, int(x.shape[0]))
            fn = jax.jit(jax.vmap(lambda st, k, p: gradient_noise(recipe, st, x, y, b, k, num_batches=nb, params=p)))
            init = jax.jit(lambda s, hp: init_state(recipe, s, hp, x[:1]).params)
            hps = [{k: v[i] for k, v in states.hparams.items()} for i in range(len(seeds))]
            p0 = jax.tree.map(lambda *a: np.stack(a), *[jax.device_get(init(s, hp)) for s, hp in zip(seeds, hps)])
            for suffix, params in (("", states.params), ("_init", p0)):
                r = fn(states, keys, params)
                out[f"train/grad_var{suffix}"] = r["grad_var"]
                out[f"train/grad_trace{suffix}"] = r["grad_trace"]
        if "step_time" in sections:
            from dlcore.diagnostics import step_seconds

            hp = {k: float(v[0]) for k, v in states.hparams.items()}
            sec = step_seconds(recipe, data, hparams=hp, batch_size=batch_size, seeds=seeds,
                               probe_steps=sections["step_time"].get("probe_steps", 20))
            out["train/step_ms"] = 1e3 * sec
            out["train/us_per_example"] = 1e6 * sec / batch_size
        if "input_gradients" in sections:
            from dlcore.train import input_gradient_norms

            n = sections["input_gradients"].get("num_examples", 500)
            x, y = data.split("train")
            x, y = x[:n], y[:n]
            g = jax.jit(jax.vmap(lambda st: input_gradient_norms(recipe, st, x, y)))(states)  # [S, T]
            out["train/input_grad_log10_first_last"] = np.log10(np.asarray(g[:, 0]) / np.asarray(g[:, -1]))
        return {k: np.asarray(v, np.float64) for k, v in out.items()}

    return measure


# Hyperparameters the loss and penalty read (dlcore.train.classification_loss, weight_penalty).
LOSS_HPARAMS = ("label_smoothing", "l1", "l2")



def consumed_hparams(config: ml_collections.ConfigDict) -> set[str]:
    """Hyperparameter names something reads: any optimizer, the loss and penalty, or a model field.

    Names of every registered optimizer are accepted (a study may sweep the optimizer itself);
    a model's numeric fields (e.g. ``MLP.dropout_rate``) are set from ``hparams`` per step.
    """
    import dataclasses

    from dlcore.optim import COMMON_HPARAMS, OPTIMIZERS

    names = set(COMMON_HPARAMS) | set(LOSS_HPARAMS)
    for _, defaults in OPTIMIZERS.values():
        names |= set(defaults)
    if "model" in config:
        model = build_model(config.model, 2)
        for f in dataclasses.fields(model):
            v = getattr(model, f.name, None)
            if f.name not in ("parent", "name") and isinstance(v, float):  # e.g. dropout_rate, bn_momentum
                names.add(f.name)
    return names


def check_hparam_names(config: ml_collections.ConfigDict) -> None:
    """Refuse a hyperparameter nothing reads (a misspelling would silently run with the default)."""
    import difflib

    known = consumed_hparams(config)
    for k in config.hparams.keys():
        if k not in known:
            close = difflib.get_close_matches(k, sorted(known), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"unknown hyperparameter config.hparams.{k}: neither the optimizer, the loss nor the model "
                f"reads it; {hint}known: {', '.join(sorted(known))}"
            )


def check_hparam_values(hparams) -> None:
    """Every hyperparameter of a config a finite number in its range."""
    import numpy as np

    from dlcore.optim import check_hparams

    for k, v in hparams.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"config.hparams.{k} must be a number, got {v!r}")
        if not np.isfinite(v):
            raise ConfigError(f"config.hparams.{k} must be a finite number, got {v!r}; set "
                              f"--config.hparams.{k}=<number>")
    if "learning_rate" in hparams and hparams["learning_rate"] <= 0:
        raise ConfigError(f"config.hparams.learning_rate must be positive, got {hparams['learning_rate']}")
    check_hparams(dict(hparams))  # ranges: optimizer's, dropout_rate, label_smoothing, l1, l2


def validate_run_config(config: ml_collections.ConfigDict) -> None:
    """Check the run section's values before anything is computed (and before a run directory exists).

    Counts are positive integers; hyperparameters finite, in range and read by something
    (:func:`check_hparam_names`); the model's structure (widths, activation, norm) is buildable.
    """
    for key in ("num_steps", "batch_size", "eval_every"):
        if key not in config:
            raise ConfigError(f"the config has no {key!r}; add config.{key}")
        v = config[key]
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ConfigError(f"config.{key} must be a positive integer, got {v!r}")
    if "hparams" not in config or "learning_rate" not in config.hparams:
        raise ConfigError("the config needs config.hparams.learning_rate")
    check_hparam_values(config.hparams)
    check_hparam_names(config)
    check_measure(config)


def validate_data_fit(config: ml_collections.ConfigDict, data) -> None:
    """The batch fits the training split (call after loading the data, before creating the run directory)."""
    n = int(data.x_train.shape[0])
    if config.batch_size > n:
        raise ConfigError(f"config.batch_size={config.batch_size} is larger than the {n} training examples of "
                          f"{getattr(data, 'name', 'the dataset')}; use --config.batch_size={min(n, 100)} or less")


def validate_checkpoint_args(args) -> None:
    """``--checkpoint-every >= 0`` and ``--keep >= 1`` (before the run directory is created)."""
    every, keep = getattr(args, "checkpoint_every", 0), getattr(args, "keep", 1)
    if every is not None and every < 0:
        raise ConfigError(f"--checkpoint-every must be >= 0 (0: only at the end), got {every}")
    if keep is not None and keep < 1:
        raise ConfigError(f"--keep must be >= 1, got {keep}")
