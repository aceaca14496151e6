"""Every recipe's command line, pinned: flags, types, defaults and help texts, and the model
options of every registered model (names, types, defaults, optional).

The snapshot (flags_snapshot.json, beside this file) was written from the code before the
model options became declarations (`kzoo.options`), when they were read from the models'
source code and docstrings; a change to an option shows here as a diff. After a deliberate
change, rewrite it: `python tests/recipes/test_flags_snapshot.py --write`.
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("flags_snapshot.json")


def _value(value):
    """A JSON-able, type-preserving form of a default (tuples and lists differ)."""
    return {"repr": repr(value)}


def _type_name(t):
    return None if t is None else t.__name__


def recipe_snapshot(recipe) -> dict:
    from kzoo.recipes.config import paper_config, parser, recipe_options

    flags = []
    for action in parser(recipe)._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        flags.append({"flags": action.option_strings, "dest": action.dest, "action": type(action).__name__,
                      "type": _type_name(action.type), "help": action.help})
    options = {name: {"type": _type_name(o.type), "default": _value(o.default), "optional": o.optional,
                      "help": o.help} for name, o in recipe_options(recipe).items()}
    paper = {k: _value(v) for k, v in dataclasses.asdict(paper_config(recipe)).items()}
    return {"model": recipe.model, "flags": flags, "model_options": options, "paper_config": paper}


def model_snapshot(name) -> dict:
    from kzoo.recipes.config import model_options

    return {k: {"type": _type_name(o.type), "default": _value(o.default), "optional": o.optional}
            for k, o in model_options(name).items()}


def snapshot() -> dict:
    from kzoo.recipes.registry import get_recipe, list_recipes
    from kzoo.zoo import list_models

    return {"recipes": {name: recipe_snapshot(get_recipe(name)) for name in list_recipes()},
            "models": {name: model_snapshot(name) for name in list_models()}}


def test_every_recipe_keeps_its_flags_defaults_and_help():
    expected = json.loads(SNAPSHOT.read_text())
    got = json.loads(json.dumps(snapshot()))
    assert sorted(got["recipes"]) == sorted(expected["recipes"])
    for name in expected["recipes"]:
        assert got["recipes"][name] == expected["recipes"][name], name
    assert got["models"] == expected["models"]


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    SNAPSHOT.write_text(json.dumps(snapshot(), indent=1, sort_keys=True) + "\n")
