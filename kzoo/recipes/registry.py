"""Recipe registry, beside the model registry (`kzoo.zoo`): `register_recipe`.

Each recipe module registers its `Recipe` when imported:

    RECIPE = register_recipe(gan_recipe("dcgan", DCGANConfig, model="dcgan"))

`list_recipes()` imports every module of `kzoo.recipes` (as `kzoo.zoo` does for
models) and lists exactly the registered names; `get_recipe(name)` returns one,
or raises `KzooError` naming close matches. `kzoo list` and `kzoo train NAME`
read this registry; `python -m kzoo.recipes.NAME` runs the module's own.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import typing

from kzoo.errors import KzooError

if typing.TYPE_CHECKING:
    from kzoo.options import Options

_REGISTRY: dict[str, "Recipe"] = {}
_loaded = False


@dataclasses.dataclass
class Recipe:
    """What a recipe module provides to the runner.

    Attributes:
        name: recipe name (`python -m kzoo.recipes.<name>`, `kzoo train <name>`).
        config_cls: a `TrainConfig` subclass whose defaults are the paper's.
        model: the registered model (`kzoo.zoo`) it trains.
        options: the declaration of that model's constructor arguments (`kzoo.options`,
            imported without Keras): the recipe's model options (`kzoo.recipes.config`),
            less `data_args`, `recipe_args` and the names a training option shares.
        load_data: `(cfg) -> (train data, held-out data or None)`.
        build: `(cfg, data) -> compiled keras.Model` (called inside the strategy scope).
        train_dataset: `(cfg, data, model) -> tf.data.Dataset` of global batches
            (`--batch-size` is the global batch; tf.distribute splits it over replicas).
        sample_grid: `(cfg, model, state) -> uint8 image` shown each epoch.
        evaluate: `(cfg, model, data, heldout) -> dict` of quality scores; not called
            when `cfg.eval_samples` is 0.
        inference_model: `(model) -> keras.Model` saved as model/inference.keras.
        prepare_state: optional `(cfg, model, data) -> dict` run once before training
            (fixed sample inputs; a "baseline" entry is logged as the untrained score).
        init_weights: optional `(cfg, model)` that applies `--init-from`; default: copy
            the weights of the hub preset / run `cfg.init_from` names (`kzoo.hub.init_weights`).
        data_args: model arguments the data decides (`channels`, `num_classes`):
            `build` passes them; they are not options.
        recipe_args: model arguments `build` computes from other options (not options).
        tiny: flags that make a run small enough for a smoke test (a step or two in
            seconds on a CPU), on top of the quick preset.
        summary: optional `(scores) -> str or None`: the run's last line, the held-out
            result beside its trivial baseline.
        presets: the TOML file of its named presets (`[paper]`, `[quick]`); None:
            `kzoo/recipes/presets/<name>.toml` (a family outside kzoo names its own).
    """

    name: str
    config_cls: type
    model: str
    options: "Options"
    load_data: typing.Callable
    build: typing.Callable
    train_dataset: typing.Callable
    sample_grid: typing.Callable
    evaluate: typing.Callable
    inference_model: typing.Callable
    prepare_state: typing.Callable | None = None
    init_weights: typing.Callable | None = None
    data_args: tuple = ()
    recipe_args: tuple = ()
    tiny: tuple = ()
    summary: typing.Callable | None = None
    presets: "str | os.PathLike | None" = None


def register_recipe(recipe: Recipe) -> Recipe:
    """Register `recipe` under its name; returns it (`RECIPE = register_recipe(...)`)."""
    if not isinstance(recipe, Recipe):
        raise TypeError(f"register_recipe takes a Recipe, got {type(recipe).__name__}")
    known = _REGISTRY.get(recipe.name)
    if known is not None and known is not recipe:
        # `python -m kzoo.recipes.X` runs module X as __main__: a second copy, not a clash.
        modules = {known.config_cls.__module__, recipe.config_cls.__module__}
        if len(modules) > 1 and "__main__" not in modules:
            raise ValueError(f"recipe {recipe.name!r} is registered twice")
        if recipe.config_cls.__module__ == "__main__":
            return recipe
    _REGISTRY[recipe.name] = recipe
    return recipe


def _load_all():
    """Import every module of `kzoo.recipes` (recipe modules register themselves)."""
    global _loaded
    if not _loaded:
        from kzoo.zoo import import_submodules

        import_submodules("kzoo.recipes")
        _loaded = True


def list_recipes() -> list[str]:
    """Names of every registered recipe, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def get_recipe(name: str) -> Recipe:
    """The registered recipe `name`; KzooError with close matches if there is none."""
    _load_all()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise KzooError(f"unknown recipe {name!r}{hint}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
