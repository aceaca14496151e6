"""Model registry in the style of timm: `@register_model` entry points.

Each entry point is a tiny function that merges its defaults with the caller's
overrides and builds a model; `create_model(name, **overrides)` calls it,
`list_models()` lists every name, so tests can be parametrized over the zoo
(`model_names()` lists them without importing Keras, for `kzoo list`), and
`model_class(name)` is the class an entry point builds, registered with it (its
constructor's options are declared in `kzoo.options`). Recipes have their registry
beside this one, `kzoo.recipes.registry`.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import pkgutil
from pathlib import Path

_REGISTRY: dict[str, callable] = {}
_CLASSES: dict[str, type] = {}
_TINY: dict[str, dict] = {}
_loaded = False


def register_model(builds: type, *, tiny=None):
    """Decorator: register the entry point under its function name; it builds a `builds`.

    `tiny` holds overrides that make the model small enough for a unit test
    (used by the tests parametrized over `list_models()`).

    Example::

        @register_model(DCGAN, tiny=TINY)
        def dcgan(**overrides):
            return DCGAN(**overrides)
    """
    if not isinstance(builds, type):
        raise TypeError(f"register_model takes the class the entry point builds, got {builds!r}")

    def decorate(fn):
        name = fn.__name__
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = fn
        _CLASSES[name] = builds
        _TINY[name] = dict(tiny or {})
        return fn

    return decorate


def tiny_overrides(name: str) -> dict:
    """Overrides that shrink model `name` for tests."""
    _load_all()
    return dict(_TINY[name])


def import_submodules(package: str):
    """Import every public module of `package` (their decorators register them)."""
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")


def _load_all():
    """Import every family module of `kzoo.models`."""
    global _loaded
    if not _loaded:
        import_submodules("kzoo.models")
        _loaded = True


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def model_names() -> list[str]:
    """`list_models()` without importing the families (no Keras, no TensorFlow): the
    functions decorated `@register_model` in the modules of `kzoo.models`, read with
    `ast`, plus any entry point registered elsewhere that is already imported."""
    names = set(_REGISTRY)
    package = Path(importlib.import_module("kzoo.models").__path__[0])
    for info in pkgutil.iter_modules([str(package)]):
        if info.name.startswith("_"):
            continue
        tree = ast.parse((package / f"{info.name}.py").read_text())
        names.update(node.name for node in tree.body if isinstance(node, ast.FunctionDef)
                     and any(_names_register_model(d) for d in node.decorator_list))
    return sorted(names)


def _names_register_model(decorator) -> bool:
    if isinstance(decorator, ast.Call):
        decorator = decorator.func
    return getattr(decorator, "id", getattr(decorator, "attr", None)) == register_model.__name__


def _entry(name: str):
    _load_all()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(
            f"unknown model {name!r}{hint}; known: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def model_class(name: str) -> type:
    """The `keras.Model` class the entry point `name` builds (registered with it), without
    building anything."""
    _entry(name)
    return _CLASSES[name]


def create_model(name: str, **overrides):
    """Build the registered model `name`, overriding any of its defaults."""
    return _entry(name)(**overrides)
