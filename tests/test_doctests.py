"""Every `>>>` example under `kzoo/` runs and is right (one test per module), and none is
skipped: an example that needs a network, weights or a server is a plain `Example::`
code block instead. `python -m pytest --doctest-modules kzoo` runs the same examples."""

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import keras
import pytest

import kzoo


def _modules():
    return sorted(info.name for info in pkgutil.walk_packages(kzoo.__path__, "kzoo."))


@pytest.mark.parametrize("name", _modules())
def test_examples(name):
    module = importlib.import_module(name)
    keras.utils.set_random_seed(0)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"


def test_no_example_is_skipped():
    skipped = [f"{p.relative_to(Path(kzoo.__file__).parent.parent)}:{n}"
               for p in sorted(Path(kzoo.__file__).parent.rglob("*.py"))
               for n, line in enumerate(p.read_text().splitlines(), 1)
               if re.search(r"doctest:\s*\+SKIP", line)]
    assert not skipped, f"examples that never run (make them run, or a plain `Example::` block): {skipped}"


def test_every_family_shows_an_example():
    import kzoo.models

    finder = doctest.DocTestFinder()
    for info in pkgutil.iter_modules(kzoo.models.__path__):
        module = importlib.import_module(f"kzoo.models.{info.name}")
        assert any(t.examples for t in finder.find(module)), f"kzoo.models.{info.name} has no example"
