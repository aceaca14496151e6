"""The `kzoo` command: `kzoo list`, `kzoo train RECIPE [flags]`, `kzoo export SOURCE`,
`kzoo predict MODEL [INPUT...]`."""

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


def _cmd_export(args):
    from kzoo.export import export

    results = export(args.source, name=args.name, version=args.version, out=args.out,
                     formats=args.formats, opset=args.opset, fp16=args.fp16, force=args.force,
                     image_signature=args.image_signature, log=_log)
    for r in results:
        print(f"{r.path}: {', '.join(sorted(r.info['files'].values()))}, kzoo.json")
    return 0


def _cmd_predict(args):
    from kzoo.infer import predict

    providers = [p for p in args.providers.split(",") if p] if args.providers else None
    paths = predict(args.model, args.inputs, args.out, num=args.num, seed=args.seed,
                    label=args.label, providers=providers, endpoint=args.endpoint,
                    fp16=args.fp16, log=_log)
    print(f"wrote {len(paths)} file(s) to {args.out}")
    return 0


def _log(message):
    print(f"kzoo: {message}", file=sys.stderr, flush=True)


def _add_export(sub):
    from kzoo.export.onnx_model import DEFAULT_OPSET

    p = sub.add_parser("export", help="export a trained model: SavedModel + ONNX, parity-checked")
    p.add_argument("source", help="run directory, preset directory or .keras file")
    p.add_argument("--name", help="served model name (default: the recipe name)")
    p.add_argument("--version", type=int, help="version number (default: the next free one)")
    p.add_argument("--out", default="export", help="export tree (default: export/)")
    p.add_argument("--formats", default="savedmodel,onnx", help="savedmodel,onnx (default: both)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--fp16", action="store_true", help="also write model.fp16.onnx (fp32 I/O)")
    p.add_argument("--force", action="store_true", help="replace an existing --version")
    p.add_argument("--image-signature", action="store_true",
                   help="add a SavedModel signature taking/returning encoded images")


def _add_predict(sub):
    p = sub.add_parser("predict", help="run an exported model with ONNX Runtime (no TensorFlow)")
    p.add_argument("model", help="export/<name>[/<version>], or a preset / run directory")
    p.add_argument("inputs", nargs="*", help="input images (models that transform images)")
    p.add_argument("--out", default="predictions", help="output directory (default: predictions/)")
    p.add_argument("--num", type=int, default=8, help="images to generate (generators; default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latents (default 0)")
    p.add_argument("--label", type=int, help="class label (conditional generators)")
    p.add_argument("--endpoint", help="which endpoint of a multi-endpoint preset")
    p.add_argument("--providers", help="onnxruntime providers, best first, e.g. cuda,cpu "
                                       "(default: TensorRT > CUDA > CPU, as available)")
    p.add_argument("--fp16", action="store_true", help="use model.fp16.onnx")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kzoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered models and recipes")
    train = sub.add_parser("train", help="run a recipe (same flags as python -m kzoo.recipes.NAME)",
                           add_help=False)
    train.add_argument("recipe")
    _add_export(sub)
    _add_predict(sub)

    def error(message):
        raise KzooError(f"kzoo: {message}")

    parser.error = error
    try:
        args, rest = parser.parse_known_args(argv)
        if args.command == "list":
            if rest:
                raise KzooError(f"kzoo list: unexpected arguments {' '.join(rest)}")
            return _cmd_list(args)
        if args.command in ("export", "predict"):
            if rest:
                raise KzooError(f"kzoo {args.command}: unexpected arguments {' '.join(rest)}")
            return (_cmd_export if args.command == "export" else _cmd_predict)(args)
        return _cmd_train(args, rest)
    except KzooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
