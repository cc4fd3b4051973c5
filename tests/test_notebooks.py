"""The notebooks run: each is executed with small settings and its key outputs are checked.

Every notebook reads ``DLCORE_NOTEBOOK_SMOKE=1`` in its first code cell (fewer steps, seeds and
points) and prints its key numbers as JSON in the cell tagged ``result``. The committed notebooks
carry the outputs of a full-size run (checked here too: their ``result`` cell says ``"smoke": false``).
Re-run a notebook at full size with
``jupyter nbconvert --to notebook --execute --inplace notebooks/NAME.ipynb``.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = {"quickstart", "studies", "debugging", "scaling_out", "init_tanh_experiment"}


def _code(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def _result(nb: dict) -> dict:
    """The JSON printed by the cell tagged ``result`` (its last stdout line)."""
    cells = [c for c in nb["cells"] if "result" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, "a notebook needs exactly one code cell tagged 'result'"
    text = "".join("".join(o["text"]) for o in cells[0].get("outputs", []) if o.get("name") == "stdout")
    assert text.strip(), "the 'result' cell printed nothing"
    return json.loads(text.strip().splitlines()[-1])


def test_notebooks_exist():
    assert {p.stem for p in NOTEBOOKS} >= NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cells_parse_and_dlcore_imports_resolve(path):
    nb = json.loads(path.read_text())
    code = _code(nb)
    assert code, f"{path.name} has no code cells"
    imported = 0
    for i, src in enumerate(code):
        tree = ast.parse(src, filename=f"{path.name}[cell {i}]")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dlcore"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{path.name}: {node.module} has no {alias.name}"
                    imported += 1
    assert imported > 0
    assert "DLCORE_NOTEBOOK_SMOKE" in code[0], f"{path.name}: the first code cell must read the smoke switch"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_outputs_are_from_a_full_run(path):
    nb = json.loads(path.read_text())
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in cells), f"{path.name}: run every cell before committing"
    assert not any(o.get("output_type") == "error" for c in cells for o in c.get("outputs", []))
    assert _result(nb)["smoke"] is False, f"{path.name}: committed outputs come from a smoke run"
    if any("plot_" in src for src in _code(nb)):  # dlcore's plots show inline in Jupyter (not forced to Agg)
        assert any("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", [])), path.name


def _execute(path: pathlib.Path, tmp_path) -> dict:
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(str(path), as_version=4)
    env = dict(os.environ)
    env.update(
        DLCORE_NOTEBOOK_SMOKE="1",
        PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]),
        TFDS_DATA_DIR=os.environ["TFDS_DATA_DIR"],  # conftest.py sets it: MNIST-1D generated once
        MPLBACKEND="Agg",
    )
    env.pop("XLA_FLAGS", None)  # each notebook chooses its host devices itself
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )  # "python3" starts this interpreter (jupyter_client puts sys.executable for "python")
    client.execute(env=env, cwd=str(tmp_path))
    out = _result(nb)
    assert out["smoke"] is True
    return out


@pytest.mark.slow
def test_quickstart_runs(tmp_path):
    r = _execute(ROOT / "notebooks" / "quickstart.ipynb", tmp_path)
    assert r["check_passed"] is True, r  # the debugging recipe passes on the healthy MLP
    assert r["seeds"] == 2 and r["test_accuracy_mean"] > 0.3, r  # chance 0.1; 0.45-0.5 after 500 steps


@pytest.mark.slow
def test_studies_walkthrough_runs(tmp_path):
    r = _execute(ROOT / "notebooks" / "studies.ipynb", tmp_path)
    assert r["points"] == 4 and r["seeds"] == 2 and r["programs"] == 1, r
    assert r["selected_val_accuracy"] > 0.3 and r["verdict"] in ("held", "not held", "not resolved"), r


@pytest.mark.slow
def test_debugging_notebook_finds_the_bugs(tmp_path):
    r = _execute(ROOT / "notebooks" / "debugging.ipynb", tmp_path)
    assert r["healthy_passed"] is True, r
    # Each deliberately broken recipe fails exactly the checks that point at its bug.
    assert "overfit one batch" in r["double_softmax_failed"], r
    assert "learns beyond chance" in r["shuffled_labels_failed"], r
    assert r["unused_layer_failed"] == ["every parameter learns"], r
    assert r["fixed_passed"] is True, r


@pytest.mark.slow
def test_scaling_out_notebook_resumes_bit_exact(tmp_path):
    r = _execute(ROOT / "notebooks" / "scaling_out.ipynb", tmp_path)
    assert r["devices"] == 2 and r["placement"] == [2, 1], r
    assert r["seed_shards"] == 2, r  # the sweep's runs live on both devices
    assert r["resumed_equals_uninterrupted"] is True and r["checkpoint_steps"], r
    assert r["data_parallel_max_diff"] < 1e-5, r  # summation order only: 4e-7 measured


@pytest.mark.slow
def test_init_tanh_notebook_statistics(tmp_path):
    r = _execute(ROOT / "notebooks" / "init_tanh_experiment.ipynb", tmp_path)
    std = r["last_layer_std_at_init"]
    # The lectures' picture at init: N(0, 0.01²) collapses, N(0, 1) saturates, Xavier in between.
    assert std["small"] < 1e-3 and std["large"] > 0.9 and 0.1 < std["xavier"] < 0.9, std
    sat = r["last_layer_saturated_during_training"]
    assert sat["large"] > 0.8 and sat["xavier"] < 0.2, sat
    assert r["stats_points"] >= 2, r
