"""Child process of tests/data/test_tfds_source.py: run recipe presets up to their data.

`python -m tests.data.recipes_offline OUT_DIR PRESET...` calls each preset's recipe
entry point (`kzoo.recipes.runner.main`, what `python -m kzoo.recipes.NAME` runs)
with `--preset PRESET --out OUT_DIR/NAME`, with whatever network the environment
gives, and prints one JSON line: for each preset its exit status and stderr, and
the top-level modules this process imported.

`KZOO_TEST_BLOCKED_MODULES` (comma-separated top-level module names) makes those
modules unimportable, as on a fresh install that lacks their distributions.
"""

import contextlib
import importlib.abc
import io
import json
import os
import sys
import tomllib
from pathlib import Path


class _Blocker(importlib.abc.MetaPathFinder):
    def __init__(self, names):
        self.names = names

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def main(out_dir, presets):
    from kzoo.recipes.registry import get_recipe
    from kzoo.recipes.runner import main as recipe_main

    results = {}
    for preset in presets:
        recipe = get_recipe(tomllib.loads(Path(preset).read_text())["recipe"])
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                rc = recipe_main(recipe, ["--preset", preset, "--out", str(Path(out_dir) / Path(preset).stem)])
            except BaseException as e:  # a traceback the entry point let through
                import traceback

                traceback.print_exc(file=err)
                rc = f"raised {type(e).__name__}"
        results[preset] = {"rc": rc, "stderr": err.getvalue()}
    modules = sorted({name.split(".")[0] for name in list(sys.modules)})
    print(json.dumps({"results": results, "modules": modules}))


if __name__ == "__main__":
    blocked = {n for n in os.environ.get("KZOO_TEST_BLOCKED_MODULES", "").split(",") if n}
    sys.meta_path.insert(0, _Blocker(blocked))
    main(sys.argv[1], sys.argv[2:])
