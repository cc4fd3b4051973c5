"""Every experiment in ./experiments loads, validates and (for studies) plans without training."""

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
