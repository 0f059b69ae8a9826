"""The docstring examples of the package run as tests, with float64 on and off.

Every module of ``gmmcollapse`` is searched with :mod:`doctest` (module, class and function
docstrings). The harness turns ``jax_enable_x64`` on (conftest.py); each module's examples run
once like that and once under ``jax.enable_x64(False)``, the default a user starts with: the
library must give the same printed results either way.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import jax
import pytest

import gmmcollapse

MODULES = sorted(m.name for m in pkgutil.walk_packages(gmmcollapse.__path__, "gmmcollapse."))


def _has_prompt(name: str) -> bool:
    with open(importlib.util.find_spec(name).origin, encoding="utf-8") as f:
        return ">>>" in f.read()


#: the modules whose source holds a ">>>" example (the others are not collected)
WITH_EXAMPLES = [m for m in MODULES if _has_prompt(m)]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
    return sorted((t for t in tests if t.examples), key=lambda t: t.name)


def test_the_package_has_examples():
    assert sum(len(_examples(name)) for name in MODULES) >= 30


@pytest.mark.parametrize("x64", [True, False], ids=["x64", "x32"])
@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name, x64):
    tests = _examples(name)
    assert tests, f"{name} has a '>>>' but no docstring example was found"
    out: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    with jax.enable_x64(x64):
        for test in tests:
            runner.run(test, out=out.append)
    assert runner.tries and not runner.failures, "".join(out)
