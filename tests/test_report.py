"""A 2-axis study end to end through the CLI (`dlcore run tiny_study`), and `dlcore report`
re-printing and re-drawing identically from the files; bad study configs fail before training."""

import csv
import hashlib
import json
import pathlib

import pytest

from dlcore.cli import main

STUDY = ["run", "tiny_study", "--no-progress", "--config.num_steps=10", "--config.eval_every=5",
         "--config.sweep.seeds=2", "--config.sweep.axes.learning_rate.num=2"]


def _digests(run_dir: pathlib.Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run_dir.glob("*.png"))}


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(STUDY + ["--out", str(out)])
    assert rc == 0
    (run_dir,) = [p for p in out.glob("tiny_study/*") if p.is_dir()]
    return run_dir, buf.getvalue()


def test_study_writes_tidy_csv_plots_manifest(study_run):
    run_dir, printed = study_run
    rows = list(csv.DictReader(open(run_dir / "results.csv")))
    cols = list(rows[0])
    assert cols[:8] == ["point", "stage", "learning_rate", "norm", "seed", "status", "stop_step", "selected"]
    assert {"val/accuracy", "val/loss", "test/accuracy", "test/loss", "train/loss_last", "params_sha256"} <= set(cols)
    # One row per point × seed: 2 learning rates × 2 norms × 2 seeds.
    assert len(rows) == 8
    assert sorted({(float(r["learning_rate"]), r["norm"]) for r in rows}) == [
        (0.001, "batch"), (0.001, "none"), (0.1, "batch"), (0.1, "none")]
    assert [int(r["seed"]) for r in rows] == [0, 1] * 4
    # Test metrics only for the selected point (selection used validation only).
    selected = [r for r in rows if r["selected"] == "1"]
    assert len(selected) == 2 and len({r["point"] for r in selected}) == 1
    assert all(r["test/accuracy"] != "" for r in selected)
    assert all(r["test/accuracy"] == "" for r in rows if r["selected"] == "0")
    best = max({r["point"] for r in rows}, key=lambda p: sum(float(r["val/accuracy"]) for r in rows if r["point"] == p))
    assert selected[0]["point"] == best
    for f in ("val_accuracy_vs_learning_rate.png", "val_accuracy_vs_norm.png", "heatmap_val_accuracy.png",
              "point_curves.png", "summary.txt", "history.npz", "manifest.json"):
        assert (run_dir / f).stat().st_size > 0, f
    man = json.loads((run_dir / "manifest.json").read_text())
    study = man["study"]
    assert study["axes"]["learning_rate"]["scale"] == "log" and study["select"]["metric"] == "val/accuracy"
    assert len(study["structures"]) == 2 and man["timing"]["programs"] == 2
    assert set(man["params_sha256"]) == {f"point{r['point']}/seed{r['seed']}" for r in rows}
    assert {r["params_sha256"] for r in rows} == set(man["params_sha256"].values())
    # The printed report is summary.txt, with the statistics tables.
    summary = (run_dir / "summary.txt").read_text()
    assert summary in printed
    assert "t 95% CI" in summary and "boot 95% CI" in summary and "IQM" in summary
    assert "P(ref>other)" in summary and "test split (evaluated once" in summary


def test_report_rerun_is_identical(study_run, capsys):
    run_dir, printed = study_run
    before = _digests(run_dir)
    summary = (run_dir / "summary.txt").read_text()
    assert main(["report", str(run_dir)]) == 0
    first = capsys.readouterr().out
    assert main(["report", str(run_dir)]) == 0
    second = capsys.readouterr().out
    assert first == second == summary
    assert _digests(run_dir) == before and len(before) == 4  # the plots re-drawn byte for byte
    assert (run_dir / "summary.txt").read_text() == summary


@pytest.mark.parametrize(
    "override,message",
    [
        ("--config.sweep.select.metric=test/accuracy", "sweep.select.metric='test/accuracy' is not a validation"),
        ("--config.sweep.axes.learning_rate.low=0.0", "sweep.axes.learning_rate.low must be > 0 on a log axis"),
        ("--config.sweep.budget.max_points=3", "sweep.budget.max_points=3 is smaller than the grid"),
        ("--config.sweep.strategy=bayes", "sweep.strategy must be one of"),
        ("--config.sweep.axes.norm.path=model.nrom", "sweep.axes.norm.path: model has no 'nrom'"),
    ],
)
def test_bad_study_config_one_line_before_training(override, message, tmp_path, capsys):
    rc = main(STUDY + ["--out", str(tmp_path), override])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("dlcore: error: ") and message in err, err
    assert len(err.splitlines()) == 1
    assert not list(tmp_path.glob("*/*"))  # no run directory: nothing ran


def test_report_bad_dir(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "has no results.csv" in capsys.readouterr().err
