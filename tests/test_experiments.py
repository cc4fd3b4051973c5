"""Every experiment in ./experiments loads, validates and (for studies) plans without training."""

import csv
import itertools

import pytest

from dlcore.cli import main
from dlcore.cli._build import validate_run_config
from dlcore.cli._config import available_experiments, load_experiment
from dlcore.cli._study import make_build, parse_sweep, validate_axes

EXPERIMENTS = available_experiments()


def test_the_shipped_experiments_are_found():
    assert {"mnist1d_mlp", "tiny", "tiny_study", "mnist1d_lr_sweep", "bn_lr_study", "dropout_study", "l2_study",
            "optimizer_study"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_config_is_valid(name):
    _, mod = load_experiment(name)
    assert mod.__doc__ and f"dlcore run {name}" in mod.__doc__  # the run command is in the docstring
    config = mod.get_config()
    if callable(getattr(mod, "measure", None)):  # a measured study: no training run to validate
        spec = parse_sweep(config)
        assert len(spec["seeds"]) >= 2 and spec["space"].names
        return
    validate_run_config(config)
    if "sweep" not in config:
        return
    spec = parse_sweep(config)
    build = make_build(config, num_classes=10)
    validate_axes(config, spec, build)  # builds every structure's recipe
    space = spec["space"]
    structures = list(itertools.product(*[a.grid() for a in space.structural()]))
    assert len(structures) >= 1 and len(spec["seeds"]) >= 2


def test_optimizer_study_runs_tiny(tmp_path, capsys):
    # The structural optimizer axis end to end: one program per optimizer, best rate per optimizer
    # (two of the five optimizers here; every optimizer's recipe is built by the test above).
    rc = main(["run", "optimizer_study", "--out", str(tmp_path), "--no-progress", "--config.num_steps=20",
               "--config.eval_every=10", "--config.sweep.seeds=2", "--config.sweep.bootstrap_resamples=100",
               "--config.sweep.axes.learning_rate.low=0.01", "--config.sweep.axes.learning_rate.high=0.1",
               "--config.sweep.axes.optimizer.values=('sgd','adam')"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "2 compiled programs" in out and "6 points × 2 seeds" in out
    best = next(line for line in out.splitlines() if line.startswith("best learning_rate per group"))
    assert "optimizer=sgd:" in best and "optimizer=adam:" in best


SMOKE = ["--no-progress", "--config.sweep.seeds=2", "--config.sweep.bootstrap_resamples=100"]


def _smoke(tmp_path, capsys, name, *overrides):
    rc = main(["run", name, "--out", str(tmp_path), *SMOKE, *overrides])
    out = capsys.readouterr().out
    assert rc == 0, out
    return out


def _test_rows(out):
    """``{label: {metric: mean}}`` from the report's test-split table."""
    rows = {}
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("test split (evaluated once"))
    for line in lines[start + 2:]:
        if not line.startswith("#"):
            break
        label, rest = line.split("  test/", 1)
        metric, n, mean = rest.split()[:3]
        rows.setdefault(label.strip(), {})["test/" + metric] = float(mean)
    return rows


def test_inductive_bias_runs_tiny(tmp_path, capsys):
    # The reference setup (no validation split): every point is tested; the validation column is NaN.
    out = _smoke(tmp_path, capsys, "inductive_bias", "--config.num_steps=30", "--config.eval_every=15",
                 "--config.sweep.axes.model.values=('logistic','mnist1d_mlp')")
    assert "4 points × 2 seeds" in out and "4 compiled programs" in out
    rows = _test_rows(out)
    assert set(rows) == {f"#{i} model={m} shuffled={s}" for i, (m, s) in enumerate(
        [("logistic", False), ("logistic", True), ("mnist1d_mlp", False), ("mnist1d_mlp", True)])}
    assert all(0.1 < r["test/accuracy"] < 1 for r in rows.values())


def test_hinge_vs_ce_runs_tiny(tmp_path, capsys):
    out = _smoke(tmp_path, capsys, "hinge_vs_ce", "--config.num_steps=30", "--config.eval_every=15",
                 "--config.model.widths=(16,)")
    rows = _test_rows(out)
    assert set(rows) == {"#0 loss=cross_entropy", "#1 loss=multiclass_hinge"}
    assert all("test/margin" in r for r in rows.values())


def test_adam_bias_correction_runs_tiny(tmp_path, capsys):
    out = _smoke(tmp_path, capsys, "adam_bias_correction", "--config.model.widths=(16,)",
                 "--config.sweep.axes.steps.values=(5,)", "--config.sweep.axes.learning_rate.values=(0.01,)")
    assert "2 points × 2 seeds" in out and "each point vs the best of steps=5 learning_rate=0.01" in out


def test_weight_decay_vs_l2_runs_tiny(tmp_path, capsys):
    out = _smoke(tmp_path, capsys, "weight_decay_vs_l2", "--config.num_steps=20", "--config.eval_every=10",
                 "--config.model.widths=(16,)")
    assert "8 points × 2 seeds" in out and "2 compiled programs" in out


def test_lr_schedules_runs_tiny(tmp_path, capsys):
    out = _smoke(tmp_path, capsys, "lr_schedules", "--config.num_steps=20", "--config.eval_every=10",
                 "--config.model.widths=(16,)",
                 "--config.sweep.axes.schedule.values=('step','cosine_warmup')",
                 "--config.optimizer.schedule_kwargs.cosine_warmup.warmup_steps=5")
    assert "2 points × 2 seeds" in out and "2 compiled programs" in out


def test_depth_skip_runs_tiny(tmp_path, capsys):
    out = _smoke(tmp_path, capsys, "depth_skip", "--config.num_steps=20", "--config.eval_every=10",
                 "--config.model.width=8", "--config.sweep.axes.depth.values=(3,)")
    assert set(_test_rows(out)) == {"#0 depth=3 residual=False", "#1 depth=3 residual=True"}


def test_transformer_warmup_runs_tiny(tmp_path, capsys):
    out = _smoke(tmp_path, capsys, "transformer_warmup", "--config.num_steps=20", "--config.eval_every=10",
                 "--config.model.d_model=8", "--config.model.num_heads=2", "--config.model.d_ff=8",
                 "--config.model.num_layers=1", "--config.sweep.axes.norm_first.values=(False,)",
                 "--config.sweep.axes.learning_rate.values=(0.003,)",
                 "--config.sweep.axes.schedule.values=('cosine_warmup',)",
                 "--config.optimizer.schedule_kwargs.cosine_warmup.warmup_steps=5")
    assert set(_test_rows(out)) == {"#0 learning_rate=0.003 norm_first=False schedule=cosine_warmup"}


def test_early_stopping_runs_tiny(tmp_path, capsys):
    """Patience 0 (the fixed schedule) runs every step; patience 1 on a noisy tiny run stops early."""
    out = _smoke(tmp_path, capsys, "early_stopping", "--config.num_steps=60", "--config.eval_every=5",
                 "--config.model.widths=(16,)", "--config.sweep.axes.patience.values=(0,1)",
                 "--config.hparams.learning_rate=0.3")
    assert set(_test_rows(out)) == {"#0 patience=0", "#1 patience=1"}
    (run_dir,) = tmp_path.glob("early_stopping/*")
    rows = list(csv.DictReader(open(run_dir / "results.csv")))
    fixed = [r for r in rows if r["patience"] == "0"]
    assert all(r["status"] == "ok" and r["stop_step"] == "-1" for r in fixed)
    stopped = [r for r in rows if r["patience"] == "1"]
    assert all(r["status"] == "stopped" and 0 < int(r["stop_step"]) < 60 for r in stopped)


def test_l1_vs_l2_runs_tiny(tmp_path, capsys):
    """Every run records its weights' sparsity; a strong L1 penalty zeroes more weights than none."""
    _smoke(tmp_path, capsys, "l1_vs_l2", "--config.num_steps=60", "--config.eval_every=30",
           "--config.model.widths=(16,)", "--config.hparams.learning_rate=0.01",
           "--config.sweep.axes.l1.values=(0.0,0.01)", "--config.sweep.axes.l2.values=(0.0,)")
    (run_dir,) = tmp_path.glob("l1_vs_l2/*")
    rows = list(csv.DictReader(open(run_dir / "results.csv")))
    sparsity = {float(r["l1"]): [] for r in rows}
    for r in rows:
        assert 0.0 <= float(r["weights/sparsity"]) <= 1.0 and float(r["weights/l2_norm"]) > 0
        sparsity[float(r["l1"])].append(float(r["weights/sparsity"]))
    assert min(sparsity[0.01]) > max(sparsity[0.0])


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_claim_checks_name_single_grid_points(name):
    # `dlcore report --catalog` evaluates config.claim.checks; each side must be one point of the grid.
    from dlcore.cli._catalog import OPS
    from dlcore.cli._report import _fmt

    _, mod = load_experiment(name)
    config = mod.get_config()
    if "claim" not in config:
        return
    assert config.claim.text and "sweep" in config
    grid = {a.name: {_fmt(v) for v in a.grid()} for a in parse_sweep(config)["space"].axes}
    for check in config.claim.checks:
        metric, rest = check.split(": ", 1)
        assert metric.split("/")[0] in ("val", "test", "train", "weights")
        op = next(op for op in OPS if op in rest)
        for side in rest.split(op):
            try:
                float(side)
                continue
            except ValueError:
                pass
            values = dict(part.split("=") for part in side.split())
            assert set(values) == set(grid), (check, "name every axis")
            assert all(v in grid[k] for k, v in values.items()), (check, grid)


def test_init_depth_runs_tiny(tmp_path, capsys):
    out = _smoke(tmp_path, capsys, "init_depth", "--config.num_steps=20", "--config.eval_every=10",
                 "--config.model.width=8", "--config.model.depth=2", "--config.sweep.axes.activation.values=('tanh',)",
                 "--config.sweep.axes.init.values=('normal:0.01','xavier_normal')")
    assert set(_test_rows(out)) == {"#0 activation=tanh init=normal:0.01", "#1 activation=tanh init=xavier_normal"}


def _rows(tmp_path, name):
    (run_dir,) = tmp_path.glob(f"{name}/*")
    return run_dir, list(csv.DictReader(open(run_dir / "results.csv")))


def test_bias_variance_runs_tiny(tmp_path, capsys):
    """A measured study end to end: the decomposition adds up, and a line has more bias than a cubic."""
    out = _smoke(tmp_path, capsys, "bias_variance", "--config.datasets=20", "--config.n_test=100",
                 "--config.sweep.axes.degree.values=(1,3)")
    assert "2 points × 2 seeds = 4 measured runs" in out and "test_variance_vs_degree.png" in out
    run_dir, rows = _rows(tmp_path, "bias_variance")
    for r in rows:
        parts = sum(float(r[k]) for k in ("test/bias2", "test/variance", "test/noise", "test/gap"))
        assert float(r["test/mse"]) == pytest.approx(parts, rel=1e-5)
        assert abs(float(r["test/gap"])) < 0.1 * float(r["test/mse"])
    bias = {int(r["degree"]): float(r["test/bias2"]) for r in rows}
    assert bias[1] > 10 * bias[3]  # sin(2πx): a line cannot bend (measured 0.20 vs 0.006)
    assert (run_dir / "val_mse_vs_degree.png").is_file() and (run_dir / "summary.txt").is_file()


def test_knn_cv_runs_tiny(tmp_path, capsys):
    _smoke(tmp_path, capsys, "knn_cv", "--config.ks=(1,3)", "--config.num_folds=2")
    _, rows = _rows(tmp_path, "knn_cv")
    by = {(r["rule"], r["seed"]): r for r in rows}
    for s in ("0", "1"):
        assert float(by[("oracle", s)]["test/regret"]) == 0.0
        # CV picks the best cross-validated candidate: never a lower CV accuracy than the default's
        assert float(by[("cv", s)]["val/accuracy"]) >= float(by[("1nn_l2", s)]["val/accuracy"])
        assert float(by[("1nn_l2", s)]["test/k"]) == 1 and float(by[("1nn_l2", s)]["test/accuracy"]) > 0.95


def test_grid_vs_random_runs_tiny(tmp_path, capsys):
    _smoke(tmp_path, capsys, "grid_vs_random", "--config.sweep.axes.important.values=(1,)")
    run_dir, rows = _rows(tmp_path, "grid_vs_random")
    from dlcore.cli._catalog import build_catalog

    section = build_catalog([str(run_dir)]).split("## grid_vs_random", 1)[1]  # the catalog reads a measured run
    assert "2 points × 2 seeds" in section and "`test/regret: strategy=random important=1 < strategy=grid" in section
    assert {r["strategy"] for r in rows} == {"grid", "random"}
    for r in rows:
        assert 0.0 <= float(r["test/regret"]) <= 1.0
        if r["strategy"] == "grid":  # values 0, 0.5, 1: never more than 0.25 from the optimum's u1
            assert float(r["test/distance_u1"]) <= 0.25


def test_ensembles_runs_tiny(tmp_path, capsys):
    out = _smoke(tmp_path, capsys, "ensembles", "--config.num_steps=10", "--config.eval_every=10",
                 "--config.model.widths=(8,)", "--config.members=2", "--config.sweep.axes.size.values=(1,2)",
                 "--config.sweep.axes.bagging.values=(True,)")
    assert "2 points × 2 seeds = 4 measured runs" in out
    _, rows = _rows(tmp_path, "ensembles")
    for r in rows:
        assert 0.0 <= float(r["test/ece"]) <= 1.0 and float(r["test/nll"]) > 0
        if r["size"] == "1":  # one member: the ensemble is that member
            assert float(r["test/accuracy"]) == pytest.approx(float(r["test/member_acc"]))


def test_measured_study_refuses_resume(tmp_path, capsys):
    rc = main(["run", "grid_vs_random", "--out", str(tmp_path), "--resume", str(tmp_path)])
    assert rc == 2
    assert "--resume does not apply to grid_vs_random: a measured study" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def _csv_rows(tmp_path, name):
    return _rows(tmp_path, name)[1]


def test_batch_size_runs_tiny(tmp_path, capsys):
    """Gradient noise and step time per run (the 1/B law itself: tests/test_train_measure.py)."""
    out = _smoke(tmp_path, capsys, "batch_size", "--config.num_steps=20", "--config.eval_every=10",
                 "--config.model.widths=(16,)", "--config.sweep.axes.batch_size.values=(10,)",
                 "--config.measure.gradient_noise.num_batches=4", "--config.measure.step_time.probe_steps=2")
    assert "measured after training" in out and "train/grad_var_init" in out
    rows = _csv_rows(tmp_path, "batch_size")
    n = 3600  # MNIST-1D training split
    for r in rows:
        var, trace = float(r["train/grad_var_init"]), float(r["train/grad_trace_init"])
        assert var > 0 and trace == pytest.approx(var * 10 * (n - 1) / (n - 10), rel=1e-4)
        assert float(r["train/step_ms"]) > 0 and float(r["train/us_per_example"]) == pytest.approx(
            100 * float(r["train/step_ms"]), rel=1e-6)


def test_mc_dropout_runs_tiny(tmp_path, capsys):
    """Rate 0 is the control: MC dropout is the deterministic net, the ECE gain exactly 0."""
    _smoke(tmp_path, capsys, "mc_dropout", "--config.num_steps=20", "--config.eval_every=10",
           "--config.model.widths=(16,)", "--config.sweep.axes.dropout_rate.values=(0.0,0.5)",
           "--config.measure.calibration.mc_samples=3")
    rows = _csv_rows(tmp_path, "mc_dropout")
    assert all(0 <= float(r["test/ece"]) <= 1 and 0 <= float(r["test/mc_ece"]) <= 1 for r in rows)
    assert all(abs(float(r["test/ece_gain"])) < 1e-6 for r in rows if float(r["dropout_rate"]) == 0)
    assert any(abs(float(r["test/ece_gain"])) > 1e-6 for r in rows if float(r["dropout_rate"]) == 0.5)


def test_augmentation_runs_tiny(tmp_path, capsys):
    out = _smoke(tmp_path, capsys, "augmentation", "--config.num_steps=20", "--config.eval_every=10",
                 "--config.model.widths=(16,)", "--config.sweep.axes.augment.values=('none','crop+flip')")
    assert set(_test_rows(out)) == {"#0 augment=none", "#1 augment=crop+flip"}


def test_rnn_vs_lstm_lag_axis_builds_each_structures_dataset():
    """The lag is a dataset parameter: each structure trains on its own adding problem."""
    from dlcore.cli._config import apply_overrides

    _, mod = load_experiment("rnn_vs_lstm")
    config = apply_overrides(mod.get_config(), {"dataset.num_train": "16", "dataset.num_val": "4",
                                                "dataset.num_test": "4", "batch_size": "8"})
    build = make_build(config, 0)
    T = config.dataset.task.seq_len
    for lag in (5, 15):
        data = build({"model.cell": "rnn", "dataset.task.lag": lag}).data
        for split in ("train", "val", "test"):
            x, y = data.split(split)
            assert bool((x[:, T - 1 - lag, 1] == 1).all()) and x.shape[1] == T  # the first marker, lag steps back
    assert build({"model.cell": "rnn", "dataset.task.lag": 5}).data is not build(
        {"model.cell": "lstm", "dataset.task.lag": 15}).data


def test_rnn_vs_lstm_runs_tiny(tmp_path, capsys):
    out = _smoke(tmp_path, capsys, "rnn_vs_lstm", "--config.num_steps=20", "--config.eval_every=10",
                 "--config.model.hidden_size=4", "--config.dataset.task.seq_len=8",
                 "--config.dataset.num_train=64", "--config.dataset.num_val=16", "--config.dataset.num_test=16",
                 "--config.batch_size=16", "--config.sweep.axes.cell.values=('rnn',)",
                 "--config.sweep.axes.lag.values=(2,6)", "--config.measure.input_gradients.num_examples=16")
    assert "4 points × 2 seeds" in out and "2 compiled programs" in out
    rows = _csv_rows(tmp_path, "rnn_vs_lstm")
    assert {(r["lag"], r["clip_norm"]) for r in rows} == {("2", "1.0"), ("6", "1.0"), ("2", "1000000000.0"),
                                                           ("6", "1000000000.0")}
    assert all(0 < float(r["test/mse"]) < 1 and r["train/input_grad_log10_first_last"] != "" for r in rows)
