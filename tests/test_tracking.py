"""Writers: TensorBoard events read back with TensorBoard's own reader; CSV; one directory per seed."""

import csv
import json
import os

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dlcore.errors import ConfigError
from dlcore.tracking import CSVWriter, open_writer, run_writers, write_scalars


def _acc(d):
    ea = EventAccumulator(str(d), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    ea.Reload()
    return ea


def test_tensorboard_scalars_histograms_images_read_back(tmp_path):
    with open_writer(str(tmp_path), ("tensorboard",)) as w:
        w.scalars(3, {"train/loss": 0.25, "val/accuracy": 0.5})
        w.scalars(7, {"train/loss": 0.125})
        w.histogram(3, "weights/dense_0", np.arange(100.0))
        w.image(3, "inputs", np.linspace(0, 1, 48).reshape(4, 4, 3))
    ea = _acc(tmp_path)
    tags = ea.Tags()
    assert {"train/loss", "val/accuracy"} <= set(tags["scalars"])
    assert "weights/dense_0" in tags["histograms"] and "inputs" in tags["images"]
    assert [(e.step, e.value) for e in ea.Scalars("train/loss")] == [(3, 0.25), (7, 0.125)]
    h = ea.Histograms("weights/dense_0")[0].histogram_value
    assert h.num == 100 and h.min == 0 and h.max == 99 and h.sum == pytest.approx(4950)


def test_write_scalars_one_dir_per_seed_with_tags(tmp_path):
    hist = {
        "train/loss": np.arange(40, dtype=np.float64).reshape(2, 20),
        "val/accuracy": np.array([[0.1, 0.2], [0.3, 0.4]]),
        "eval_step": np.array([10, 20]),
    }
    dirs = write_scalars(str(tmp_path), hist, [5, 9], train_every=5, tags={"lr": 0.01}, kinds=("tensorboard", "csv"))
    assert sorted(os.listdir(tmp_path)) == ["seed_5", "seed_9"] and len(dirs) == 2
    ea = _acc(tmp_path / "seed_9")
    assert [(e.step, e.value) for e in ea.Scalars("val/accuracy")] == [(10, pytest.approx(0.3)), (20, pytest.approx(0.4))]
    assert [e.step for e in ea.Scalars("train/loss")] == [5, 10, 15, 20]
    assert ea.Scalars("train/loss")[0].value == 24.0  # seed 9 row, step 5 -> index 4
    rows = list(csv.DictReader(open(tmp_path / "seed_5" / "scalars.csv")))
    assert rows[0] == {"step": "5", "name": "train/loss", "value": "4.0"}
    assert json.load(open(tmp_path / "seed_5" / "tags.json")) == {"seed": 5, "lr": 0.01}


def test_csv_writer_appends(tmp_path):
    with CSVWriter(str(tmp_path)) as w:
        w.scalars(1, {"a": 1.5})
    with CSVWriter(str(tmp_path)) as w:
        w.scalars(2, {"a": 2.5})
    rows = list(csv.reader(open(tmp_path / "scalars.csv")))
    assert rows == [["step", "name", "value"], ["1", "a", "1.5"], ["2", "a", "2.5"]]


def test_run_writers_point_directories(tmp_path):
    ws = run_writers(str(tmp_path), [0, 1], {"lr": 0.1}, kinds=("csv",), point="lr=0.1")
    for w in ws:
        w.close()
    assert sorted(os.listdir(tmp_path / "lr=0.1")) == ["seed_0", "seed_1"]


def test_unknown_writer(tmp_path):
    with pytest.raises(ConfigError, match="unknown writer 'mlflow'; valid choices: csv, tensorboard, wandb"):
        open_writer(str(tmp_path), ("mlflow",))


def _wandb_records(run_file):
    """The records of an offline run's .wandb log, decoded by wandb's own reader (``wandb leet inspect``)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_file)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "No such command" in proc.stderr:
        pytest.skip("this wandb has no `wandb leet inspect` to read a run back; upgrade wandb")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_wandb_offline_runs_read_back(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="WandbWriter needs the optional extra: pip install 'dlcore[wandb]'")
    for var, value in (("WANDB_MODE", "offline"), ("WANDB_SILENT", "true"), ("WANDB_DIR", str(tmp_path)),
                       ("WANDB_CONFIG_DIR", str(tmp_path / "cfg")), ("WANDB_CACHE_DIR", str(tmp_path / "cache")),
                       ("WANDB_DATA_DIR", str(tmp_path / "data"))):
        monkeypatch.setenv(var, value)
    history = {"train/loss": np.array([[1.0, 0.5, 0.25], [2.0, 1.0, 0.75]]),
               "val/accuracy": np.array([[0.5], [0.25]]), "eval_step": np.array([3])}
    # two seeds' runs are open at the same time (one writer per seed), as in a sweep
    dirs = write_scalars(str(tmp_path / "runs"), history, seeds=[3, 7], train_every=1, tags={"lr": 0.1},
                         kinds=("wandb",))
    for i, (seed, d) in enumerate(zip((3, 7), dirs)):
        run_files = list((tmp_path / "runs" / f"seed_{seed}").glob("wandb/offline-run-*/run-*.wandb"))
        assert len(run_files) == 1, (d, run_files)
        records = _wandb_records(run_files[0])
        rows = {}
        for r in records:
            if r.get("type") == "history":
                item = r["history"]["item"]
                rows.setdefault(int(item["_step"]), {}).update({k: v for k, v in item.items() if not k.startswith("_")})
        want = {t + 1: {"train/loss": float(history["train/loss"][i, t])} for t in range(3)}
        want[3]["val/accuracy"] = float(history["val/accuracy"][i, 0])
        assert rows == want, rows  # binary fractions: exact through float32 -> JSON
        config = {}
        for r in records:
            if r.get("type") == "config":
                config.update(r["config"]["update"])
        assert config.get("seed") == seed and config.get("lr") == 0.1, config
        assert any(r.get("type") == "exit" for r in records)  # the run was finished cleanly


def test_tensorboard_writer_does_not_import_torch(tmp_path):
    """tensorboardX imports torch (~4 s) when it is installed; dlcore's writer keeps it out (issue 18)."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed: nothing to keep out")
    code = (
        "import sys\n"
        "from dlcore.tracking import open_writer\n"
        f"w = open_writer({str(tmp_path)!r}); w.scalars(1, {{'train/loss': 0.5}}); w.close()\n"
        "print('torch' in sys.modules)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "False"
    assert _acc(tmp_path).Scalars("train/loss")[0].value == pytest.approx(0.5)  # still a real event file
