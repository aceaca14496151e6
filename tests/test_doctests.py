"""The `>>>` examples of the model, layer and training modules run and are right."""

import doctest
import importlib
import pkgutil

import keras
import pytest

import kzoo.layers
import kzoo.models


def _modules():
    names = ["kzoo.training", "kzoo.losses", "kzoo.layers"]
    for package in (kzoo.layers, kzoo.models):
        names += [f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    return names


@pytest.mark.parametrize("name", _modules())
def test_examples(name):
    module = importlib.import_module(name)
    keras.utils.set_random_seed(0)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"


def test_every_family_shows_an_example():
    finder = doctest.DocTestFinder()
    for info in pkgutil.iter_modules(kzoo.models.__path__):
        module = importlib.import_module(f"kzoo.models.{info.name}")
        assert any(t.examples for t in finder.find(module)), f"kzoo.models.{info.name} has no example"
