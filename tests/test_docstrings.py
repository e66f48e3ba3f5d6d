"""Every example in causalid's docstrings runs and prints what it says (doctest, one test per module)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import matplotlib
import pytest

import causalid

matplotlib.use("Agg")

MODULES = sorted(m.name for m in pkgutil.walk_packages(causalid.__path__, "causalid.")
                 if not m.name.endswith("__main__"))


def _examples(name):
    module = importlib.import_module(name)
    return [t for t in doctest.DocTestFinder(exclude_empty=True).find(module, name) if t.examples]


@pytest.mark.parametrize("name", [m for m in MODULES if _examples(m)])
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                      # examples that write files write them here
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = []
    for test in _examples(name):
        runner.run(test, out=out.append)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted > 0
    assert failed == 0, "".join(out)


def test_every_public_front_door_has_a_docstring():
    missing = [n for n in causalid.__all__ if not n.startswith("_") and not getattr(causalid, n).__doc__]
    assert not missing
