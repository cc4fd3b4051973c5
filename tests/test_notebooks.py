"""The notebooks stay in step with the library: cells parse, every dlcore name they import exists.

(Executing them trains for minutes; `jupyter nbconvert --execute` does that by hand.)
"""

from __future__ import annotations

import ast
import importlib
import json
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_notebooks_exist():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "init_tanh_experiment.ipynb", "studies.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cells_parse_and_dlcore_imports_resolve(path):
    nb = json.loads(path.read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
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
