"""Inference latency and throughput of exported models, batch 1 and 16.

Each recipe's inference part (built at the recipe's quick configuration) is exported
with `kzoo.export.export` (SavedModel + ONNX + ONNX fp16), then timed on the same
inputs: Keras `predict`, Keras direct call (`model(x)`), the SavedModel
`serving_default` signature, ONNX Runtime fp32 and fp16 (ORT_ENABLE_ALL graph
optimizations, intra-op threads = cores, sequential execution). Medians over
`repeats` calls after `warmup` calls, all measured in the same process and run.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import statistics
import tempfile
import time

import numpy as np


def _median_ms(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def _session(path, threads):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def measure(recipe_name, *, preset="quick", batches=(1, 16), repeats=30, warmup=5):
    import tensorflow as tf

    from kzoo.card import sample_inputs
    from kzoo.export import export
    from kzoo.export.spec import pack
    from kzoo.recipes.runner import resolve_config

    recipe = importlib.import_module(f"kzoo.recipes.{recipe_name}").RECIPE
    cfg, _, _, _ = resolve_config(recipe, ["--preset", preset])
    cfg = dataclasses.replace(cfg, jit_compile=False)
    data, _ = recipe.load_data(cfg)
    model = recipe.build(cfg, data)
    threads = os.cpu_count()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        exported = export(model, name=recipe_name, out=tmp, fp16=True)
        for ex in exported:
            part = model.inference_parts()[ex.info["endpoint"]]
            signature = tf.saved_model.load(str(ex.path)).signatures["serving_default"]
            sessions = {"onnx": _session(ex.path / ex.info["files"]["onnx"], threads)}
            if "onnx_fp16" in ex.info.get("files", {}):
                sessions["onnx_fp16"] = _session(ex.path / ex.info["files"]["onnx_fp16"], threads)
            size = cfg.image_size
            for batch in batches:
                feeds = sample_inputs(ex.info["inputs"], batch, np.random.default_rng(0), size=size)
                packed = pack(part, feeds)
                tf_feeds = {k: tf.constant(v) for k, v in feeds.items()}
                timings = {
                    "keras_predict": _median_ms(lambda: part.predict(packed, verbose=0), repeats, warmup),
                    "keras_call": _median_ms(lambda: part(packed, training=False), repeats, warmup),
                    "savedmodel": _median_ms(lambda: signature(**tf_feeds), repeats, warmup),
                }
                for key, sess in sessions.items():
                    timings[key] = _median_ms(lambda: sess.run(None, feeds), repeats, warmup)
                row = {"recipe": recipe_name, "endpoint": ex.name, "batch": batch,
                       "image_size": size, "threads": threads,
                       **{f"{k}_ms": v for k, v in timings.items()},
                       "onnx_speedup_vs_predict": timings["keras_predict"] / timings["onnx"]}
                rows.append(row)
    return rows


def run(recipes, *, preset="quick", repeats=30):
    rows = []
    for name in recipes:
        try:
            rows += measure(name, preset=preset, repeats=repeats)
        except Exception as e:
            rows.append({"recipe": name, "error": f"{type(e).__name__}: {e}"[:300]})
        for r in rows[-2:]:
            print(f"  infer {r['recipe']}: " + (f"batch {r['batch']} onnx {r['onnx_ms']:.2f} ms, "
                                                f"predict {r['keras_predict_ms']:.2f} ms"
                                                if "error" not in r else r["error"]), flush=True)
    return rows
