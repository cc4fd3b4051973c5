"""Layers point one way (DEVELOPERS.md): every import in dlcore/, function-local ones included."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "dlcore"

# The layer order of DEVELOPERS.md: a module may import its own layer and the layers below it.
LAYERS = [
    {"random", "errors", "status", "host", "manifest", "_version"},  # ground
    {"data", "nn", "models", "losses", "metrics", "optim", "classic", "stats"},  # building blocks
    {"train"},  # the loop, its options and hooks
    {"parallel", "sweep", "tasks", "generative", "rl", "tracking", "plots"},  # placement, sweeps, trainers
    {"checkpoint", "diagnostics"},
    {"cli"},
]
LEVEL = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def dlcore_imports(path: pathlib.Path):
    """``(line, imported dlcore package)`` for every import statement of a file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names if node.module == "dlcore"]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "dlcore" and len(parts) > 1:
                yield node.lineno, parts[1]


def upward_edges(root: pathlib.Path = ROOT) -> list[str]:
    bad = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root)
        pkg = rel.parts[0].removesuffix(".py")
        if pkg == "__init__":  # dlcore/__init__.py only loads subpackages lazily by name
            continue
        for line, target in dlcore_imports(f):
            if target == pkg:
                continue
            if target not in LEVEL or pkg not in LEVEL:
                bad.append(f"{rel}:{line} {pkg} -> {target} (not in the layer table)")
            elif LEVEL[target] > LEVEL[pkg]:
                bad.append(f"{rel}:{line} {pkg} (layer {LEVEL[pkg]}) -> {target} (layer {LEVEL[target]})")
    return bad


def test_no_import_points_up_the_layers():
    assert upward_edges() == []


def test_every_package_has_a_layer():
    pkgs = {p.name.removesuffix(".py") for p in ROOT.iterdir() if (p.is_dir() and (p / "__init__.py").exists())
            or (p.suffix == ".py" and p.name != "__init__.py")}
    assert pkgs - set(LEVEL) == set()


def test_the_check_catches_an_upward_import(tmp_path):
    """A building block importing the loop, even inside a function, is found."""
    (tmp_path / "nn").mkdir()
    (tmp_path / "nn" / "_x.py").write_text("def f():\n    from dlcore.train import fit\n    return fit\n")
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "_y.py").write_text("import dlcore.cli\nfrom dlcore import sweep\n")
    assert upward_edges(tmp_path) == ["nn/_x.py:2 nn (layer 1) -> train (layer 2)",
                                      "train/_y.py:1 train (layer 2) -> cli (layer 5)",
                                      "train/_y.py:2 train (layer 2) -> sweep (layer 3)"]


@pytest.mark.parametrize("name", ["DEVELOPERS.md"])
def test_developers_md_states_the_order(name):
    text = (ROOT.parent / name).read_text()
    assert "ground" in text and "building blocks" in text and "test_layers.py" in text
