"""The `kzoo` command: `kzoo list`, `kzoo train RECIPE [flags]`, `kzoo export SOURCE`,
`kzoo predict MODEL [INPUT...]`, `kzoo serve [EXPORT]`, `kzoo latent OP SOURCE`, `kzoo hub ...`.

Every argument is parsed and range-checked before TensorFlow is imported (a bad flag
answers at once), every error is one `error: ...` line with exit status 2, and
TensorFlow's start-up messages are hidden unless `--verbose` (`kzoo.backend`).
`kzoo list` and every `--help` import neither TensorFlow nor JAX (tested).
"""

from __future__ import annotations

import argparse
import math
import re
import sys

from kzoo.backend import import_tensorflow, quiet_tensorflow
from kzoo.errors import ArgumentParser, KzooError
from kzoo.hub.cli import add_mode_argument


def _cmd_list(args):
    from kzoo.recipes.registry import list_recipes
    from kzoo.zoo import model_names

    print("models: " + ", ".join(model_names()))
    print("recipes: " + ", ".join(list_recipes()))
    return 0


def _cmd_train(args, rest):
    from kzoo.recipes.registry import get_recipe
    from kzoo.recipes.runner import main as run_main

    return run_main(get_recipe(args.recipe), rest)


def _cmd_export(args):
    from kzoo.io import check_writable_dir

    check_writable_dir(args.out)  # before TensorFlow is imported
    import_tensorflow()
    from kzoo.export import export

    results = export(args.source, name=args.name, version=args.version, out=args.out,
                     formats=args.formats, opset=args.opset, fp16=args.fp16, force=args.force,
                     image_signature=args.image_signature, mode=args.mode, log=_log)
    for r in results:
        print(f"{r.path}: {', '.join(sorted(r.info['files'].values()))}, kzoo.json")
    if args.pick_runtime:
        from kzoo.infer import measure_runtimes
        from kzoo.runtime import available_runtimes

        for r in results:
            if len(available_runtimes(r.path)) > 1:
                medians, best = measure_runtimes(r.path)
                _log(f"{r.path}: runs on {best} by default ("
                     + ", ".join(f"{k} {v:.1f} ms" for k, v in sorted(medians.items())) + "; runtime.json)")
    return 0


def _cmd_predict(args):
    from kzoo.infer import predict
    from kzoo.io import check_writable_dir

    check_writable_dir(args.out)
    providers = [p for p in args.providers.split(",") if p] if args.providers else None
    paths = predict(args.model, args.inputs, args.out, num=args.num, seed=args.seed,
                    label=args.label, providers=providers, endpoint=args.endpoint,
                    fp16=args.fp16, sampler=args.sampler, steps=args.steps, eta=args.eta,
                    use_clipped_model_output=args.use_clipped_model_output, tile=args.tile,
                    overlap=args.overlap, mode=args.mode, max_memory_bytes=args.max_memory_bytes,
                    runtime=args.runtime, log=_log)
    print(f"wrote {len(paths)} file(s) to {args.out}")
    return 0


def _serve_backend(args):
    """`--runtime` or the older `--backend` (onnx = ort), or None (each export's recorded one)."""
    from kzoo.serving.repository import RUNTIME_OF

    if args.runtime and args.backend and RUNTIME_OF[args.backend] != args.runtime:
        raise KzooError(f"--runtime {args.runtime} and --backend {args.backend} disagree; give one")
    return args.runtime or (RUNTIME_OF[args.backend] if args.backend else None)


def _cmd_serve(args):
    backend = _serve_backend(args)
    if backend == "savedmodel":
        import_tensorflow()
    import logging

    from kzoo.serving.config import parse_policy
    from kzoo.serving.server import ModelServer

    handler = logging.StreamHandler(sys.stderr)  # loads, failed versions, stopped requests
    handler.setFormatter(logging.Formatter("kzoo serve: %(message)s"))
    serving_log = logging.getLogger("kzoo.serving")
    serving_log.addHandler(handler)
    serving_log.setLevel(logging.INFO)

    server = ModelServer(args.export, backend=backend, host=args.host, port=args.port,
                         grpc_port=args.grpc_port or None, max_batch=args.max_batch,
                         batch_wait_ms=args.batch_wait_ms, max_queue=args.max_queue,
                         max_body_bytes=args.max_body_bytes, config_file=args.model_config_file,
                         version_policy=parse_policy(args.version_policy),
                         file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
                         model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
                         grpc_max_message_bytes=args.grpc_max_message_bytes,
                         max_tensor_bytes=args.max_tensor_bytes, body_timeout_s=args.body_timeout_seconds,
                         header_timeout_s=args.header_timeout_seconds,
                         max_request_memory_bytes=args.max_request_memory_bytes,
                         max_response_bytes=args.max_response_bytes)

    def ready(s):
        models = ", ".join(f"{n} (versions {', '.join(map(str, sorted(v)))})"
                           for n, v in sorted(s.repo.models.items()))
        runtimes = sorted({v.backend for vs in s.repo.models.values() for v in vs.values() if v})
        _log(f"serving {models} on {', '.join(runtimes) or backend or 'onnx'}")
        print(f"REST {s.rest_url} (demo page at {s.rest_url}/)"
              + (f", gRPC {s.grpc_url}" if s.grpc_url else ""), flush=True)

    server.run(on_ready=ready)
    return 0


def _cmd_latent(args):
    from kzoo.io import check_writable_dir

    check_writable_dir(args.out)  # before TensorFlow is imported
    import_tensorflow()
    import json
    from pathlib import Path

    from kzoo import latent

    space = latent.open_latent(args.source)
    path = Path(args.out) / f"{args.op}.png"
    common = {"seed": args.seed}
    if args.op == "interpolate":
        result = latent.interpolate(space, path, rows=args.rows, cols=args.cols, label=args.label, **common)
    elif args.op == "mix":
        result = latent.style_mix(space, path, rows=args.rows, cols=args.cols, crossover=args.crossover, **common)
    elif args.op == "truncate":
        result = latent.truncate(space, path, rows=args.rows, psi=args.psi, thresholds=args.threshold,
                                 label=args.label, **common)
    elif args.op == "arithmetic":
        result = latent.arithmetic(space, path, expression=args.expr, num=args.num, exemplars=args.exemplars,
                                   pool=args.pool, **common)
    else:
        images = latent.load_images(space, args.images) if args.images else None
        result = latent.project(space, path, images=images, num=args.num, steps=args.steps, lr=args.lr,
                                perceptual_weight=args.perceptual_weight, space_name=args.space,
                                random=args.random, log=_log, **common)
    print(json.dumps({k: str(v) if k == "path" else v for k, v in result.items()}))
    return 0


def _log(message):
    print(f"kzoo: {message}", file=sys.stderr, flush=True)


# --- argument types: values are checked by the parser, before anything is imported ----

def _typed(name, parse, ok, what):
    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {name} value: {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    convert.__name__ = name
    return convert


def at_least(low: int):
    """An int argument type that refuses values below `low`."""
    return _typed("int", int, lambda v: v >= low, f">= {low}")


def finite_float(low=None, high=None):
    """A float argument type that refuses nan, infinities and values outside [low, high]."""
    bounds = ([f">= {low}"] if low is not None else []) + ([f"<= {high}"] if high is not None else [])
    return _typed("float", float, lambda v: math.isfinite(v) and (low is None or v >= low)
                  and (high is None or v <= high), " ".join(["a finite number", " and ".join(bounds)]).strip())


def _add_verbose(p):
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up and C++ log messages")


def _add_export(sub):
    from kzoo.export.onnx_model import DEFAULT_OPSET

    p = sub.add_parser("export", help="export a trained model: SavedModel + ONNX, parity-checked")
    p.add_argument("source", help="run directory, preset directory or .keras file")
    p.add_argument("--name", help="served model name (default: a preset's name, a run's recipe)")
    from kzoo.export.layout import MAX_VERSION

    p.add_argument("--version", type=_typed("int", int, lambda v: 1 <= v <= MAX_VERSION,
                                            f"between 1 and {MAX_VERSION} (an int64, as TF Serving "
                                            "reads version folders)"),
                   help="version number (default: the next free one)")
    p.add_argument("--out", default="export", help="export tree (default: export/)")
    p.add_argument("--formats", default="savedmodel,onnx", help="savedmodel,onnx (default: both)")
    p.add_argument("--opset", type=at_least(7), default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--fp16", action="store_true", help="also write model.fp16.onnx (fp32 I/O)")
    p.add_argument("--force", action="store_true", help="replace an existing --version")
    p.add_argument("--image-signature", action="store_true",
                   help="add a SavedModel signature taking/returning encoded images")
    p.add_argument("--pick-runtime", action="store_true",
                   help="time the export at batch 1 on every runtime available here (onnxruntime, "
                        "OpenVINO with the openvino extra, the SavedModel) and record the fastest in "
                        "runtime.json: kzoo predict/serve run it there by default")
    add_mode_argument(p)
    _add_verbose(p)


def _add_runtime(p):
    from kzoo.runtime import RUNTIMES  # no onnxruntime, OpenVINO or TensorFlow

    p.add_argument("--runtime", choices=RUNTIMES,
                   help="ort (onnxruntime), openvino (OpenVINO on the same model.onnx; the openvino "
                        "extra) or savedmodel (TensorFlow); default: the runtime recorded beside each "
                        "export (runtime.json, the fastest measured), else ort")


def _add_predict(sub):
    from kzoo.infer import OVERLAP  # no TensorFlow

    p = sub.add_parser("predict", help="run an exported model with ONNX Runtime (no TensorFlow)")
    p.add_argument("model", help="export/<name>[/<version>], or a preset / run directory")
    p.add_argument("inputs", nargs="*", help="input images (models that transform images)")
    p.add_argument("--out", default="predictions", help="output directory (default: predictions/)")
    p.add_argument("--num", type=at_least(1), default=8, help="images to generate (generators; default 8)")
    p.add_argument("--seed", type=at_least(0), default=0, help="seed of the latents (default 0)")
    p.add_argument("--label", type=at_least(0), help="class label (conditional generators)")
    p.add_argument("--endpoint", help="which endpoint of a multi-endpoint preset")
    p.add_argument("--providers", help="onnxruntime providers, best first, e.g. cuda,cpu "
                                       "(default: TensorRT > CUDA > CPU, as available)")
    p.add_argument("--fp16", action="store_true", help="use model.fp16.onnx")
    _add_runtime(p)
    p.add_argument("--tile", type=at_least(0),
                   help="image models of any size: run inputs larger than N pixels in N x N tiles, each "
                        "with --overlap pixels of context, no seams (default: 256 for super-resolution, "
                        "else whole images; 0: never tile)")
    p.add_argument("--overlap", type=at_least(0), default=OVERLAP,
                   help=f"context around each tile in input pixels (default {OVERLAP}, SRResNet's "
                        "receptive radius)")
    p.add_argument("--max-memory-bytes", type=at_least(1 << 20),
                   help="most memory one image or --num batch may need, estimated before it is decoded or "
                        "run (default: 1/4 of the machine's memory); larger ones are refused")
    p.add_argument("--sampler", choices=("ddim", "ddpm"), default="ddim",
                   help="diffusion models: DDIM (default) or the ancestral DDPM sampler")
    p.add_argument("--steps", type=at_least(1), default=50, help="diffusion models: denoising steps (default 50)")
    p.add_argument("--eta", type=finite_float(0.0, 1.0), default=0.0, help="diffusion models: DDIM eta (default 0)")
    p.add_argument("--use-clipped-model-output", action=argparse.BooleanOptionalAction, default=None,
                   help="diffusion models: DDIM re-derives the noise from the clipped x_0 "
                        "(diffusers' DDIMPipeline argument; default: the model's kzoo.json option)")
    add_mode_argument(p)
    _add_verbose(p)


def _float_list(low, high, what):
    def convert(text):
        try:
            values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid list of numbers: {text!r}") from None
        bad = [v for v in values if not (math.isfinite(v) and (low is None or v >= low)
                                         and (high is None or v <= high))]
        if not values or bad:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return values

    convert.__name__ = "list"
    return convert


def _crossover(text):
    from kzoo.latent import CROSSOVERS

    if text in CROSSOVERS or re.fullmatch(r"\d+:\d+", text):
        return text
    raise argparse.ArgumentTypeError(f"must be {', '.join(CROSSOVERS)} or START:STOP ws indices, got {text!r}")


def _expression(text):
    from kzoo.latent import parse_expression

    try:
        parse_expression(text)
    except KzooError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _add_latent(sub):
    from kzoo.latent import OPS, PROJECT_LR  # no TensorFlow

    p = sub.add_parser("latent", help="latent-space grids of a generator: interpolate, mix, truncate, "
                                      "arithmetic, project (see docs/latent.md)")
    p.add_argument("op", choices=OPS, help="the operation; each writes OUT/OP.png")
    p.add_argument("source", help="run directory, preset directory, .keras file or hub preset "
                                  "(DCGAN, WGAN-GP, cGAN, VAE, StyleGAN2)")
    p.add_argument("--out", default="latent", help="output directory (default: latent/)")
    p.add_argument("--seed", type=at_least(0), default=0, help="seed of the latents (default 0)")
    p.add_argument("--rows", type=at_least(1), default=4, help="grid rows (default 4)")
    p.add_argument("--cols", type=at_least(2), default=8,
                   help="interpolate: steps per row (default 8); mix: sources B (columns)")
    p.add_argument("--label", type=at_least(0), help="conditional GANs: one class for every row "
                                                     "(default: row i has class i)")
    p.add_argument("--crossover", type=_crossover, default="coarse",
                   help="mix: styles copied from B: coarse (default), middle, fine or START:STOP ws indices")
    p.add_argument("--psi", type=_float_list(0.0, 1.0, "comma-separated numbers in [0, 1]"),
                   help="truncate, StyleGAN2: psi values (default 1,0.7,0.5,0)")
    p.add_argument("--threshold", type=_float_list(1e-3, None, "comma-separated numbers >= 0.001"),
                   help="truncate, z models: |z| thresholds above which values are resampled "
                        "(default 2,1,0.5)")
    p.add_argument("--expr", type=_expression, default="3-3+8",
                   help="arithmetic: A-B+C with digit classes (default 3-3+8)")
    p.add_argument("--num", type=at_least(1), default=64,
                   help="arithmetic: results; project: held-out digits to project (default 64)")
    p.add_argument("--exemplars", type=at_least(1), default=3,
                   help="arithmetic: latents averaged per concept (default 3)")
    p.add_argument("--pool", type=at_least(10), default=1000,
                   help="arithmetic, unconditional GANs: random latents classified to find class means "
                        "(default 1000)")
    p.add_argument("--images", nargs="+", help="project: image files instead of held-out digits")
    p.add_argument("--steps", type=at_least(1), default=300, help="project: Adam steps (default 300)")
    p.add_argument("--lr", type=finite_float(1e-6), default=PROJECT_LR,
                   help=f"project: peak learning rate (default {PROJECT_LR}, StyleGAN2-ADA's projector)")
    p.add_argument("--perceptual-weight", type=finite_float(0.0), default=1.0,
                   help="project: weight of the reference digits classifier's feature distance "
                        "(default 1; 0 for non-digit images)")
    p.add_argument("--space", choices=("z", "w", "w+"),
                   help="project: latent to optimise (default z; StyleGAN2: w)")
    p.add_argument("--random", type=at_least(1), default=256,
                   help="project: random latents of the best-of-N baseline (default 256)")
    _add_verbose(p)


def _add_serve(sub):
    p = sub.add_parser("serve", help="serve an export tree over TF Serving's REST and gRPC APIs")
    p.add_argument("export", nargs="?", default="export", help="export tree (default: export/)")
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8501, help="REST port (default 8501)")
    p.add_argument("--grpc-port", type=int, default=8500, help="gRPC port (default 8500; 0: no gRPC)")
    _add_runtime(p)
    p.add_argument("--backend", choices=("onnx", "openvino", "savedmodel"),
                   help="older name of --runtime: onnx (onnxruntime, = --runtime ort), openvino or savedmodel")
    p.add_argument("--max-batch", type=int, default=32, help="most rows batched together (1: off)")
    p.add_argument("--batch-wait-ms", type=finite_float(0.0), default=2.0, help="how long a request waits for others")
    p.add_argument("--max-queue", type=int, default=256,
                   help="waiting requests per version before 429 / RESOURCE_EXHAUSTED")
    p.add_argument("--max-body-bytes", type=int, default=16 << 20, help="largest REST body (default 16 MiB)")
    p.add_argument("--model-config-file", help="TF Serving models.config (models, version policies, labels); "
                                              "replaces the tree scan")
    p.add_argument("--version-policy", default="latest",
                   help="policy of the models found in the tree: latest[:N] (default), all, specific:V1,V2")
    p.add_argument("--file-system-poll-wait-seconds", type=finite_float(), default=1.0,
                   help="poll for new/removed versions every N s (default 1; 0: once; <0: never)")
    p.add_argument("--model-config-file-poll-wait-seconds", type=finite_float(0.0), default=0.0,
                   help="re-read --model-config-file every N s (default 0: never)")
    p.add_argument("--grpc-max-message-bytes", type=int, default=2**31 - 1,
                   help="largest gRPC message in and out (default 2 GiB - 1, as TF Serving)")
    p.add_argument("--max-tensor-bytes", type=int, default=1 << 30,
                   help="most bytes one request's tensors may decode to (default 1 GiB)")
    p.add_argument("--body-timeout-seconds", type=finite_float(0.001), default=30.0,
                   help="REST body read timeout (default 30)")
    p.add_argument("--header-timeout-seconds", type=finite_float(0.001), default=10.0,
                   help="REST request header timeout (default 10)")
    p.add_argument("--max-request-memory-bytes", type=int,
                   help="most memory one request may need, estimated from the model before it is decoded "
                        "or run (default: 1/4 of the machine's memory; a model's serving.json may set its "
                        "own); larger requests get 400 / RESOURCE_EXHAUSTED naming the limit")
    p.add_argument("--max-response-bytes", type=int,
                   help="largest response body / message, refused before it is built (default: the "
                        "--grpc-max-message-bytes limit)")
    _add_verbose(p)


def build_parser():
    """The `kzoo` argument parser (building it imports neither TensorFlow nor JAX)."""
    parser = ArgumentParser(prog="kzoo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered models and recipes")
    train = sub.add_parser("train", help="run a recipe (same flags as python -m kzoo.recipes.NAME)",
                           add_help=False)
    train.add_argument("recipe")
    _add_export(sub)
    _add_predict(sub)
    _add_serve(sub)
    _add_latent(sub)
    from kzoo.hub.cli import add_parser as add_hub_parser

    _add_verbose(add_hub_parser(sub))
    return parser


def main(argv=None):
    parser = build_parser()
    try:
        args, rest = parser.parse_known_args(argv)
        if args.command == "train":
            return _cmd_train(args, rest)  # the recipe's own entry point: its flags, its errors
        if rest:
            raise KzooError(f"kzoo {args.command}: unexpected arguments {' '.join(rest)}")
        quiet_tensorflow(getattr(args, "verbose", False))
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "hub":
            from kzoo.hub.cli import main as hub_main

            if args.hub_command == "publish":  # loads the run's model
                import_tensorflow()

            return hub_main(args)
        return {"export": _cmd_export, "predict": _cmd_predict, "serve": _cmd_serve,
                "latent": _cmd_latent}[args.command](args)
    except Exception as e:  # bad input, or a full or read-only disk wherever it was met: one line
        from kzoo.io import error_line

        line = error_line(e)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
