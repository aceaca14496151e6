"""Retrain every shipped preset with its recipe's quick preset and republish it.

    python scripts/publish_presets.py                  # every recipe in RECIPES (all registered)
    python scripts/publish_presets.py cgan dcgan       # some of them
    python scripts/publish_presets.py cgan --run cgan=runs/cgan/20261123-1330   # publish a finished run

Each recipe is trained with `python -m kzoo.recipes.<recipe> --preset quick --seed 0`
plus its hub flags (niced; the run lands in runs/presets/<recipe>-<time>/), its
preset is packed reproducibly into kzoo/hub/presets/<name>-<version>.tar.gz and its
catalog entry (sha256, size, metrics measured by the recipe) replaces the old one in
kzoo/hub/catalog.json. The preset name is `<recipe or stage>-<dataset>` (cgan-digits,
srresnet-photos). The settings -- which recipes, their hub flags, their stages (SRGAN
trains in the paper's two and publishes both) and the size limit -- are read from
recipes/hub.toml.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kzoo.errors import KzooError  # noqa: E402
from kzoo.hub import catalog  # noqa: E402
from kzoo.hub.publish import publish  # noqa: E402

SETTINGS = REPO / "recipes" / "hub.toml"


def read_settings(path=SETTINGS):
    """(recipes, flags per recipe, stages per recipe, max MB) of a hub settings file; without
    a `recipes` list, every registered recipe (one preset per model family)."""
    from kzoo.recipes.registry import list_recipes

    table = tomllib.loads(Path(path).read_text())
    recipes = tuple(table["recipes"]) if "recipes" in table else tuple(list_recipes())
    return recipes, dict(table.get("args", {})), dict(table.get("stages", {})), float(table["max_mb"])


RECIPES, HUB_ARGS, STAGES, MAX_MB = read_settings()


def preset_name(run_dir: Path) -> str:
    meta = json.loads((run_dir / "model" / "metadata.json").read_text())
    data = meta["data"].split(":")[-1].split("/")[-1].lower()
    family = meta.get("config", {}).get("stage") or meta["recipe"]
    return f"{family.replace('_', '-')}-{data}"


def train(recipe: str, runs: Path, extra: list[str]) -> list[Path]:
    """Train `recipe` (each of its stages); returns the run directories in order."""
    done = []
    for stage in STAGES.get(recipe, [[]]):
        args = [a.format(previous=done[-1]) if done else a for a in stage]
        done.append(train_one(recipe, runs, [*HUB_ARGS.get(recipe, []), *args, *extra]))
    return done


def train_one(recipe: str, runs: Path, extra: list[str]) -> Path:
    out = runs / f"{recipe}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    cmd = ["nice", "-n", "10", sys.executable, "-m", f"kzoo.recipes.{recipe}",
           "--preset", "quick", "--seed", "0", "--out", str(out), *extra]
    print("+", " ".join(cmd), flush=True)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run(cmd, check=True, env=env)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*",
                   help=f"recipes to train and publish (default without --run: {' '.join(RECIPES)})")
    p.add_argument("--run", action="append", default=[], metavar="RECIPE=RUN_DIR[,RUN_DIR]",
                   help="publish these finished runs (one per stage) instead of training the "
                        "recipe again")
    p.add_argument("--version", default="1")
    p.add_argument("--dest", type=Path, default=REPO / "kzoo" / "hub" / "presets")
    p.add_argument("--catalog", type=Path, default=REPO / "kzoo" / "hub" / "catalog.json")
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "presets")
    p.add_argument("--max-mb", type=float, default=MAX_MB, help="refuse bigger archives")
    p.add_argument("--train-arg", action="append", default=[],
                   help="extra recipe flag for every training (e.g. --train-arg=--epochs=1)")
    args = p.parse_args(argv)
    given = dict(item.split("=", 1) for item in args.run)
    if not args.recipes and not given:
        args.recipes = list(RECIPES)
    from kzoo.recipes.registry import list_recipes

    unknown = [r for r in [*args.recipes, *given] if r not in list_recipes()]
    if unknown:
        p.error(f"no recipe named {', '.join(unknown)} (known: {', '.join(list_recipes())})")
    for recipe in dict.fromkeys([*args.recipes, *given]):
        run_dirs = ([Path(d) for d in given[recipe].split(",")] if recipe in given
                    else train(recipe, args.runs, args.train_arg))
        for run_dir in run_dirs:
            if publish_run(run_dir, args) != 0:
                return 2
    return 0


def publish_run(run_dir: Path, args) -> int:
    name = preset_name(run_dir)
    try:
        entry = publish(run_dir, name=name, to=args.dest, version=args.version, overwrite=True)
    except KzooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    mb = entry["size"] / 1e6
    if mb > args.max_mb:
        Path(entry["path"]).unlink()
        print(f"error: {name} is {mb:.1f} MB, over --max-mb {args.max_mb}", file=sys.stderr)
        return 2
    catalog.add_entry(args.catalog, entry)
    print(f"{name}@{entry['version']}: {entry['path']} ({mb:.2f} MB, sha256 {entry['sha256']}) "
          f"metrics {entry['metrics']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
