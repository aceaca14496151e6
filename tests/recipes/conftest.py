"""`smoke_run(name)`: one tiny run of a registered recipe per test session, shared by the
parametrized smoke test (tests/recipes/test_runner.py) and each recipe's own checks."""

import pytest

SMOKE_FLAGS = ["--preset", "quick", "--epochs", "1", "--steps-per-epoch", "1", "--no-jit-compile"]


def smoke_argv(recipe, out):
    """Flags of a smoke run of `recipe`: the quick preset at the recipe's tiny sizes."""
    return [*SMOKE_FLAGS, *recipe.tiny, "--out", str(out)]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    from kzoo.recipes.registry import get_recipe
    from kzoo.recipes.runner import run

    runs = {}

    def get(name):
        if name not in runs:
            recipe = get_recipe(name)
            runs[name] = run(recipe, smoke_argv(recipe, tmp_path_factory.mktemp(name) / "run"))
        return runs[name]

    return get
