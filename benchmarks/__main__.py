"""`python -m benchmarks [--suites peak,train] [--recipes ...] [--paper-sizes] [--write]`.

`--suites paper` times the paper-size networks users load (junyanz unet_256 and
resnet_9blocks, the CIFAR-10 DDPM, Real-ESRGAN) on the SavedModel, ONNX Runtime and
OpenVINO, beside PyTorch (`benchmarks/paper.py`); it is not in the default set.

Each run writes a new folder, `benchmarks/runs/<UTC time>/` (git-ignored), with its
`results.json` and `RESULTS.md`; the tracked `benchmarks/results.json` and
`benchmarks/RESULTS.md` are left alone unless `--write` (or, later,
`python -m benchmarks.report benchmarks/runs/<time>/results.json`) merges the run
into them. Every row keeps the run that measured it -- its date, command, machine and
the matmul peak measured in that run -- so merging a run of some suites replaces
those suites' rows and leaves the others, with their own peak, as they were.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
NOTES = [
    "Notes. Training rates come from one timed run of the given number of steps each; on a 2-core machine they move by "
    "about ±10 % between runs, so values around 1 mean \"no measurable overhead\". The reference "
    "loop feeds batches from a Python iterator, `fit` from its own compiled loop. Keras `predict` "
    "pays a fixed set-up cost per call (building its data iterator), which is why ONNX Runtime's "
    "lead over it is largest at batch 1; the compiled Keras call and the SavedModel signature are "
    "the baselines a user compares against. Serving numbers share the 2 cores with the load generator.",
    "Inference rows alternate the backends call by call in one process, so load from other work on "
    "the machine (its 1-minute load average is recorded in results.json) slows them alike; the "
    "ratios are steadier than the milliseconds. The peak is measured in the same run, before and after the inference suite (best of 8 each).",
]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--suites", default="peak,train,infer,kernels,ddpm",
                   help="comma list of: peak, train, infer, kernels, ddpm, paper (not in the default)")
    from kzoo.recipes.registry import list_recipes

    p.add_argument("--recipes", default=",".join(list_recipes()), help="default: every registered recipe")
    p.add_argument("--paper-sizes", action="store_true", help="the recipes' paper configuration")
    p.add_argument("--steps", type=int, default=10,
                   help="timed steps per training row (default 10; with 20 the default set took 15.3 min on 2 cores)")
    p.add_argument("--variants", default="fp32,xla,mixed",
                   help="training variants: fp32 (no XLA), xla (fp32 + XLA), mixed (mixed precision)")
    p.add_argument("--infer-repeats", type=int, default=12,
                   help="timed rounds per inference row (default 12; each round calls every backend once)")
    p.add_argument("--tutorial", help="for --suites tutorial (not in the default set): the TF pix2pix "
                   "tutorial notebook, tensorflow/docs site/en/tutorials/generative/pix2pix.ipynb")
    p.add_argument("--paper-models", default="unet_256,resnet_9blocks,ddpm_cifar10,realesrgan_x4",
                   help="workloads of the paper suite (benchmarks/paper.py)")
    p.add_argument("--paper-repeats", type=int, default=3,
                   help="timed rounds per paper row (default 3; each round calls every runtime once)")
    p.add_argument("--paper-variants", default="",
                   help="lower-precision copies the paper suite also times and scores (comma list of "
                        "ort_int8, openvino_int8, ort_fp16; default none)")
    p.add_argument("--paper-batches", help="batch sizes of the paper suite (comma list; default 1, and 16 "
                   "for the DDPM)")
    p.add_argument("--sr-size", type=int, default=64, help="Real-ESRGAN LR input size in the paper suite")
    p.add_argument("--paper-workdir", help="keep the paper suite's presets and exports here and reuse them "
                   "(default: a temporary folder; an export of these networks takes minutes)")
    p.add_argument("--runs", default=str(HERE / "runs"), help="where the run's folder is made "
                   "(default benchmarks/runs/)")
    p.add_argument("--write", action="store_true",
                   help="also merge the run into --out and regenerate --report (the tracked files)")
    p.add_argument("--write-suites", help="with --write: merge only these suites of the run (comma list; "
                   "e.g. paper, so a peak measured for its share of peak leaves the stored peak alone)")
    p.add_argument("--out", default=str(HERE / "results.json"), help="stored results that --write merges into")
    p.add_argument("--report", default=str(HERE / "RESULTS.md"), help="report --write regenerates")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up and C++ log messages")
    args = p.parse_args(argv)
    from kzoo.backend import quiet_tensorflow

    quiet_tensorflow(args.verbose)
    from benchmarks import machine

    suites = set(args.suites.split(","))
    from benchmarks.paper import VARIANTS

    unknown = set(v for v in args.paper_variants.split(",") if v) - set(VARIANTS)
    if unknown:
        p.error(f"unknown --paper-variants {', '.join(sorted(unknown))}; choose from {', '.join(VARIANTS)}")
    if "tutorial" in suites and not args.tutorial:
        p.error("the tutorial suite needs --tutorial PATH (pix2pix.ipynb from tensorflow/docs)")
    now = datetime.datetime.now(datetime.timezone.utc)
    args.folder = _new_folder(Path(args.runs), now.strftime("%Y%m%d-%H%M%S"))
    results = {"command": "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
               "date": now.date().isoformat(), "machine": machine.describe()}
    if "peak" in suites:
        results["peak"] = machine.matmul_peak()
        p = results["peak"]
        print(f"peak: {p['gflops']:.1f} GFLOP/s (TensorFlow {p['tensorflow_gflops']:.1f}, "
              f"NumPy {p['numpy_gflops']:.1f})", flush=True)
    if "train" in suites:
        from benchmarks import train

        table = {"fp32": (False, False), "xla": (True, False), "mixed": (False, True)}
        results["train"] = train.run(args.recipes.split(","), steps=args.steps,
                                     preset="paper" if args.paper_sizes else "quick",
                                     variants=[table[v] for v in args.variants.split(",")])
    if "infer" in suites:
        from benchmarks import infer

        results["infer"] = []
        for name in args.recipes.split(","):  # written after each recipe: a long run keeps what it measured
            results["infer"] += infer.run([name], preset="paper" if args.paper_sizes else "quick",
                                          peak=results.get("peak", {}).get("gflops"),
                                          repeats=args.infer_repeats)
            _write(args, results)
        if "peak" in suites:  # measured again after the long suite: the quieter moment counts
            again = machine.matmul_peak()
            for key in ("tensorflow_gflops", "numpy_gflops"):
                results["peak"][key] = max(results["peak"][key], again[key])
            best = max(("tensorflow", "numpy"), key=lambda k: results["peak"][f"{k}_gflops"])
            results["peak"].update(gflops=results["peak"][f"{best}_gflops"], source=best,
                                   repeats=2 * results["peak"]["repeats"])
            for r in results["infer"]:
                if "onnx_gflops_per_s" in r:
                    r["onnx_share_of_peak"] = r["onnx_gflops_per_s"] / results["peak"]["gflops"]
    if "tutorial" in suites:  # not in the default set: it needs --tutorial
        from benchmarks import tutorial

        results["tutorial"] = tutorial.run(args.tutorial, steps=args.steps)
    if "paper" in suites:
        from benchmarks import paper

        results["paper"] = []
        for key in args.paper_models.split(","):  # written after each model
            results["paper"] += paper.run([key], peak=results.get("peak", {}).get("gflops"),
                                          repeats=args.paper_repeats, sr_size=args.sr_size,
                                          workdir=args.paper_workdir,
                                          variants=[v for v in args.paper_variants.split(",") if v],
                                          batches=tuple(int(b) for b in args.paper_batches.split(","))
                                          if args.paper_batches else None,
                                          log=lambda m: print(m, flush=True))
            _write(args, results)
    if "kernels" in suites:
        from benchmarks import kernels

        results["kernels"] = kernels.run()
    if "ddpm" in suites:
        from benchmarks import ddpm

        results["ddpm"] = ddpm.measure(preset="paper" if args.paper_sizes else "quick")
    serving = HERE / "serving.json"
    if serving.is_file():  # written by `python benchmarks/serving.py` (the load test)
        results["serving"] = json.loads(serving.read_text())
    _write(args, results)
    print(f"wrote {args.folder}", flush=True)
    if args.write:
        from benchmarks import report

        report.record([args.folder / "results.json"], args.out, args.report,
                      args.write_suites.split(",") if args.write_suites else None)
        print(f"merged into {args.out} and {args.report}")
    return 0


def _new_folder(runs: Path, name: str) -> Path:
    """`runs/name`, or `runs/name-2`, ... if a run already took it this second."""
    for n in range(1, 1000):
        folder = runs / (name if n == 1 else f"{name}-{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise RuntimeError(f"{runs}: no free run folder named {name}")


def _write(args, results):
    """The run's own results.json (in the stored form, `benchmarks.report.as_stored`) and
    RESULTS.md, in its folder."""
    from benchmarks import report
    from kzoo.io import write_json, write_text

    stored = report.as_stored(args.folder.name, dict(results, notes=NOTES))
    write_json(args.folder / "results.json", stored)
    write_text(args.folder / "RESULTS.md", report.render(stored) + "\n")


if __name__ == "__main__":
    sys.exit(main())
