"""Paper-size inference: the networks users load, on every runtime kzoo offers, beside PyTorch.

`python -m benchmarks --suites peak,paper [--write]` builds each workload with seeded
random weights through the converter a user's download goes through (no download), writes
it as a preset (`kzoo.hub.convert.write`), exports it with `kzoo.export.export`
(SavedModel + ONNX, parity-checked) and times, alternated call by call in one process
(`benchmarks.infer.alternate`, so load from other work on the machine slows them alike):

- `savedmodel`: the export's `serving_default` (`tf.saved_model.load`): the compiled
  TensorFlow graph;
- `ort`: ONNX Runtime with `kzoo.infer.session_options`;
- `openvino`: OpenVINO's CPU plugin on the same `model.onnx` (`kzoo.runtime.OpenVinoSession`);
- `torch`: the PyTorch network a user would otherwise run (`benchmarks/reference_torch.py`,
  the reference extra; left out, with a note, where torch or diffusers is missing).

Workloads (`MODELS`): junyanz `unet_256` (pix2pix, batch norm, 54.4 M parameters) and
`resnet_9blocks` (CycleGAN, instance norm, 11.4 M) at 256x256; google/ddpm-cifar10-32's
eps-network (35.7 M, 32x32, `kzoo.hub.convert.diffusers.ddpm_options` of its config);
Real-ESRGAN's RealESRGAN_x4plus `RRDBNet` (16.7 M) on a `sr_size` LR input (default 64: a
512x512 photo is 64 such tiles, each about 8.6 TFLOP/64; a whole 512x512 call takes
minutes a runtime on 2 cores). Batch 16 only where `BATCH16` says it fits the time here.

`variants` adds lower-precision copies of the same `model.onnx`, timed in the same alternation:
`ort_int8` and `openvino_int8` (static QDQ, `kzoo.export.onnx_model.to_int8`, calibrated on 4
inputs: crops of the `builtin:photos` training photographs for image inputs), `ort_fp16`
(`to_fp16`). Their quality is the PSNR of their output against the fp32 ONNX output on 4
held-out inputs (crops of the held-out photographs; the DDPM: fresh noise), beside a
constant output (the fp32 output's mean) as the trivial baseline -- of the seeded networks,
not of trained weights (none can be downloaded here), so it measures the arithmetic, not
the pictures.

Each row: median ms per runtime, GFLOP of one call (`benchmarks.flops.forward_flops` of
the inference graph), GFLOP/s and share of the run's matmul peak of the fastest kzoo
runtime, the ratios, and which runtime is fastest. The fastest runtime at batch 1 is recorded
beside the export (`kzoo.runtime.record_runtime`, runtime.json): what `kzoo predict` and
`kzoo serve` run it on by default (the exports are kept with `--paper-workdir`).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np

MODELS = ("unet_256", "resnet_9blocks", "ddpm_cifar10", "realesrgan_x4")
VARIANTS = ("ort_int8", "openvino_int8", "ort_fp16")
CALIBRATION = 4  # int8 calibration inputs; as many held-out inputs score the variants
BATCH16 = ("ddpm_cifar10",)  # the others take seconds to minutes a call at batch 16 on 2 cores
KZOO_RUNTIMES = ("savedmodel", "ort", "openvino")


def _he(shape, rng, fan_in):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / max(fan_in, 1))).astype("float32")


def seeded_state(params, seed=0):
    """{torch name: array} for `[(name, layer, weight, torch shape, ...)]`: He-scaled normal
    kernels (activations stay O(1) through the depth, no denormals), zero biases, batch norm
    scale 1 and running variance in [0.5, 1.5]."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, _layer, weight, shape, *_ in params:
        shape = tuple(shape)
        if weight == "kernel":
            state[name] = _he(shape, rng, int(np.prod(shape[1:])))
        elif weight == "gamma":
            state[name] = np.ones(shape, "float32")
        elif weight == "moving_variance":
            state[name] = rng.uniform(0.5, 1.5, shape).astype("float32")
        elif weight == "alpha":
            state[name] = np.full(shape, 0.25, "float32")
        else:
            state[name] = np.zeros(shape, "float32")
    return state


def build_preset(key, out: Path, sr_size=64, width=64):
    """Write `key`'s preset (seeded weights, the converter's exact network) to `out`; returns
    (source for `kzoo.export.export`, input size). `width`: the junyanz generators' base
    width (64 in the papers; smaller only in tests)."""
    from kzoo.hub.convert import Source, write

    if key.startswith(("unet_", "resnet_")):
        from kzoo.hub.convert import junyanz

        source = Source(Path(f"seeded-{key}.pth"), arch=key)
        source.state = seeded_state(junyanz.reference_params(key, width=width))  # fills the cached read
        full, inference, info, size = junyanz.models(source)
    elif key == "realesrgan_x4":
        from kzoo.hub.convert import sr

        state = seeded_state(sr.reference_params("RRDBNet", **sr.DEFAULTS["RRDBNet"]))
        full, inference, info, _ = sr.sr_models(state, "RRDBNet")
        size = sr_size
    elif key == "ddpm_cifar10":
        import keras

        from benchmarks.reference_torch import ddpm_cifar10_config
        from kzoo.hub.convert.diffusers import ddpm_options
        from kzoo.models.ddpm import DDPM

        keras.utils.set_random_seed(0)
        model = DDPM(**ddpm_options(ddpm_cifar10_config()))
        # kzoo zero-initialises the output convolution (every seeded output would be 0, and
        # the int8/fp16 copies could not be scored against it): He-scaled like the rest
        out = model.ema_network.get_layer("conv_out")  # the exported (EMA) network
        kernel, bias = out.get_weights()
        out.set_weights([_he(kernel.shape, np.random.default_rng(0), int(np.prod(kernel.shape[:3]))), bias])
        # the eps-network is what is timed: without a schedule, export writes no sampler
        # endpoint (whose export traces and parity-checks the whole sampling loop: minutes)
        model.schedule = None
        return model, 32
    else:
        raise KeyError(key)
    digest = hashlib.sha256(key.encode()).hexdigest()
    write(full, inference, info, size, out, name=key.replace("_", "-"), source=f"seeded:{key}",
          source_sha256=digest)
    return out, size


def _torch_runner(key, feeds):
    try:
        from benchmarks.reference_torch import runner

        return runner(key, feeds)[0], None
    except ImportError as e:
        return None, f"no PyTorch reference: {e} (pip install -e '.[reference]')"


SIZES = {"unet_256": 256, "resnet_9blocks": 256, "ddpm_cifar10": 32}


def _exported(key, work: Path, sr_size, log):
    """(the version dir of `key`'s export in `work` -- made there unless a complete one is
    there already: `--paper-workdir` keeps them between runs --, its kzoo.json, the keras
    inference part it was made from, the input size)."""
    from kzoo.export import export
    from kzoo.export.source import resolve
    from kzoo.infer import find_version, read_info

    if key == "ddpm_cifar10" or not (work / "preset").is_dir():  # DDPM: in memory, seeded again
        source, _ = build_preset(key, work / "preset", sr_size=sr_size)
    else:
        source = work / "preset"

    def endpoint_dirs():
        root = work / "export"
        return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.endswith(("_ba", "sampler"))
                      and any((v / "kzoo.json").is_file() for v in d.iterdir())) if root.is_dir() else []

    if not endpoint_dirs():
        log(f"  paper {key}: exporting")
        export(source, name=key, out=work / "export")
    version = find_version(endpoint_dirs()[0])
    info = read_info(version)
    part = resolve(source).parts[info["endpoint"]]
    return version, info, part, SIZES.get(key, sr_size)


def _photo_feeds(info, count, size, split, seed):
    """`count` inputs of the export: image inputs are `size`x`size` crops of the
    `builtin:photos` photographs of `split`, scaled to the input's range; others seeded."""
    from kzoo.card import sample_inputs
    from kzoo.data.photos import photos, random_crops

    rng = np.random.default_rng(seed)
    feeds = sample_inputs(info["inputs"], count, rng, size=size)
    for e in info["inputs"]:
        if e["role"] == "image" and feeds[e["name"]].shape[-1] == 3:
            lo, hi = e["range"]
            crops = random_crops(photos(split), size, count, rng, scale=(0.5, 1.0))
            feeds[e["name"]] = (lo + (hi - lo) * crops / 255.0).astype(e["dtype"])
    return feeds


def _one_by_one(feeds):
    """The batch `feeds` as a list of batch-1 feeds (int8 calibration and scoring run one
    input a call, as the batch-1 rows do)."""
    return [{k: v[i:i + 1] for k, v in feeds.items()} for i in range(len(next(iter(feeds.values()))))]


def variant_sessions(path, info, size, variants, log=print):
    """{variant: session} of `variants` (see `VARIANTS`) of the export at `path`, the files
    written beside its model.onnx (kept with `--paper-workdir`)."""
    from kzoo.export import onnx_model
    from kzoo.runtime import open_session

    onnx_path = path / info["files"]["onnx"]
    files = {"int8": path / "model.int8.onnx", "fp16": path / "model.fp16.onnx"}
    sessions = {}
    for variant in variants:
        runtime, precision = variant.rsplit("_", 1)
        dst = files[precision]
        if not dst.is_file():
            log(f"  paper {path.parent.name}: writing {dst.name}")
            if precision == "int8":
                calib = _photo_feeds(info, CALIBRATION, size, "train", 1)
                onnx_model.to_int8(onnx_path, dst, _one_by_one(calib))
            else:
                onnx_model.to_fp16(onnx_path, dst)
        sessions[variant] = open_session(dst, runtime, providers=["cpu"] if runtime == "ort" else None)
    return sessions


def variant_quality(fp32_session, sessions, info, size):
    """{f"{variant}_psnr_db"} of each variant's output against the fp32 ONNX output on
    CALIBRATION held-out inputs, and the constant output's `const_psnr_db` (see
    `benchmarks.infer.quality`), over the fp32 output's own value range: seeded networks do
    not keep to the range their card declares (seeded Real-ESRGAN's reach about +-390)."""
    from benchmarks.infer import quality

    test = _one_by_one(_photo_feeds(info, CALIBRATION, size, "test", 100))

    def outputs(sess):
        return np.concatenate([sess.run(None, feeds)[0] for feeds in test])

    ref = outputs(fp32_session)
    scores = {}
    for variant, sess in sessions.items():
        out = outputs(sess)
        score = quality(ref, out, {**info["outputs"][0], "range": None})  # the seeded output's own range
        if "note" in score:
            scores["variant_note"] = score["note"]
        if "psnr_db" in score:
            scores[f"{variant}_psnr_db"] = score["psnr_db"]
            scores["const_psnr_db"] = score["const_psnr_db"]
    return scores


def measure(key, *, batches=None, repeats=3, warmup=1, peak=None, sr_size=64, torch_ref=True, log=print,
            workdir=None, variants=()):
    import tensorflow as tf

    from benchmarks.flops import forward_flops
    from benchmarks.infer import alternate
    from kzoo.card import sample_inputs
    from kzoo.export.spec import pack
    from kzoo.infer import OnnxModel

    batches = batches or ((1, 16) if key in BATCH16 else (1,))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir) / key if workdir else Path(tmp)
        path, info, part, size = _exported(key, work, sr_size, log)
        signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        sessions = {r: OnnxModel(path, runtime=r).session for r in ("ort", "openvino")}
        extra = variant_sessions(path, info, size, variants, log=log) if variants else {}
        scores = variant_quality(sessions["ort"], extra, info, size) if extra else {}
        for batch in batches:
            feeds = sample_inputs(info["inputs"], batch, np.random.default_rng(0), size=size)
            tf_feeds = {k: tf.constant(v) for k, v in feeds.items()}
            fns = {"savedmodel": lambda tf_feeds=tf_feeds: signature(**tf_feeds),
                   **{r: (lambda s=s, feeds=feeds: s.run(None, feeds))
                      for r, s in {**sessions, **extra}.items()}}
            note = None
            if torch_ref:
                run, note = _torch_runner(key, feeds)
                if run is not None:
                    fns["torch"] = run
            outs = {r: np.asarray(fns[r]()[0] if r != "savedmodel" else next(iter(fns[r]().values())))
                    for r in ("savedmodel", "ort", "openvino")}
            agree = {f"{r}_max_abs_diff_vs_ort": float(np.abs(outs[r] - outs["ort"]).max())
                     for r in ("savedmodel", "openvino")}
            log(f"  paper {key} batch {batch}: timing {', '.join(fns)}")
            ms = alternate(fns, repeats, warmup)
            gflop = forward_flops(part, tf.nest.map_structure(tf.constant, pack(part, feeds))) / 1e9
            best = min(KZOO_RUNTIMES, key=ms.get)
            row = {"model": key, "endpoint": path.parent.name, "image_size": size, "batch": batch,
                   "params_m": part.count_params() / 1e6, "repeats": repeats, "warmup": warmup,
                   **{f"{r}_ms": v for r, v in ms.items()}, "gflop": gflop, "fastest": best,
                   "onnx_fastest": min(("ort", "openvino"), key=ms.get),
                   "fastest_gflops_per_s": gflop / ms[best] * 1000,
                   "ort_vs_savedmodel": ms["savedmodel"] / ms["ort"],
                   "openvino_vs_savedmodel": ms["savedmodel"] / ms["openvino"],
                   "openvino_vs_ort": ms["ort"] / ms["openvino"], **agree,
                   **{f"{v}_vs_fp32": ms[v.rsplit("_", 1)[0]] / ms[v] for v in extra}, **scores}
            if "torch" in ms:
                row.update(torch_ms=ms["torch"], fastest_vs_torch=ms["torch"] / ms[best],
                           ort_vs_torch=ms["torch"] / ms["ort"])
                int8 = [ms[v] for v in extra if v.endswith("_int8")]
                if int8:
                    row["best_int8_vs_torch"] = ms["torch"] / min(int8)
            if note:
                row["note"] = note
            if peak:
                row["fastest_share_of_peak"] = row["fastest_gflops_per_s"] / peak
                if "torch_ms" in row:
                    row["torch_share_of_peak"] = gflop / row["torch_ms"] * 1000 / peak
            if batch == 1:  # what kzoo predict / serve run this export on by default from now on
                from kzoo.runtime import record_runtime

                record_runtime(path, best, {r: ms[r] for r in KZOO_RUNTIMES},
                               batch=1, repeats=repeats, how="benchmarks/paper.py")
            rows.append(row)
            log(f"  paper {key} batch {batch}: " + ", ".join(f"{r} {v:.1f} ms" for r, v in ms.items())
                + f"; {gflop:.1f} GFLOP; fastest {best}", )
    return rows


def run(models=MODELS, *, peak=None, repeats=3, sr_size=64, log=print, workdir=None, variants=(),
        batches=None):
    rows = []
    for key in models:
        try:
            rows += measure(key, peak=peak, repeats=repeats, sr_size=sr_size, log=log, workdir=workdir,
                            variants=variants, batches=batches)
        except Exception as e:  # noqa: BLE001 (a row that fails is reported, not hidden)
            rows.append({"model": key, "error": f"{type(e).__name__}: {e}"[:300]})
            log(f"  paper {key}: {rows[-1]['error']}")
    return rows
