"""Inference latency and throughput of exported models against the baselines users compare.

Each recipe's inference part (built at the recipe's quick configuration) is exported
with `kzoo.export.export` (SavedModel + ONNX + ONNX fp16, parity-checked) and quantized
to int8 (`kzoo.export.onnx_model.to_int8`, calibrated on the recipe's training data).
On the same inputs, at batch 1 and 16, it times:

- `keras_call`: the compiled Keras call, `tf.function(lambda x: part(x, training=False))`
  (no XLA), warm -- what a TensorFlow user serves with;
- `savedmodel`: the exported SavedModel's `serving_default`, loaded with `tf.saved_model.load`;
- `onnx`: ONNX Runtime with `kzoo.infer.session_options` (the tuned options), and
  `onnx_untuned` with onnxruntime's default `SessionOptions`; `onnx_fp16`, `onnx_int8`;
- `openvino`: OpenVINO's CPU plugin on the same `model.onnx` (`kzoo.runtime.OpenVinoSession`;
  left out where the `openvino` extra is not installed);
- `keras_predict`: `model.predict`, which builds a data pipeline on every call (an extra column).

`fastest` names the fastest of the runtimes `kzoo predict` / `kzoo serve` can run the
export on (SavedModel, ONNX Runtime, OpenVINO: what `kzoo export --pick-runtime` chooses
between), and `fastest_vs_savedmodel` its speed-up over the compiled TensorFlow graph.

Timing alternates the backends call by call (A/B/C..., the order rotated every round) in
one process, so a change in the machine's load hits them alike; each figure is the median
over `repeats` rounds after `warmup` calls. FLOPs are counted in the inference graph
(`benchmarks.flops.forward_flops`), so a row's GFLOP/s is the work the model does per
second on ONNX Runtime. Quality of fp16 and int8: PSNR of their output against the fp32
ONNX output on held-out inputs (the data's held-out split where it has one; fresh
latents), beside the PSNR of
a constant output (the fp32 output's mean) as the trivial baseline; label maps: the share
of pixels whose label agrees.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import statistics
import tempfile
import time

import numpy as np

CALIBRATION = 16  # int8 calibration inputs (min/max ranges), in batches of 4
BACKENDS = ("keras_call", "savedmodel", "onnx", "onnx_untuned", "onnx_fp16", "onnx_int8", "openvino",
            "keras_predict")
SERVED = ("savedmodel", "onnx", "openvino")  # the runtimes kzoo predict / serve choose between


def alternate(fns, repeats, warmup):
    """Median milliseconds per call of each `fns[name]()`, the calls interleaved."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    times = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            t = time.perf_counter()
            fns[n]()
            times[n].append(time.perf_counter() - t)
    return {n: 1000 * statistics.median(v) for n, v in times.items()}


def _session(path, tuned=True):
    import onnxruntime as ort

    from kzoo.infer import session_options

    opts = session_options() if tuned else ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def op_profile(path, feeds, runs=5, top=5):
    """Where ONNX Runtime spends a call: {op type: share of the kernel time}, the `top` largest,
    from onnxruntime's own profiler (tuned session options, `runs` calls after one warm-up)."""
    import json
    import os

    import onnxruntime as ort

    from kzoo.infer import session_options

    with tempfile.TemporaryDirectory() as tmp:
        opts = session_options()
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        for _ in range(runs + 1):
            sess.run(None, feeds)
        events = json.loads(open(sess.end_profiling()).read())
    totals = {}
    for ev in events:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            op = ev.get("args", {}).get("op_name", "?")
            totals[op] = totals.get(op, 0) + ev.get("dur", 0)
    whole = sum(totals.values()) or 1
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return {op: round(us / whole, 3) for op, us in ranked}


def _images(data, want, count):
    """`count` arrays of shape `want` (HxWxC) from a recipe's data object (its `dataset`, its
    domains `a`/`b`, or a list of images; a larger image gives its non-overlapping tiles), or None."""
    import itertools

    sources = [iter(data)] if isinstance(data, (list, tuple)) else []
    sources += [getattr(data, k).take(8 * count).as_numpy_iterator()
                for k in ("dataset", "a", "b") if getattr(data, k, None) is not None]
    found = []
    for example in itertools.chain(*sources):
        parts = example.values() if isinstance(example, dict) else (
            example if isinstance(example, (tuple, list)) else (example,))
        for a in map(np.asarray, parts):
            if a.ndim == len(want) + 1 and a.shape[1:] == want:  # a batch
                found += list(a)
            elif (a.ndim == len(want) and a.shape[-1] == want[-1] and a.shape[0] >= want[0]
                  and a.shape[1] >= want[1]):  # a large image: its non-overlapping tiles
                h, w = want[:2]
                found += [a[i:i + h, j:j + w] for i in range(0, a.shape[0] - h + 1, h)
                          for j in range(0, a.shape[1] - w + 1, w)]
        if len(found) >= count:
            return np.stack(found[:count])
    return None


def _data_feeds(cfg, spec, data, count, seed, what):
    """`count` inputs: images of `data` (the recipe's data, `what` names the split), fresh
    latents ~ N(0, I) and labels; returns (feeds, a description)."""
    from kzoo.card import sample_inputs

    feeds = sample_inputs(spec["inputs"], count, np.random.default_rng(seed), size=cfg.image_size)
    images = [e for e in spec["inputs"] if e["role"] == "image"]
    if not images:
        return feeds, f"latents ~ N(0, I), seed {seed}"
    for e in images:
        x = _images(data, feeds[e["name"]].shape[1:], count) if data is not None else None
        if x is None:
            return feeds, "seeded random images (the data has none of this size)"
        lo, hi = e["range"]
        if x.dtype == np.uint8 or x.min() < lo - 1e-3 or x.max() > hi + 1e-3:  # pixels
            x = lo + (hi - lo) * x.astype(np.float32) / 255.0
        feeds[e["name"]] = x.astype(e["dtype"])
    return feeds, f"{count} images of {cfg.data} ({what})"


def quality(reference, other, entry):
    """{"psnr_db", "const_psnr_db"} of `other` against `reference`, or {"agree"} for labels, or
    {"note"} saying why there is no score (a constant reference, e.g. the untrained DDPM eps
    network, whose output convolution is zero-initialised: every output is 0 and matches)."""
    ref, out = np.asarray(reference), np.asarray(other)
    if ref.dtype.kind in "iu":
        return {"agree": float(np.mean(ref == out))}
    if ref.size == 0 or float(ref.max()) == float(ref.min()):
        same = "equal to it" if np.array_equal(ref, out) else "differs"
        return {"note": f"n/a: the fp32 output is constant ({float(ref.flat[0]) if ref.size else 0:g}; "
                        f"this one {same}), so PSNR is undefined"}
    lo, hi = entry.get("range") or (float(ref.min()), float(ref.max()))
    peak = (hi - lo) or 1.0

    def psnr(x):
        mse = float(np.mean((x.astype(np.float64) - ref) ** 2))
        return float("inf") if mse == 0 else 10 * np.log10(peak ** 2 / mse)

    return {"psnr_db": psnr(out), "const_psnr_db": psnr(np.full_like(ref, ref.mean()))}


def measure(recipe_name, *, preset="quick", batches=(1, 16), repeats=12, warmup=3, peak=None):
    import tensorflow as tf

    from benchmarks.flops import forward_flops
    from kzoo.card import sample_inputs
    from kzoo.export import export, onnx_model
    from kzoo.export.spec import pack
    from kzoo.recipes.runner import resolve_config

    recipe = importlib.import_module(f"kzoo.recipes.{recipe_name}").RECIPE
    cfg, _, _, _ = resolve_config(recipe, ["--preset", preset])
    cfg = dataclasses.replace(cfg, jit_compile=False)
    data, heldout = recipe.load_data(cfg)
    model = recipe.build(cfg, data)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        exported = export(model, name=recipe_name, out=tmp, fp16=True)
        parts = model.inference_parts()
        for ex in exported:
            if ex.info["endpoint"] not in parts:  # the DDPM's sampler: benchmarks/sampler_endpoint.py
                continue
            part = parts[ex.info["endpoint"]]
            spec = ex.info
            onnx_path = ex.path / spec["files"]["onnx"]
            calib, _ = _data_feeds(cfg, spec, data, CALIBRATION, 1, "train split")
            calibration = [{k: v[i:i + 4] for k, v in calib.items()} for i in range(0, CALIBRATION, 4)]
            onnx_model.to_int8(onnx_path, ex.path / "model.int8.onnx", calibration)
            signature = tf.saved_model.load(str(ex.path)).signatures["serving_default"]
            compiled = tf.function(lambda x, part=part: part(x, training=False), jit_compile=False)
            sessions = {"onnx": _session(onnx_path), "onnx_untuned": _session(onnx_path, tuned=False),
                        "onnx_fp16": _session(ex.path / spec["files"]["onnx_fp16"]),
                        "onnx_int8": _session(ex.path / "model.int8.onnx")}
            if importlib.util.find_spec("openvino"):
                from kzoo.runtime import OpenVinoSession

                sessions["openvino"] = OpenVinoSession(onnx_path)
            test, about = _data_feeds(cfg, spec, heldout, 16, 100, "held-out split")
            if heldout is None or "random" in about:  # no held-out images: the training data's
                test, about = _data_feeds(cfg, spec, data, CALIBRATION + 16, 100, "train split")
                test = {k: v[CALIBRATION:] for k, v in test.items()}  # not the first (calibration) ones
                about = about.replace(f"{CALIBRATION + 16} images", "16 images")
            fp32 = sessions["onnx"].run(None, test)
            scores = {}
            for key in ("onnx_fp16", "onnx_int8"):
                score = quality(fp32[0], sessions[key].run(None, test)[0], spec["outputs"][0])
                if "note" in score:
                    scores["quality_note"] = score.pop("note")
                scores.update({f"{key[5:]}_{k}": v for k, v in score.items()})
            for batch in batches:
                feeds = sample_inputs(spec["inputs"], batch, np.random.default_rng(0), size=cfg.image_size)
                packed = pack(part, feeds)
                tf_packed = tf.nest.map_structure(tf.constant, packed)
                tf_feeds = {k: tf.constant(v) for k, v in feeds.items()}
                fns = {"keras_call": lambda: compiled(tf_packed),
                       "savedmodel": lambda: signature(**tf_feeds),
                       "keras_predict": lambda: part.predict(packed, verbose=0)}
                for key, sess in sessions.items():
                    fns[key] = lambda sess=sess: sess.run(None, feeds)
                timings = alternate({k: fns[k] for k in BACKENDS if k in fns}, repeats, warmup)
                fastest = min((k for k in SERVED if k in timings), key=timings.get)
                gflop = forward_flops(part, tf_packed) / 1e9
                row = {"recipe": recipe_name, "endpoint": ex.name, "batch": batch,
                       "image_size": cfg.image_size, "threads": sessions["onnx"].get_session_options().intra_op_num_threads,
                       **{f"{k}_ms": v for k, v in timings.items()},
                       "onnx_vs_keras_call": timings["keras_call"] / timings["onnx"],
                       "onnx_vs_savedmodel": timings["savedmodel"] / timings["onnx"],
                       "onnx_vs_predict": timings["keras_predict"] / timings["onnx"],
                       "fastest": {"onnx": "ort"}.get(fastest, fastest),
                       "fastest_vs_savedmodel": timings["savedmodel"] / timings[fastest],
                       "gflop": gflop, "onnx_gflops_per_s": gflop / timings["onnx"] * 1000,
                       "quality_inputs": about, **scores}
                if peak:
                    row["onnx_share_of_peak"] = row["onnx_gflops_per_s"] / peak
                if batch == max(batches):
                    row["onnx_profile"] = op_profile(onnx_path, feeds)
                rows.append(row)
    return rows


def run(recipes, *, preset="quick", repeats=12, peak=None):
    rows = []
    for name in recipes:
        try:
            rows += measure(name, preset=preset, repeats=repeats, peak=peak)
        except Exception as e:  # a benchmark row that fails is reported, not hidden
            rows.append({"recipe": name, "error": f"{type(e).__name__}: {e}"[:300]})
        for r in [r for r in rows if r["recipe"] == name]:
            print(f"  infer {r['recipe']}: " + (
                f"{r['endpoint']} batch {r['batch']}: onnx {r['onnx_ms']:.2f} ms, keras call "
                f"{r['keras_call_ms']:.2f} ms ({r['onnx_vs_keras_call']:.2f}x), savedmodel "
                f"{r['savedmodel_ms']:.2f} ms, {r['onnx_gflops_per_s']:.1f} GFLOP/s"
                if "error" not in r else r["error"]), flush=True)
    return rows
