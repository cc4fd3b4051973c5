"""The runnable examples in dlcore's docstrings run and print what they say.

Every module's doctests, under this suite's settings (strict rank promotion, datasets under
``runs/``). ``dlcore.models`` is left out here: its examples initialise whole conv nets eagerly
(~45 s on 2 cores) and the same shapes are asserted in ``tests/test_models.py``; run them with
``pytest --doctest-modules dlcore/models``.
"""

from __future__ import annotations

import doctest
import importlib
import pathlib
import pkgutil

import pytest

import dlcore

SKIP_PACKAGES = ("dlcore.models",)


def _modules() -> list[str]:
    """Modules whose source holds an example (``>>>``); ``__main__`` modules run on import."""
    root = pathlib.Path(dlcore.__file__).parent
    names = []
    for info in pkgutil.walk_packages([str(root)], prefix="dlcore."):
        if info.name.startswith(SKIP_PACKAGES) or info.name.endswith("__main__"):
            continue
        rel = pathlib.Path(*info.name.split(".")[1:])
        path = root / rel / "__init__.py" if info.ispkg else root / rel.with_suffix(".py")
        if ">>>" in path.read_text():
            names.append(info.name)
    return sorted(names)


MODULES = _modules()


def test_modules_are_found():
    assert {"dlcore.random", "dlcore.train._state", "dlcore.sweep._space"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name, globs=vars(module).copy()) if t.examples]
    assert tests, f"{name} has '>>>' in its source but no doctest was found"
    failures: list[str] = []
    for t in tests:
        runner.run(t, out=failures.append)
    assert runner.failures == 0, "".join(failures)
