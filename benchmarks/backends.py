"""Training steps of every family on JAX and TensorFlow: images/s and the JAX/TF ratio.

`python -m benchmarks.backends [--families dcgan,pix2pix] [--steps 10] [--backends jax,tensorflow]
[--preset quick|paper] [--onnx DIR]`

Each backend and family runs in its own process (Keras fixes the backend per process,
and a family that runs out of memory or crashes leaves a row with its error, not a dead
run): `KERAS_BACKEND=<b> python -m benchmarks.backends --worker` builds each family at
its recipe's preset model size (`preset_model`: `--preset quick`, the default, the model
options and batch of the recipe's quick preset; `--preset paper`, its paper preset, the
paper's sizes and batch; no dataset or TensorFlow import is needed), compiles it as the
recipes do (JAX: always `jax.jit`; TensorFlow: XLA off, the recipes' CPU default), and
times `fit` on NumPy batches from the model's own `sample_batch`: the steady-state steps
between the end of the warm-up and the last batch (tracing and compilation excluded).
Backends that are not installed are skipped, so the script runs on a machine with JAX and
no TensorFlow (the JAX worker needs kzoo's models and Keras, not TensorFlow:
tests/benchmarks/test_backends.py runs it, through scripts/device_bench.sh, where `import
tensorflow` fails; where TensorFlow is
installed, Keras imports it for its own optional calls, e.g. `keras.utils.set_random_seed`,
and the result records `tensorflow_imported`). `--onnx DIR` adds ONNX Runtime rows: each
`model.onnx` under DIR on the CUDA provider against the CPU provider
(`benchmarks/providers.py`, in a process of its own after the training workers, so JAX has
given its GPU memory back). The result file is written again after every row, so a run cut
short keeps what it measured. Writes benchmarks/backends.json and benchmarks/BACKENDS.md
(`--preset paper`: backends_paper.json and BACKENDS_PAPER.md). `scripts/device_bench.sh`
runs the paper preset and the ONNX rows on an accelerator machine (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent

def registered_families() -> list[str]:
    """Every registered recipe (`kzoo.recipes.registry`), one family each."""
    from kzoo.recipes.registry import list_recipes

    return list_recipes()


PRESETS = ("quick", "paper")


def preset_model(family, preset="quick") -> tuple[str, dict, int]:
    """(registered model, constructor arguments, batch) of `family`'s `preset`
    (`kzoo/recipes/presets/<family>.toml`, read by `kzoo.recipes.config.load_preset`):
    its model options and the training options the model shares (image_size, seed).
    No dataset is loaded, so the arguments the data decides (channels, classes) take, for
    `quick`, the values of the model's tiny test overrides (`kzoo.zoo.tiny_overrides`,
    else its defaults) and, for `paper`, the model's defaults, which are the paper's
    dataset's (3 channels; DeepLabV3+'s 21 PASCAL VOC classes; U-Net's 1 channel and 2
    classes). Arguments the recipe computes (`recipe.recipe_args`: SRGAN's feature network)
    take the model's defaults (`recipe_defaults`)."""
    from kzoo.recipes.config import load_preset, make_config, model_args, model_options
    from kzoo.recipes.registry import get_recipe
    from kzoo.zoo import tiny_overrides

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    recipe = get_recipe(family)
    cfg = make_config(recipe, *load_preset(recipe, preset))
    if preset == "quick":
        tiny = tiny_overrides(recipe.model)
        data_args = {k: tiny[k] for k in recipe.data_args if k in tiny}
        return recipe.model, model_args(cfg, recipe.model, **data_args), cfg.batch_size
    defaults = model_options(recipe.model)  # a training option left None means "the data's"
    data_args = {k: defaults[k].default for k in recipe.data_args if k in defaults}
    return recipe.model, model_args(cfg, recipe.model, **data_args), cfg.batch_size


def quick_model(family) -> tuple[str, dict, int]:
    """`preset_model(family, "quick")`."""
    return preset_model(family, "quick")


def paper_model(family) -> tuple[str, dict, int]:
    """`preset_model(family, "paper")`: the paper's sizes and batch."""
    return preset_model(family, "paper")


def recipe_defaults(family) -> list[str]:
    """The arguments of `family`'s model that its recipe computes (SRGAN's feature network)
    and that a benchmark row therefore leaves at the model's defaults."""
    from kzoo.recipes.registry import get_recipe

    return list(get_recipe(family).recipe_args)


def measure(family, *, steps=10, warmup=2, preset="quick"):
    """One row: images/s of `fit` on this process's backend for `family` at `preset`."""
    import keras
    import numpy as np

    from kzoo.zoo import create_model

    name, overrides, batch = preset_model(family, preset)
    keras.utils.set_random_seed(0)
    model = create_model(name, **{**overrides, "seed": 0})
    model.compile(**{n: keras.optimizers.Adam(1e-4) for n in model.optimizer_names})
    per_step = batch * getattr(model, "d_steps", 1)
    data = model.sample_batch(per_step * (warmup + steps) // getattr(model, "d_steps", 1), rng=0)
    args = data if isinstance(data, tuple) else (data,)
    marks = {}

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, step, logs=None):
            if step == warmup - 1:
                if logs:  # wait for the device (JAX dispatches asynchronously)
                    [np.asarray(v) for v in logs.values()]
                marks["start"] = time.perf_counter()
            marks["end"] = time.perf_counter()

    class Sync(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            # the last step's outputs, read back: on a GPU the steps run asynchronously
            [np.asarray(v) for v in (logs or {}).values()]
            keras.ops.convert_to_numpy(model.trainable_variables[-1])
            marks["end"] = time.perf_counter()

    model.fit(*args, batch_size=per_step, epochs=1, shuffle=False, verbose=0, callbacks=[Clock(), Sync()])
    seconds = marks["end"] - marks["start"]
    row = {"family": family, "model": name, "backend": keras.backend.backend(), "preset": preset,
           "image_size": overrides.get("image_size"), "batch": per_step, "steps": steps,
           "images_per_s": steps * per_step / seconds, "steps_per_s": steps / seconds,
           "step_ms": 1000 * seconds / steps,
           "params": int(sum(np.prod(v.shape) for v in model.trainable_variables))}
    if preset != "quick" and recipe_defaults(family):
        row["note"] = ("model defaults for the arguments the recipe computes: "
                       + ", ".join(recipe_defaults(family)))
    return row


def worker(families, steps, preset="quick"):
    load = [os.getloadavg()[0]]
    rows = []
    for family in families:
        try:
            rows.append(measure(family, steps=steps, preset=preset))
        except Exception as e:  # noqa: BLE001 -- a failing row (out of memory too) is reported, not hidden
            import keras

            rows.append({"family": family, "backend": keras.backend.backend(), "preset": preset,
                         "error": f"{type(e).__name__}: {e}"[:300]})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    import keras

    versions = {"keras": keras.__version__, backend: importlib.import_module(backend).__version__}
    print(json.dumps({"rows": rows, "load_average": load + [os.getloadavg()[0]], "versions": versions,
                      "devices": _devices(backend), "tensorflow_imported": "tensorflow" in sys.modules}))


def gpus() -> list[str]:
    """The machine's NVIDIA GPUs as `nvidia-smi` names them (name, memory, driver), or []."""
    import shutil

    if not shutil.which("nvidia-smi"):
        return []
    query = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                           check=False, capture_output=True, text=True)
    fields = [line.split(", ") for line in query.stdout.splitlines() if line.count(", ") == 2]
    return [f"{name} ({memory}, driver {driver})" for name, memory, driver in fields]


def _devices(backend):
    """The devices this process's backend computes on, in words."""
    if backend == "jax":
        import jax

        return ", ".join(sorted({f"{d.platform}: {d.device_kind}" for d in jax.devices()}))
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return ", ".join(tf.config.experimental.get_device_details(g).get("device_name", g.name)
                         for g in gpus) or "cpu"
    return "cpu"


def table(result):
    """The rows of `result` (backends.json) as a markdown table, one line per family:
    TensorFlow and JAX images/s and their ratio (a failed or missing cell says why)."""
    rows = result["rows"]
    by = {(r["family"], r["backend"]): r for r in rows}
    lines = ["| family | model | batch | TensorFlow img/s | JAX img/s | JAX / TF |",
             "| --- | --- | --- | --- | --- | --- |"]
    for family in dict.fromkeys(r["family"] for r in rows):
        tf_row, jax_row = by.get((family, "tensorflow"), {}), by.get((family, "jax"), {})
        tf_ips, jax_ips = tf_row.get("images_per_s"), jax_row.get("images_per_s")
        ratio = f"{jax_ips / tf_ips:.2f}" if tf_ips and jax_ips else ""
        cell = lambda r, v: f"{v:.1f}" if v else r.get("error", "not run")[:60]
        model = jax_row.get("model") or tf_row.get("model", "")
        batch = jax_row.get("batch") or tf_row.get("batch", "")
        lines.append(f"| {family} | {model} | {batch} | {cell(tf_row, tf_ips)} | "
                     f"{cell(jax_row, jax_ips)} | {ratio} |")
    return lines


def preset_table(result):
    """The rows of a `--preset paper` result as a markdown table, one line per family and
    backend: image size, batch, parameters, training steps/s, images/s and ms per step
    (a failed row says why in the steps/s cell)."""
    lines = ["| family | model | backend | size | batch | M params | steps/s | img/s | ms/step |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        params = f"{r['params'] / 1e6:.1f}" if r.get("params") else ""
        if "error" in r:
            cells = [r["error"][:120], "", ""]
        else:
            cells = [f"{r['steps_per_s']:.2f}", f"{r['images_per_s']:.1f}", f"{r['step_ms']:.1f}"]
        lines.append(f"| {r['family']} | {r.get('model', '')} | {r['backend']} | {r.get('image_size') or ''} | "
                     f"{r.get('batch', '')} | {params} | " + " | ".join(cells) + " |")
    return lines


def onnx_table(result):
    """The ONNX Runtime rows (`benchmarks/providers.py`) of `result`: the table of the
    timed models and a line for each model that was skipped (no CUDA provider) or failed."""
    from benchmarks.providers import table as providers_table

    return providers_table(result.get("onnx_rows", []))


def load_note(result):
    """The load averages the workers met (one sentence), or None when not recorded."""
    loads = result.get("load_average")
    if not loads:
        return None
    shown = "; ".join(f"{b} worker: {v[0]:.1f} at its start, {v[1]:.1f} at its end"
                      for b, v in loads.items())
    return (f"1-minute load average ({shown}) on {result.get('cores', 'the')} cores: "
            "the rows were measured under that load from other work.")


STOPPED = "The run stopped before its end (cut short): these rows are what it had measured."


def not_run_note(result):
    """The sentence a result that could not be measured carries (`--not-run`), else None."""
    if "not_run" not in result:
        return None
    return f"Not measured on {result['date']}: {result['not_run']}."


def render(result):
    if result.get("preset", "quick") == "quick":
        lines = ["# kzoo training on JAX and TensorFlow", "",
                 (f"Generated by `{result['command']}` on {result['date']} ({result['machine']}). "
                   "Each backend in its own process; `fit` on NumPy batches at the quick recipes' model "
                  "sizes, steady-state steps only (compilation excluded). JAX compiles the step with "
                  "`jax.jit` (XLA); TensorFlow runs it as a `tf.function` without XLA, the recipes' "
                  "CPU default. Ratio = JAX images/s / TensorFlow images/s."), "", *table(result), "",
                 ("At the paper presets' sizes on an accelerator: [BACKENDS_PAPER.md](BACKENDS_PAPER.md) "
                  "(`scripts/device_bench.sh`; docs/benchmarks.md, \"On an accelerator\").")]
    else:
        lines = [f"# kzoo training at the {result['preset']} presets' sizes", ""]
        if "not_run" in result:
            lines += [not_run_note(result), "", "To measure: docs/benchmarks.md, \"On an accelerator\"."]
            return "\n".join(lines) + "\n"
        lines += [(f"Generated by `{result['command']}` on {result['date']} ({result['machine']}). "
                   f"Each family in its own process at its recipe's {result['preset']} preset (image size, "
                   "batch and model options; data-decided arguments at the model's defaults, the paper "
                   "dataset's); `fit` on NumPy batches (on a GPU each batch's copy to the device is in "
                   "its step), steady-state steps only (compilation excluded); JAX compiles the step "
                   "with `jax.jit` (XLA)."
                   + ("" if not result.get("versions") else " Versions: " + ", ".join(
                       f"{k} {v}" for k, v in sorted(result["versions"].items())) + ".")),
                  "", *preset_table(result)]
        if not result.get("complete", True):
            lines += ["", STOPPED]
    if result.get("onnx_rows"):
        lines += ["", "## ONNX Runtime: CUDA against CPU", "", *onnx_table(result)]
    for note in filter(None, [load_note(result), *dict.fromkeys(
            f"{r['family']}: {r['note']}" for r in result["rows"] if r.get("note")),
            *result.get("notes", [])]):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _run_worker(backend, family, args, env):
    """The worker's rows for one family (a crash, a timeout or an out-of-memory kill is a
    row with the error), its load averages and its devices."""
    cmd = [sys.executable, "-m", "benchmarks.backends", "--worker", "--families", family,
           "--steps", str(args.steps), "--preset", args.preset]
    try:
        run = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, cwd=HERE.parent,
                             timeout=args.family_timeout)
    except subprocess.TimeoutExpired:
        return {"rows": [{"family": family, "backend": backend, "preset": args.preset,
                          "error": f"timed out after {args.family_timeout} s"}]}
    if run.returncode:
        tail = " ".join(run.stderr.strip().splitlines()[-3:])
        return {"rows": [{"family": family, "backend": backend, "preset": args.preset,
                          "error": f"worker exited with {run.returncode}: {tail}"[:300]}]}
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.backends", description=__doc__.split("\n")[0])
    p.add_argument("--families", default=None, help="default: every registered recipe")
    p.add_argument("--backends", default="tensorflow,jax")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--preset", default="quick", choices=PRESETS,
                   help="model sizes and batch: the recipes' quick (default) or paper presets")
    p.add_argument("--onnx", action="append", default=[], metavar="PATH",
                   help="a model.onnx, or a folder searched for model.onnx files: ONNX Runtime rows, "
                        "CUDA provider against CPU (repeatable; benchmarks/providers.py)")
    p.add_argument("--onnx-repeats", type=int, default=10)
    p.add_argument("--onnx-timeout", type=float, default=None, metavar="S",
                   help="seconds the ONNX Runtime rows may take in all (the rows done by then stay)")
    p.add_argument("--tensorrt", action="store_true", help="also time TensorRT, where its provider exists")
    p.add_argument("--family-timeout", type=float, default=None, metavar="S",
                   help="seconds one family's worker may take (then its row says it timed out)")
    p.add_argument("--budget", type=float, default=None, metavar="S",
                   help="start no further family once this many seconds have passed (its row says so)")
    p.add_argument("--worker", action="store_true", help="measure on this process's KERAS_BACKEND")
    p.add_argument("--not-run", metavar="REASON",
                   help="record that the run could not happen (e.g. no accelerator was lent): "
                        "a result with no rows, dated, with the reason")
    p.add_argument("--out", default=None, help="default: benchmarks/backends.json (quick), "
                   "benchmarks/backends_paper.json (paper)")
    p.add_argument("--report", default=None, help="default: benchmarks/BACKENDS.md (quick), "
                   "benchmarks/BACKENDS_PAPER.md (paper)")
    p.add_argument("--note", action="append", default=[], help="a sentence for the report (repeatable)")
    p.add_argument("--render", action="store_true",
                   help="measure nothing: write --report again from --out (e.g. a run cut short)")
    args = p.parse_args(argv)
    known = registered_families()
    families = args.families.split(",") if args.families else known
    unknown = set(families) - set(known)
    if unknown:
        print(f"error: unknown families {sorted(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    if args.worker:
        worker(families, args.steps, args.preset)
        return 0
    suffix = "" if args.preset == "quick" else f"_{args.preset}"
    out = Path(args.out or HERE / f"backends{suffix}.json")
    report = Path(args.report or HERE / f"BACKENDS{suffix.upper()}.md")
    from benchmarks.providers import find_models

    try:
        onnx_models = find_models(args.onnx)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from kzoo.io import write_json, write_text

    if args.render:
        if not out.is_file():
            print(f"error: {out}: no such file (run the benchmark first)", file=sys.stderr)
            return 2
        write_text(report, render(json.loads(out.read_text())))
        print(f"wrote {report}")
        return 0
    result = {"command": "python -m benchmarks.backends " + " ".join(argv if argv is not None else sys.argv[1:]),
              "date": datetime.date.today().isoformat(), "preset": args.preset,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "cores": os.cpu_count(), "gpus": gpus(), "load_average": {}, "rows": [], "notes": args.note,
              "complete": False}
    if args.not_run:
        result.update(not_run=args.not_run, complete=True, load_average={})
        write_json(out, result)
        write_text(report, render(result))
        print(f"wrote {out} and {report}")
        return 0
    started, devices = time.monotonic(), {}
    for backend in args.backends.split(","):
        module = {"tensorflow": "tensorflow", "jax": "jax"}.get(backend)
        if module is None or importlib.util.find_spec(module) is None:
            print(f"{backend}: not installed, skipped", flush=True)
            continue
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        for family in families:
            if args.budget is not None and time.monotonic() - started > args.budget:
                got = {"rows": [{"family": family, "backend": backend, "preset": args.preset,
                                 "error": f"not run: the run's budget of {args.budget:g} s was spent"}]}
            else:
                got = _run_worker(backend, family, args, env)
            result["rows"] += got["rows"]
            if "load_average" in got:
                first = result["load_average"].get(backend, got["load_average"])
                result["load_average"][backend] = [first[0], got["load_average"][1]]
            if got.get("devices"):
                devices[backend] = got["devices"]
            result.setdefault("versions", {}).update(got.get("versions", {}))
            if "tensorflow_imported" in got:  # the JAX worker must run where TensorFlow is absent
                imported = result.setdefault("tensorflow_imported", {})
                imported[backend] = imported.get(backend, False) or got["tensorflow_imported"]
            for r in got["rows"]:
                print(f"  {backend} {r['family']}: " + (f"{r['images_per_s']:.1f} img/s"
                                                       if "error" not in r else r["error"]), flush=True)
            result["machine"] = ", ".join([f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                                           *(f"GPU {g}" for g in result["gpus"])]) + "; " + "; ".join(
                f"{b}: {d}" for b, d in devices.items())
            write_json(out, result)  # a run cut short keeps what it measured
    if onnx_models:
        result["onnx_rows"] = _onnx_rows(onnx_models, args)
    result["complete"] = True
    write_json(out, result)
    write_text(report, render(result))
    print(f"wrote {out} and {report}")
    return 0


def _onnx_rows(models, args):
    """`benchmarks.providers` rows for `models`, in a process of its own (no Keras there),
    which writes its rows after each model: cut short at `--onnx-timeout`, the rows it
    wrote stay, and a row says where it stopped."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rows_file = Path(tmp) / "rows.json"
        cmd = [sys.executable, "-m", "benchmarks.providers", *(str(Path(m).resolve()) for m in models),
               "--json", str(rows_file),
               "--repeats", str(args.onnx_repeats)] + (["--tensorrt"] if args.tensorrt else [])
        try:
            run = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=HERE.parent,
                                 timeout=args.onnx_timeout)
            failed = (f"benchmarks.providers exited with {run.returncode}: "
                      + " ".join(run.stderr.strip().splitlines()[-3:])) if run.returncode else None
        except subprocess.TimeoutExpired:
            failed = f"benchmarks.providers timed out after {args.onnx_timeout:g} s"
        rows = json.loads(rows_file.read_text()) if rows_file.is_file() else []
    if failed:
        from benchmarks.providers import _name

        done = {r["model"] for r in rows}
        left = [_name(m) for m in models if _name(m) not in done]
        rows.append({"model": left[0] if left else "(all)", "error": failed[:300]
                     + (f"; not timed: {', '.join(left[1:])}" if left[1:] else "")})
    return rows


if __name__ == "__main__":
    sys.exit(main())
