"""The `kzoo` command: `kzoo list`, `kzoo train RECIPE [flags]`, `kzoo hub ...`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from kzoo.errors import KzooError


def recipe_names():
    import kzoo.recipes

    skip = {"runner", "gan"}
    return sorted(m.name for m in pkgutil.iter_modules(kzoo.recipes.__path__)
                  if m.name not in skip and not m.name.startswith("_"))


def _cmd_list(args):
    from kzoo.zoo import list_models

    print("models: " + ", ".join(list_models()))
    print("recipes: " + ", ".join(recipe_names()))
    return 0


def _cmd_train(args, rest):
    from kzoo.recipes.runner import main as run_main

    if args.recipe not in recipe_names():
        raise KzooError(f"unknown recipe {args.recipe!r}; known: {', '.join(recipe_names())}")
    module = importlib.import_module(f"kzoo.recipes.{args.recipe}")
    return run_main(module.RECIPE, rest)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kzoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered models and recipes")
    train = sub.add_parser("train", help="run a recipe (same flags as python -m kzoo.recipes.NAME)",
                           add_help=False)
    train.add_argument("recipe")
    from kzoo.hub.cli import add_parser as add_hub_parser

    add_hub_parser(sub)

    def error(message):
        raise KzooError(f"kzoo: {message}")

    parser.error = error
    try:
        args, rest = parser.parse_known_args(argv)
        if args.command == "list":
            if rest:
                raise KzooError(f"kzoo list: unexpected arguments {' '.join(rest)}")
            return _cmd_list(args)
        if args.command == "hub":
            if rest:
                raise KzooError(f"kzoo hub: unexpected arguments {' '.join(rest)}")
            from kzoo.hub.cli import main as hub_main

            return hub_main(args)
        return _cmd_train(args, rest)
    except KzooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
