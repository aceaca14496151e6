"""Training steps of every family on JAX and TensorFlow: images/s and the JAX/TF ratio.

`python -m benchmarks.backends [--families dcgan,pix2pix] [--steps 10] [--backends jax,tensorflow]`

Each backend runs in its own process (Keras fixes the backend per process):
`KERAS_BACKEND=<b> python -m benchmarks.backends --worker` builds each family at its
quick recipe's model size (`quick_model`: the model options and batch of the recipe's
quick preset; no dataset or TensorFlow import is needed), compiles it as the recipes do
(JAX: always `jax.jit`; TensorFlow: XLA off, the recipes' CPU default), and times `fit`
on NumPy batches from the model's
own `sample_batch`: the steady-state steps between the end of the warm-up and the
last batch (tracing and compilation excluded). Backends that are not installed are
skipped, so the script runs on a machine with JAX and no TensorFlow (only kzoo's
pure-Python parts are imported). Writes benchmarks/backends.json and
benchmarks/BACKENDS.md.
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


def quick_model(family) -> tuple[str, dict, int]:
    """(registered model, constructor arguments, batch) of `family`'s quick preset
    (`kzoo/recipes/presets/<family>.toml`, read by `kzoo.recipes.config.load_preset`):
    its model options and the training options the model shares (image_size, seed).
    Arguments the data decides (channels, classes) take the values of the model's tiny
    test overrides (`kzoo.zoo.tiny_overrides`), else its defaults: no dataset is loaded;
    arguments the recipe computes (SRGAN's feature network) take the model's defaults."""
    from kzoo.recipes.config import load_preset, make_config, model_args
    from kzoo.recipes.registry import get_recipe
    from kzoo.zoo import tiny_overrides

    recipe = get_recipe(family)
    cfg = make_config(recipe, *load_preset(recipe, "quick"))
    tiny = tiny_overrides(recipe.model)
    data_args = {k: tiny[k] for k in recipe.data_args if k in tiny}
    return recipe.model, model_args(cfg, recipe.model, **data_args), cfg.batch_size


def measure(family, *, steps=10, warmup=2):
    """One row: images/s of `fit` on this process's backend for `family`."""
    import keras
    import numpy as np

    from kzoo.zoo import create_model

    name, overrides, batch = quick_model(family)
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
            marks["end"] = time.perf_counter()

    model.fit(*args, batch_size=per_step, epochs=1, shuffle=False, verbose=0, callbacks=[Clock(), Sync()])
    seconds = marks["end"] - marks["start"]
    return {"family": family, "model": name, "backend": keras.backend.backend(),
            "batch": per_step, "steps": steps, "images_per_s": steps * per_step / seconds,
            "step_ms": 1000 * seconds / steps,
            "params": int(sum(np.prod(v.shape) for v in model.trainable_variables))}


def worker(families, steps):
    load = [os.getloadavg()[0]]
    rows = []
    for family in families:
        try:
            rows.append(measure(family, steps=steps))
        except Exception as e:  # a failing row is reported, not hidden
            import keras

            rows.append({"family": family, "backend": keras.backend.backend(),
                         "error": f"{type(e).__name__}: {e}"[:300]})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"rows": rows, "load_average": load + [os.getloadavg()[0]]}))


def _devices(backend):
    if backend == "jax":
        import jax

        return ", ".join(sorted({d.device_kind for d in jax.devices()}))
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
        cell = lambda r, v: f"{v:.1f}" if v else r.get("error", "not run")[:60]  # noqa: E731
        model = jax_row.get("model") or tf_row.get("model", "")
        batch = jax_row.get("batch") or tf_row.get("batch", "")
        lines.append(f"| {family} | {model} | {batch} | {cell(tf_row, tf_ips)} | "
                     f"{cell(jax_row, jax_ips)} | {ratio} |")
    return lines


def load_note(result):
    """The load averages the workers met (one sentence), or None when not recorded."""
    loads = result.get("load_average")
    if not loads:
        return None
    shown = "; ".join(f"{b} worker: {v[0]:.1f} at its start, {v[1]:.1f} at its end"
                      for b, v in loads.items())
    return (f"1-minute load average ({shown}) on {result.get('cores', 'the')} cores: "
            "the rows were measured under that load from other work.")


def render(result):
    lines = ["# kzoo training on JAX and TensorFlow", "",
             f"Generated by `{result['command']}` on {result['date']} ({result['machine']}). "
             "Each backend in its own process; `fit` on NumPy batches at the quick recipes' model "
             "sizes, steady-state steps only (compilation excluded). JAX compiles the step with "
             "`jax.jit` (XLA); TensorFlow runs it as a `tf.function` without XLA, the recipes' "
             "CPU default. Ratio = JAX images/s / TensorFlow images/s.", "", *table(result)]
    for note in filter(None, [load_note(result), *result.get("notes", [])]):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.backends", description=__doc__.split("\n")[0])
    p.add_argument("--families", default=",".join(registered_families()), help="default: every registered recipe")
    p.add_argument("--backends", default="tensorflow,jax")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--worker", action="store_true", help="measure on this process's KERAS_BACKEND")
    p.add_argument("--out", default=str(HERE / "backends.json"))
    p.add_argument("--report", default=str(HERE / "BACKENDS.md"))
    p.add_argument("--note", action="append", default=[], help="a sentence for the report (repeatable)")
    args = p.parse_args(argv)
    families = args.families.split(",")
    known = registered_families()
    unknown = set(families) - set(known)
    if unknown:
        print(f"error: unknown families {sorted(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    if args.worker:
        worker(families, args.steps)
        return 0
    rows, devices, loads = [], {}, {}
    for backend in args.backends.split(","):
        module = {"tensorflow": "tensorflow", "jax": "jax"}.get(backend)
        if module is None or importlib.util.find_spec(module) is None:
            print(f"{backend}: not installed, skipped", flush=True)
            continue
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        run = subprocess.run([sys.executable, "-m", "benchmarks.backends", "--worker", "--families",
                              args.families, "--steps", str(args.steps)],
                             env=env, capture_output=True, text=True, cwd=HERE.parent)
        if run.returncode:
            print(f"{backend}: worker failed\n{run.stderr[-2000:]}", flush=True)
            continue
        got = json.loads(run.stdout.strip().splitlines()[-1])
        rows += got["rows"]
        loads[backend] = got["load_average"]
        devices[backend] = subprocess.run(
            [sys.executable, "-c", f"from benchmarks.backends import _devices; print(_devices({backend!r}))"],
            env=env, capture_output=True, text=True, cwd=HERE.parent).stdout.strip()
        for r in got["rows"]:
            print(f"  {backend} {r['family']}: " + (f"{r['images_per_s']:.1f} img/s"
                                                   if "error" not in r else r["error"]), flush=True)
    result = {"command": "python -m benchmarks.backends " + " ".join(argv if argv is not None else sys.argv[1:]),
              "date": datetime.date.today().isoformat(),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                         + "; ".join(f"{b}: {d}" for b, d in devices.items()),
              "cores": os.cpu_count(), "load_average": loads, "rows": rows, "notes": args.note}
    from kzoo.io import write_json, write_text

    write_json(args.out, result)
    write_text(args.report, render(result))
    print(f"wrote {args.out} and {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
