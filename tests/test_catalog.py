"""`dlcore report --catalog`: the studies README from run directories — verdicts from stated checks,
published figures beside the CIs, and identical bytes when written twice."""

import json
import pathlib
import shutil

import pytest

from dlcore.cli import main
from dlcore.cli._catalog import evaluate_check
from dlcore.cli._report import _Point
from dlcore.errors import ConfigError
from dlcore.stats import compare, describe

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _pt(idx, values, metric, xs):
    p = _Point(idx)
    p.values, p.seeds = values, list(range(len(xs)))
    p.metrics[metric] = list(xs)
    return p


def test_check_verdicts_follow_the_paired_interval():
    a = _pt(0, {"m": "a"}, "test/accuracy", [0.90, 0.91, 0.93, 0.92])
    b = _pt(1, {"m": "b"}, "test/accuracy", [0.80, 0.82, 0.81, 0.84])
    c = _pt(2, {"m": "c"}, "test/accuracy", [0.905, 0.92, 0.915, 0.925])  # ≈ a, noisy
    pts, kw = [a, b, c], dict(confidence=0.95, seed=0, paired=True)
    cmp_ab = compare(a.arr("test/accuracy"), b.arr("test/accuracy"), paired=True, seed=0)
    assert cmp_ab.resolved and cmp_ab.diff > 0
    assert evaluate_check("test/accuracy: m=a > m=b", pts, ["m"], **kw)[0] == "held"
    assert evaluate_check("test/accuracy: m=b > m=a", pts, ["m"], **kw)[0] == "not held"
    assert evaluate_check("test/accuracy: m=b != m=a", pts, ["m"], **kw)[0] == "held"
    assert not compare(a.arr("test/accuracy"), c.arr("test/accuracy"), paired=True, seed=0).resolved
    assert evaluate_check("test/accuracy: m=a > m=c", pts, ["m"], **kw)[0] == "unresolved"
    assert evaluate_check("test/accuracy: m=a ~ m=c", pts, ["m"], **kw)[0] == "held"
    assert evaluate_check("test/accuracy: m=a ~ m=b", pts, ["m"], **kw)[0] == "not held"
    assert evaluate_check("test/accuracy: m=a >= m=c", pts, ["m"], **kw)[0] == "held"  # not resolved worse
    assert evaluate_check("test/accuracy: m=a >= m=b", pts, ["m"], **kw)[0] == "held"
    assert evaluate_check("test/accuracy: m=b >= m=a", pts, ["m"], **kw)[0] == "not held"
    assert evaluate_check("test/accuracy: m=a <= m=b", pts, ["m"], **kw)[0] == "not held"
    verdict, detail = evaluate_check("test/accuracy: m=a > m=b", pts, ["m"], **kw)
    assert f"{cmp_ab.diff:.4f}" in detail and f"{cmp_ab.low:.4f}" in detail
    # Against a number: where the t interval of the mean lies.
    d = describe(b.arr("test/accuracy"), 0.95, seed=0)
    assert d["t_high"] < 0.9 < 0.95
    assert evaluate_check("test/accuracy: m=b < 0.9", pts, ["m"], **kw)[0] == "held"
    assert evaluate_check("test/accuracy: m=b > 0.9", pts, ["m"], **kw)[0] == "not held"
    assert evaluate_check("test/accuracy: m=b ~ 0.82", pts, ["m"], **kw)[0] == "held"
    assert evaluate_check("test/loss: m=a > m=b", pts, ["m"], **kw)[0] == "not run"  # not measured
    assert evaluate_check("test/accuracy: m=z > m=b", pts, ["m"], **kw)[0] == "not run"
    with pytest.raises(ConfigError, match="'q' is not an axis"):
        evaluate_check("test/accuracy: q=a > m=b", pts, ["m"], **kw)
    with pytest.raises(ConfigError, match="write 'METRIC: POINT > POINT'"):
        evaluate_check("m=a > m=b", pts, ["m"], **kw)


def test_catalog_from_run_dirs_is_deterministic(tmp_path, capsys):
    exp = tmp_path / "claimed_study.py"
    exp.write_text(
        f'"""A tiny claimed study."""\nimport sys\nsys.path.insert(0, {str(ROOT / "experiments")!r})\n'
        "from tiny_study import get_config as _base\n\n"
        "def get_config():\n    c = _base()\n"
        "    c.claim = dict(text='norm does not matter in 10 steps', checks=("
        "'val/loss: learning_rate=0.1 norm=none ~ learning_rate=0.1 norm=batch', 'val/accuracy: norm=none > 2.0'))\n"
        "    c.reference = dict(metric='val/accuracy', source='made up', axes=('norm',), "
        "values=(('none', 0.5), ('batch', 2.0)))\n    return c\n"
    )
    rc = main(["run", str(exp), "--out", str(tmp_path / "runs"), "--no-progress", "--config.num_steps=10",
               "--config.eval_every=5", "--config.sweep.seeds=3", "--config.sweep.axes.learning_rate.num=2",
               "--config.sweep.bootstrap_resamples=100"])
    assert rc == 0
    (run_dir,) = (tmp_path / "runs" / "claimed_study").iterdir()
    readme1, readme2 = tmp_path / "R1.md", tmp_path / "R2.md"
    assert main(["report", str(run_dir), "--catalog", str(readme1)]) == 0
    assert main(["report", str(run_dir), "--catalog", str(readme2)]) == 0
    text = readme1.read_text()
    assert text == readme2.read_text()
    assert "**Claim.** norm does not matter in 10 steps" in text
    # "norm=none > 2.0" names several points (two learning rates): not checkable, reported as such.
    assert "| `val/accuracy: norm=none > 2.0` | point not in this run | not run |" in text
    assert "published val/accuracy" in text and "2 (outside the CI)" in text  # accuracy cannot reach 2.0
    assert "| [dropout_study](#dropout_study) |" in text and "not run |" in text  # every shipped study listed
    # The latest run of a study wins; seed runs are skipped (so `runs/*/*` can be given).
    seed_run = tmp_path / "runs" / "seedrun" / "20000101-000000"
    seed_run.mkdir(parents=True)
    (seed_run / "results.csv").write_text("seed,val/accuracy\n0,0.5\n")
    (seed_run / "manifest.json").write_text('{"experiment": "seedrun", "config": {}}')
    older = tmp_path / "runs" / "claimed_study" / "00000000-000000"  # an earlier run of the same study
    shutil.copytree(run_dir, older)
    man = json.loads((older / "manifest.json").read_text())
    man["config"]["claim"]["text"] = "OLD CLAIM"
    (older / "manifest.json").write_text(json.dumps(man))
    readme3 = tmp_path / "R3.md"
    assert main(["report", str(seed_run), str(run_dir), str(older), "--catalog", str(readme3)]) == 0
    assert readme3.read_text() == text
    assert main(["report", str(run_dir), str(run_dir)]) == 2  # several run dirs need --catalog
    assert "dlcore: error: " in capsys.readouterr().err

