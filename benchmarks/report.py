"""The stored benchmark results (benchmarks/results.json) and their report (RESULTS.md).

Stored form: `{"runs": {RUN: {"command", "date", "machine", "peak_gflops"}}, "peak":
{..., "run": RUN}, "train": [{..., "run": RUN}, ...], "infer": [...], "kernels": [...],
"ddpm": [...], "serving": {...}, "notes": [...]}` -- every row names the run that
measured it, and a row's share of peak is against its own run's peak. `merge` replaces
the suites a newer run measured and keeps the rest; `render` reads only stored rows.

`python -m benchmarks.report [RUN/results.json ...]` merges runs (folders that
`python -m benchmarks` wrote) into benchmarks/results.json and regenerates
benchmarks/RESULTS.md; without arguments it only regenerates RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
SUITES = ("peak", "train", "infer", "kernels", "ddpm", "tutorial", "paper")
"""What `python -m benchmarks` measures: the peak is one dict, the others lists of rows."""


def as_stored(run_id: str, results: dict) -> dict:
    """One run's flat results (`command`, `date`, `machine`, and a key per suite measured)
    in the stored form: its context under `runs`, each suite's rows stamped with it."""
    peak = results.get("peak")
    stored = {"runs": {run_id: {"command": results["command"], "date": results["date"],
                                "machine": results["machine"],
                                "peak_gflops": peak["gflops"] if peak else None}}}
    for suite in SUITES:
        if suite in results:
            stored[suite] = _stamp(results[suite], run_id)
    for key in ("serving", "notes"):
        if key in results:
            stored[key] = results[key]
    return stored


def _stamp(value, run_id):
    if isinstance(value, dict):
        return dict(value, run=run_id)
    return [dict(row, run=run_id) for row in value]


def upgrade(stored: dict) -> dict:
    """Results written before rows named their run (one `command`, `date`, `machine` and
    `peak` for the whole file) in the stored form: every row belongs to that one run."""
    if "runs" in stored or "machine" not in stored:
        return stored
    run_id = f"{stored['date']}-legacy"
    return as_stored(run_id, stored)


ROW_KEYS = {"paper": ("model", "batch"), "infer": ("recipe",)}
"""Suites merged row by row: a newer run replaces the rows with its keys and keeps the others
(one paper-size model, or one recipe's inference rows -- all of them, a failed row too -- can be
measured again alone)."""


def merge(stored: dict, run: dict, suites=None) -> dict:
    """`stored` with the suites `run` measured replaced by its rows (the others kept, each
    with its own run), its serving and notes taken; runs no row names are dropped.
    `suites`: only these of the run's suites (None: all); suites in `ROW_KEYS` are merged
    row by row."""
    merged = dict(upgrade(stored))
    run = upgrade(run)
    for suite in SUITES:
        if suite in run and (suites is None or suite in suites):
            if suite in ROW_KEYS and merged.get(suite):
                new = {tuple(r.get(k) for k in ROW_KEYS[suite]) for r in run[suite]}
                kept = [r for r in merged[suite] if tuple(r.get(k) for k in ROW_KEYS[suite]) not in new]
                merged[suite] = kept + run[suite]
            else:
                merged[suite] = run[suite]
    for key in ("serving", "notes"):
        if key in run:
            merged[key] = run[key]
    runs = {**merged.get("runs", {}), **run["runs"]}
    used = {r["run"] for suite in SUITES for r in _rows(merged.get(suite))}
    merged["runs"] = {k: v for k, v in sorted(runs.items()) if k in used}
    return merged


def _runs_of(value):
    return f" (run {', '.join(sorted({r['run'] for r in _rows(value)}))})"


def _rows(value):
    if not value:
        return []
    return [value] if isinstance(value, dict) else list(value)


def record(run_files, out=HERE / "results.json", report=HERE / "RESULTS.md", suites=None):
    """Merge the runs' results.json files into `out` (oldest first; only `suites` of them when
    given) and regenerate `report`."""
    from kzoo.io import write_json, write_text

    out = Path(out)
    stored = json.loads(out.read_text()) if out.is_file() else {}
    runs = [json.loads(Path(f).read_text()) for f in run_files]
    for run in sorted(runs, key=lambda r: min(upgrade(r)["runs"])):
        stored = merge(stored, run, suites)
    stored = upgrade(stored)
    write_json(out, stored)
    write_text(report, render(stored) + "\n")
    return stored


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="*", help="results.json of runs to merge (benchmarks/runs/<time>/)")
    p.add_argument("--suites", help="merge only these suites of the runs (comma list; default: all)")
    p.add_argument("--out", default=str(HERE / "results.json"))
    p.add_argument("--report", default=str(HERE / "RESULTS.md"))
    args = p.parse_args(argv)
    record(args.runs, args.out, args.report, args.suites.split(",") if args.suites else None)
    print(f"wrote {args.out} and {args.report}")
    return 0


def _fmt(v, digits=3):
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return "" if v is None else str(v)


def _table(rows, columns):
    head = "| " + " | ".join(title for title, _ in columns) + " |"
    sep = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(_fmt(r.get(key)) for _, key in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def backends_section(path):
    """RESULTS.md's "Backends" section: the rows of `benchmarks/backends.json` (training
    steps of every family on TensorFlow and JAX, images/s and ratio), as in BACKENDS.md;
    no lines when the file is absent."""
    import json

    from benchmarks.backends import load_note, table

    path = Path(path)
    if not path.is_file():
        return []
    result = json.loads(path.read_text())
    out = ["## Backends", "",
           f"Training steps of every family on TensorFlow and JAX, from `{result['command']}` on "
           f"{result['date']} ({result['machine']}); method and notes: [BACKENDS.md](BACKENDS.md).", "",
           *table(result), ""]
    note = load_note(result)
    return out + ([note, ""] if note else [])


def accelerator_section(path):
    """RESULTS.md's section of `benchmarks/backends_paper.json` (`python -m benchmarks.backends
    --preset paper`, run on an accelerator by `scripts/device_bench.sh`): JAX training steps
    of every family at the paper presets' sizes and the ONNX Runtime CUDA rows, with the
    machine named; or the sentence the file records when no accelerator was lent
    (`--not-run`). No lines when the file is absent."""
    import json

    from benchmarks.backends import STOPPED, not_run_note, onnx_table, preset_table

    path = Path(path)
    if not path.is_file():
        return []
    result = json.loads(path.read_text())
    out = ["## Paper sizes on an accelerator", ""]
    if "not_run" in result:
        return out + [not_run_note(result) + " How to run it: docs/benchmarks.md, \"On an accelerator\".", ""]
    out += [(f"JAX training steps of every family at its paper preset's sizes, from `{result['command']}` "
             f"on {result['date']} ({result['machine']}); method and notes: "
             "[BACKENDS_PAPER.md](BACKENDS_PAPER.md)."), "", *preset_table(result), ""]
    if not result.get("complete", True):
        out += [STOPPED, ""]
    if result.get("onnx_rows"):
        out += ["ONNX Runtime, CUDA provider against CPU:", "", *onnx_table(result), ""]
    return out


def paper_section(rows, runs):
    """RESULTS.md's rows of `benchmarks/paper.py` (paper-size networks on every runtime)."""
    ok = [dict(r) for r in rows if "error" not in r]
    for r in ok:
        for key, name in (("fastest_share_of_peak", "share"), ("torch_share_of_peak", "torch_share")):
            if key in r:
                r[name] = f"{100 * r[key]:.0f} %"
    out = [f"## Paper-size inference: runtimes and PyTorch{_runs_of(rows)}", "",
           "The networks users load (seeded weights through the converters, exported with "
           "`kzoo.export`), median ms per call, runtimes alternated call by call in one process "
           "(`benchmarks/paper.py`): the export's SavedModel signature (the compiled TensorFlow "
           "graph), ONNX Runtime with kzoo's options, OpenVINO's CPU plugin on the same model.onnx, "
           "and the PyTorch network a user would otherwise run (`benchmarks/reference_torch.py`). "
           "GFLOP: one call's inference graph; GFLOP/s and share of peak: the fastest kzoo runtime. "
           "Goal: kzoo's default runtime >= 1.5x PyTorch; Real-ESRGAN >= 1.5x (batch 1) the "
           "compiled TensorFlow graph. On a loaded machine (see each run's load average) the "
           "matmul peak measured at the start gets a smaller share of the cores than the "
           "alternated rows do over minutes, so a share of peak above 100 % says the peak was "
           "measured low, not that a runtime beat it; the ratios are what alternation makes "
           "comparable. PyTorch share of peak: the PyTorch network's GFLOP/s over the same peak "
           "(where it is above 2/3, 1.5x PyTorch in float32 would exceed the machine's measured "
           "matmul peak). Max diff: largest absolute difference of the OpenVINO and ORT outputs "
           "(the DDPM's output convolution, which kzoo zero-initialises, is seeded like the rest).", "",
           _table(ok, [("model", "model"), ("size", "image_size"), ("batch", "batch"),
                       ("M params", "params_m"), ("SavedModel", "savedmodel_ms"), ("ORT", "ort_ms"),
                       ("OpenVINO", "openvino_ms"), ("PyTorch", "torch_ms"), ("fastest", "fastest"),
                       ("fastest vs PyTorch", "fastest_vs_torch"), ("ORT vs PyTorch", "ort_vs_torch"),
                       ("ORT vs SavedModel", "ort_vs_savedmodel"),
                       ("OpenVINO vs SavedModel", "openvino_vs_savedmodel"),
                       ("OpenVINO vs ORT", "openvino_vs_ort"), ("GFLOP", "gflop"),
                       ("GFLOP/s", "fastest_gflops_per_s"), ("share of peak", "share"),
                       ("PyTorch share of peak", "torch_share"),
                       ("max diff OpenVINO-ORT", "openvino_max_abs_diff_vs_ort")]), ""]
    low = [r for r in ok if any(f"{v}_ms" in r for v in ("ort_int8", "openvino_int8", "ort_fp16"))]
    if low:
        out += ["### Lower precision: int8 and fp16 copies of the same model.onnx", "",
                "Timed in the same alternation as the row above them: int8 (static QDQ, "
                "`kzoo.export.onnx_model.to_int8`, calibrated on 4 crops of the training photographs) "
                "on ONNX Runtime and OpenVINO, fp16 (`to_fp16`) on ONNX Runtime; speed-up over the "
                "same runtime's fp32. PSNR: the copy's output against the fp32 output on 4 held-out "
                "photograph crops (the DDPM: fresh noise), beside a constant output (the fp32 "
                "output's mean) as the trivial baseline. The networks carry seeded, not trained, "
                "weights (no weights can be downloaded here): the PSNR measures the arithmetic's "
                "error, not picture quality. int8 changes the outputs: it is never a default.", "",
                _table(low, [("model", "model"), ("batch", "batch"), ("ORT int8", "ort_int8_ms"),
                             ("int8 vs ORT", "ort_int8_vs_fp32"), ("OpenVINO int8", "openvino_int8_ms"),
                             ("int8 vs OpenVINO", "openvino_int8_vs_fp32"),
                             ("int8 vs PyTorch", "best_int8_vs_torch"), ("ORT fp16", "ort_fp16_ms"),
                             ("fp16 vs ORT", "ort_fp16_vs_fp32"), ("ORT int8 PSNR dB", "ort_int8_psnr_db"),
                             ("OpenVINO int8 PSNR dB", "openvino_int8_psnr_db"),
                             ("fp16 PSNR dB", "ort_fp16_psnr_db"), ("constant PSNR dB", "const_psnr_db")]
                       + ([("note", "variant_note")] if any("variant_note" in r for r in low) else [])), ""]
    notes = sorted({r["note"] for r in ok if r.get("note")})
    out += [f"- {n}" for n in notes] + [f"- {r['model']}: {r['error']}" for r in rows if "error" in r]
    return out + ([""] if notes or len(ok) < len(rows) else [])


def _machine_lines(m):
    lines = [f"- CPU: {m['cpu']}, {m['cores']} cores; GPU: {', '.join(m['gpus']) or 'none'}",
             f"- TensorFlow {m['tensorflow']}, Keras {m['keras']}, NumPy {m['numpy']}"
             + (f", ONNX Runtime {m['onnxruntime']} ({', '.join(m['onnxruntime_providers'])})"
                if "onnxruntime" in m else "")]
    if "load_average_1min" in m:
        lines.append(f"- 1-minute load average when the run started: {m['load_average_1min']:.1f} "
                     f"(other work on the same {m['cores']} cores)")
    return lines


def render(results):
    """RESULTS.md from stored results (`as_stored`, `merge`; older files are `upgrade`d)."""
    results = upgrade(results)
    runs = results["runs"]
    out = ["# kzoo benchmarks", "",
           "Generated from `benchmarks/results.json` by `python -m benchmarks.report`; each table "
           "names the run that measured it.", "",
           "## Runs", ""]
    for run_id, run in runs.items():
        suites = [s for s in SUITES if any(r["run"] == run_id for r in _rows(results.get(s)))]
        peak = (f"; matmul peak in this run {run['peak_gflops']:.1f} GFLOP/s" if run.get("peak_gflops")
                else "; no peak measured in this run (no share of peak for its rows)")
        out += [f"### Run {run_id}: {', '.join(suites)}", "",
                f"`{run['command']}` on {run['date']}{peak}.", "", *_machine_lines(run["machine"]), ""]
    if "peak" in results:
        p = results["peak"]
        out += [f"## Peak (run {p['run']})", ""]
        if "numpy_gflops" in p:
            out += [f"Measured peak: {p['gflops']:.1f} GFLOP/s, the faster of a {p['dtype']} "
                    f"{p['n']}x{p['n']} matmul through TensorFlow ({p['tensorflow_gflops']:.1f} GFLOP/s) "
                    f"and NumPy ({p['numpy_gflops']:.1f} GFLOP/s), best of {p['repeats']} calls each. "
                    "A row's \"share of peak\" is against the peak of the run that measured it.", ""]
        else:
            out += [f"Measured peak: {p['gflops']:.1f} GFLOP/s ({p['dtype']} {p['n']}x{p['n']} matmul "
                    "through TensorFlow).", ""]
    if results.get("train"):
        refs = [r for r in results["train"] if "reference" in r and "error" not in r]
        ok = [dict(r) for r in results["train"] if "error" not in r and "reference" not in r]
        analytic = all("train_step_gflop_analytic" in r for r in ok)
        for r in ok:
            gflop = r.get("train_step_gflop_analytic", r.get("train_step_gflop"))
            r["gflop_per_step"] = gflop
            peak = runs[r["run"]].get("peak_gflops")
            if gflop and r.get("fit_images_per_s"):
                steps_per_s = r["fit_images_per_s"] / r.get("images_per_step", r["batch"])
                r["gflops_per_s"] = gflop * steps_per_s
                if peak and "train_step_gflop_analytic" in r:  # graph counts are not comparable
                    r["share_of_peak"] = f"{100 * r['gflops_per_s'] / peak:.1f} %"
        source = ("FLOPs per step are the analytic count (3x the forward FLOPs of each differentiated "
                  "pass, 1x for the others; `benchmarks/flops.py`)." if analytic else
                  "FLOPs per step are counted from the traced reference step's graph (forward and "
                  "gradient ops as TF's registry counts them), not the analytic count of "
                  "`benchmarks/flops.py`; no share of peak is given for them.")
        out += [f"## Training throughput{_runs_of(results['train'])}", "",
                "kzoo's overridden `train_step` under `fit` vs the same network trained by a "
                "minimal hand-written `tf.function` loop (ratio = reference time / fit time; "
                "goal >= 0.95). " + source, "",
                _table(ok, [("recipe", "recipe"), ("size", "image_size"), ("width", "width"),
                            ("batch", "batch"), ("XLA", "xla"), ("precision", "precision"),
                            ("fit img/s", "fit_images_per_s"),
                            ("reference img/s", "reference_images_per_s"),
                            ("ratio", "ratio_to_reference"), ("GFLOP/step", "gflop_per_step"),
                            ("GFLOP/s", "gflops_per_s"), ("share of peak", "share_of_peak")]), ""]
        if refs:
            out += ["Against the reference loops users compare with, written in the harness on the same "
                    "networks at the same size (`benchmarks/train.py`): kzoo's `train_step` and the "
                    "reference step as `tf.function`s on one fixed batch, timed in alternating blocks "
                    "in one process; ratio = median over rounds of reference time / kzoo time "
                    "(> 1: kzoo faster).", "",
                    _table(refs, [("recipe", "recipe"), ("reference", "reference"), ("size", "image_size"),
                                  ("width", "width"), ("batch", "batch"), ("XLA", "xla"),
                                  ("kzoo s/step", "kzoo_step_s"), ("reference s/step", "reference_step_s"),
                                  ("ratio", "ratio_to_reference"), ("kzoo GFLOP/step", "kzoo_step_gflop"),
                                  ("reference GFLOP/step", "reference_step_gflop")]), ""]
        failed = [r for r in results["train"] if "error" in r]
        if failed:
            out += ["Rows that failed:", ""] + [f"- {r['recipe']} xla={r.get('xla')} mixed={r.get('mixed')}: {r['error']}"
                                              for r in failed] + [""]
    if results.get("tutorial"):
        ok = [r for r in results["tutorial"] if "error" not in r]
        out += [f"## Training against the TF pix2pix tutorial's own cells{_runs_of(results['tutorial'])}", "",
                ("The tutorial notebook's statements that define its networks, losses, optimizers, "
                 "summary writer and `train_step`, run verbatim (`benchmarks/tutorial.py`), against "
                 "kzoo's `Pix2Pix.fit` on the same random pairs, blocks alternating in one process; "
                 "s/step and CPU-s/step (process time) are medians over rounds, ratio = median of "
                 "tutorial time / kzoo time (> 1: kzoo faster), of wall and of CPU time (the steadier "
                 "one on a loaded machine); load = 1-minute load average before and after."), "",
                _table([dict(r, load=" / ".join(f"{v:.1f}" for v in r.get("load_average_1min", [])),
                             blocks=f"{r['rounds']} x {r['steps_per_round']}") for r in ok],
                       [("size", "image_size"), ("width", "width"), ("batch", "batch"),
                        ("kzoo fit s/step", "kzoo_fit_step_s"), ("tutorial s/step", "tutorial_step_s"),
                        ("ratio", "ratio_to_tutorial"), ("kzoo CPU-s/step", "kzoo_fit_cpu_s"),
                        ("tutorial CPU-s/step", "tutorial_cpu_s"), ("CPU ratio", "cpu_ratio_to_tutorial"),
                        ("kzoo GFLOP/step", "kzoo_step_gflop"),
                        ("tutorial GFLOP/step", "tutorial_step_gflop"), ("rounds x steps", "blocks"),
                        ("load", "load")]), ""]
        out += [f"- failed: {r['error']}" for r in results["tutorial"] if "error" in r]
    if results.get("infer"):
        ok = [dict(r) for r in results["infer"] if "error" not in r]
        for r in ok:
            if "onnx_share_of_peak" in r:
                r["share"] = f"{100 * r['onnx_share_of_peak']:.0f} %"
        out += [f"## Inference latency{_runs_of(results['infer'])}", "",
                "Median milliseconds per call after warm-up, same inputs, backends alternated call by "
                "call in one process. Keras call: `tf.function(model(x, training=False))`, warm, no "
                "XLA. SavedModel: the export's `serving_default` loaded with `tf.saved_model.load`. "
                "ONNX: ONNX Runtime with `kzoo.infer.session_options` (all graph optimizations, "
                "intra-op threads = cores, one inter-op thread, sequential, memory pattern and arena "
                "on); ONNX untuned: onnxruntime's default session options; OpenVINO: its CPU plugin on "
                "the same model.onnx. Fastest: the fastest of the runtimes `kzoo predict` and `kzoo "
                "serve` run (SavedModel, ORT, OpenVINO; `kzoo export --pick-runtime` records it). Goal "
                "on CPU: ONNX >= 1.5x the Keras call at batch 1 and >= 1.2x at batch 16; SR (srgan): "
                "the fastest runtime >= 1.5x / 1.2x the SavedModel. GFLOP: the inference graph's "
                "count; GFLOP/s and share of peak: ONNX fp32.", "",
                _table(ok, [("model", "endpoint"), ("size", "image_size"), ("batch", "batch"),
                            ("Keras call", "keras_call_ms"), ("SavedModel", "savedmodel_ms"),
                            ("ONNX", "onnx_ms"), ("ONNX untuned", "onnx_untuned_ms"),
                            ("ONNX fp16", "onnx_fp16_ms"), ("ONNX int8", "onnx_int8_ms"),
                            ("OpenVINO", "openvino_ms"), ("Keras predict", "keras_predict_ms"),
                            ("ONNX vs call", "onnx_vs_keras_call"),
                            ("ONNX vs SavedModel", "onnx_vs_savedmodel"), ("fastest", "fastest"),
                            ("fastest vs SavedModel", "fastest_vs_savedmodel"),
                            ("ONNX vs predict", "onnx_vs_predict"), ("GFLOP", "gflop"),
                            ("GFLOP/s", "onnx_gflops_per_s"), ("share of peak", "share")]), ""]
        scored = [r for r in ok if r["batch"] == max(x["batch"] for x in ok)]
        if any("fp16_psnr_db" in r or "fp16_agree" in r for r in scored):
            out += ["### fp16 and int8 quality", "",
                    "Output of the fp16 and int8 (static QDQ, calibrated on 16 training inputs) models "
                    "against the fp32 ONNX output on 16 held-out inputs: PSNR over the output's value "
                    "range (higher is closer), beside a constant output (the fp32 output's mean) as "
                    "the trivial baseline; label maps: share of pixels with the same label.", "",
                    _table(scored, [("model", "endpoint"), ("held-out inputs", "quality_inputs"),
                                    ("fp16 PSNR dB", "fp16_psnr_db"), ("int8 PSNR dB", "int8_psnr_db"),
                                    ("constant PSNR dB", "int8_const_psnr_db"),
                                    ("fp16 agree", "fp16_agree"), ("int8 agree", "int8_agree")]
                           + ([("note", "quality_note")] if any("quality_note" in r for r in scored) else [])), ""]
        profiled = [r for r in ok if r.get("onnx_profile")]
        if profiled:
            out += ["### Where ONNX Runtime spends its time", "",
                    f"onnxruntime's profiler, batch {profiled[0]['batch']}: share of kernel time by op "
                    "type (largest five).", "",
                    _table([{"model": r["endpoint"], "ops": ", ".join(
                        f"{op} {100 * v:.0f} %" for op, v in  # largest first (results.json sorts keys)
                        sorted(r["onnx_profile"].items(), key=lambda kv: -kv[1]))} for r in profiled],
                        [("model", "model"), ("kernel time by op type", "ops")]), ""]
        failed = [r for r in results["infer"] if "error" in r]
        out += [f"- {r['recipe']}: {r['error']}" for r in failed] + ([""] if failed else [])
    if results.get("kernels"):
        out += [f"### ONNX Runtime kernels behind the rows below goal{_runs_of(results['kernels'])}", "",
                "One-node graphs with the same session options, timed alternately "
                "(`benchmarks/kernels.py`): each kernel beside its baseline, median ms.", "",
                _table([{"kernel": r["kernel"], "shape": r["shape"], "times": ", ".join(
                    f"{k[:-3]} {v:.2f}" for k, v in r.items() if k.endswith("_ms"))}
                    for r in results["kernels"]],
                    [("kernel", "kernel"), ("input", "shape"), ("ms", "times")]), ""]
    if results.get("paper"):
        out += paper_section(results["paper"], runs)
    if results.get("ddpm"):
        out += [f"## DDPM sampling{_runs_of(results['ddpm'])}", "",
                "Wall time to draw one batch from the ddpm recipe's network: the ancestral sampler "
                "over all T steps vs DDIM, in Keras (EMA network, one call per step) and through "
                "the exported eps-network on ONNX Runtime (NumPy loop, no TensorFlow).", "",
                _table(results["ddpm"], [("sampler", "sampler"), ("steps", "steps"), ("batch", "batch"),
                                         ("size", "image_size"), ("Keras s", "keras_seconds"),
                                         ("Keras img/s", "keras_images_per_s"),
                                         ("ONNX Runtime s", "onnx_seconds"),
                                         ("ONNX Runtime img/s", "onnx_images_per_s")]), ""]
    if results.get("serving"):
        sv = results["serving"]
        out += ["## Serving load test", "",
                f"`kzoo serve` ({sv.get('backend')} backend, REST) on 127.0.0.1 with model "
                f"{sv.get('export', sv.get('model'))}; the load generator's clients run on the same "
                f"machine. Measured {sv.get('date')} by `{sv.get('command', 'python benchmarks/serving.py')}`.", "",
                _table(sv.get("runs", []), [("max batch", "max_batch"), ("batch wait ms", "batch_wait_ms"),
                                            ("clients", "clients"), ("requests", "requests"),
                                            ("errors", "errors"), ("req/s", "throughput_rps"),
                                            ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"),
                                            ("rows per batch", "mean_rows_per_batch"),
                                            ("batching gain", "batching_gain")]), ""]
    out += backends_section(Path(__file__).parent / "backends.json")
    out += accelerator_section(Path(__file__).parent / "backends_paper.json")
    for note in results.get("notes", []):
        out += [note, ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
