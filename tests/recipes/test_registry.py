"""The recipe registry: exactly the registered recipes, one error line with close matches."""

import pytest

from kzoo.errors import KzooError
from kzoo.recipes import dcgan
from kzoo.recipes.config import model_options, recipe_options
from kzoo.recipes.registry import Recipe, get_recipe, list_recipes, register_recipe
from kzoo.zoo import import_submodules, list_models, model_class


def test_lists_exactly_the_registered_recipes():
    """The recipes are the modules of kzoo.recipes that register one (a module's RECIPE),
    not the shared modules (gan, img2img, segmentation, ...)."""
    import importlib
    import pkgutil

    import kzoo.recipes

    import_submodules("kzoo.recipes")
    modules = [importlib.import_module(f"kzoo.recipes.{m.name}") for m in pkgutil.iter_modules(kzoo.recipes.__path__)]
    registering = {m.RECIPE.name for m in modules if isinstance(getattr(m, "RECIPE", None), Recipe)}
    assert set(list_recipes()) == registering and len(registering) >= 10
    assert {"gan", "img2img", "segmentation", "config", "runner"}.isdisjoint(list_recipes())
    assert get_recipe("dcgan") is dcgan.RECIPE


def test_unknown_recipe_is_one_line_with_close_matches():
    with pytest.raises(KzooError, match=r"unknown recipe 'dcgn' \(did you mean dcgan"):
        get_recipe("dcgn")
    with pytest.raises(KzooError, match="unknown recipe 'segmentation'; known: cgan"):
        get_recipe("segmentation")


def test_a_name_is_registered_once():
    clash = Recipe(**{**vars(dcgan.RECIPE), "config_cls": type("Other", (dcgan.DCGANConfig,), {})})
    with pytest.raises(ValueError, match="registered twice"):
        register_recipe(clash)
    assert register_recipe(dcgan.RECIPE) is dcgan.RECIPE  # re-registering the same is fine
    with pytest.raises(TypeError):
        register_recipe(lambda: None)


@pytest.mark.parametrize("name", list_recipes())
def test_every_recipe_trains_a_registered_model_and_derives_its_options(name):
    recipe = get_recipe(name)
    assert recipe.model in list_models() and isinstance(model_class(recipe.model), type)
    assert recipe.options is model_options(recipe.model)  # the declaration of the model it trains
    options = recipe_options(recipe)  # raises if a model argument has no option type
    assert options and not set(options) & {*recipe.data_args, "seed", "image_size"}
    assert all(o.help for o in options.values()), [k for k, o in options.items() if not o.help]
    assert recipe.tiny, "smoke-test sizes (tests/recipes/test_runner.py)"
