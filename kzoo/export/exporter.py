"""`kzoo.export.export`: one source -> parity-checked versions in the export tree.

Each endpoint of `inference_parts()` becomes one served model: `export/<name>/`
when the model has a single endpoint, `export/<name>_<endpoint>/` for each when it
has several (CycleGAN's `generator_ab`/`generator_ba`, a VAE's `encoder`/`decoder`).
One model per endpoint, not several signatures in one SavedModel, because Triton
serves one ONNX graph per model (a graph has one set of required inputs), and
because TF Serving clients then all use `serving_default` with one input set;
each endpoint is versioned, batched and scaled on its own, and its `kzoo.json`
describes exactly one set of inputs and outputs. The endpoints of one export
share the version number.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import shutil
from pathlib import Path

import numpy as np

from kzoo.errors import KzooError
from kzoo.export import layout, parity, serving_config
from kzoo.export.onnx_model import DEFAULT_OPSET
from kzoo.card import sample_inputs
from kzoo.export.spec import call, describe

FORMATS = ("savedmodel", "onnx")
TOLERANCE = 1e-4
FP16_WARN = 1e-2
PARITY_SEED = 0
PROCESSING = {
    "image inputs": "uint8 u in [0, 255] -> lo + (hi - lo) * u / 255 for the input's range [lo, hi]",
    "image outputs": "y in [lo, hi] -> uint8 round(clip((y - lo) / (hi - lo), 0, 1) * 255)",
    "latent inputs": "z ~ N(0, I), drawn by the client (no randomness in the graph)",
    "label inputs": "int class index in [0, num_classes)",
    "layout": "NHWC; batch (and height/width where dynamic.spatial) may be any size",
}

from kzoo.export.parity import ParityError, onnx_runner  # noqa: E402,F401  (also exporter's API)
from kzoo.export.parity import versions as _versions  # noqa: E402


@dataclasses.dataclass
class Exported:
    """One published version: `path` (export/<name>/<version>) and its `kzoo.json`."""

    name: str
    version: int
    path: Path
    info: dict


def export(source, *, name=None, version=None, out="export", formats=FORMATS, opset=DEFAULT_OPSET,
           fp16=False, force=False, image_signature=False, tolerance=TOLERANCE,
           serving_root=serving_config.SERVING_ROOT, max_batch_size=serving_config.MAX_BATCH_SIZE,
           mode=None, log=None):
    """Export every endpoint of `source` into `out/<name>/<version>/`.

    Args:
        source: a run directory, a preset directory, a `.keras` file, a hub reference or a
            `keras.Model` -- a model that declares its `card()` (see `kzoo.card`).
        name: str. Served model name (default: a preset's name, a run's recipe, a
            file's stem, else the class name).
        version: int. Version to write (default: the next free one). An existing
            version is replaced only with `force`.
        out: str. Root of the export tree (a TF Serving / Triton model repository).
        formats: `savedmodel` and/or `onnx`.
        opset: int. ONNX opset.
        fp16: bool. Also write `model.fp16.onnx` (fp32 I/O) with its own parity figure.
        force: bool. Replace an existing version.
        image_signature: bool. Add a `serving_images` signature (encoded images in/out).
        tolerance: float. Largest fp32 error allowed, relative to the output range.
        mode: str or None. Test-time mode of junyanz networks: "eval" or "authors"
            (`kzoo.export.source`; None: the source's recorded mode, else "eval").
        log: optional `fn(str)` for progress lines.

    Returns:
        A list of `Exported`, one per endpoint.
    """
    log = log or (lambda msg: None)
    formats = _check_formats(formats)
    if fp16 and "onnx" not in formats:
        raise KzooError("--fp16 converts the ONNX model: include onnx in --formats")
    from kzoo.export.dynamic import spatially_dynamic
    from kzoo.export.source import in_mode, resolve

    src = in_mode(resolve(source), mode)
    name = layout.check_name(name or src.name)
    root = Path(out)
    served = {ep: name if len(src.parts) == 1 else f"{name}_{ep}" for ep in src.parts}
    schedule = diffusion_schedule(src.model)
    sampler_of = _sampler_endpoint(src, schedule)  # the eps endpoint a sampler endpoint wraps
    if sampler_of is not None:
        from kzoo.export import sampler as sampler_export

        served[sampler_export.ENDPOINT] = f"{served[sampler_of]}_{sampler_export.ENDPOINT}"
    for n in served.values():
        layout.check_name(n)
    model_dirs = {ep: root / served[ep] for ep in served}
    if version is None:
        version = layout.next_version(model_dirs.values())
    else:
        layout.check_version(model_dirs.values(), int(version), force)
    version = int(version)

    from kzoo.io import check_free_space, check_writable_dir, variables_nbytes

    check_writable_dir(root)  # each format holds the weights once (fp16 half of them)
    check_free_space(root, int(variables_nbytes(*src.parts.values()) * (len(formats) + 0.5 * fp16)))
    layout.remove_incomplete_groups(model_dirs.values())
    created = [d for d in (root, *model_dirs.values()) if not d.exists()]  # removed again on failure
    group = ({"id": layout.new_group_id(), "members": sorted(served.values())}
             if len(served) > 1 else None)
    staged, results = {}, []
    try:
        for ep, part in src.parts.items():
            log(f"exporting {type(src.model).__name__}.{ep} as {served[ep]} version {version}")
            staged[ep] = layout.staging_dir(model_dirs[ep], version)
            spatial = src.card.endpoint(ep).spatial
            network = spatially_dynamic(part) if spatial else part  # any height/width
            spec = describe(ep, network, src.card)
            if spatial:
                same_as_built(part, network, spec, tolerance)
            part = network
            traceable(part, spec)
            info = build_version(part, spec, staged[ep],
                                 formats=formats, opset=opset, fp16=fp16, tolerance=tolerance,
                                 image_signature=image_signature, metadata=src.metadata, log=log)
            from kzoo.layers.test_mode import ABOUT

            info.update(name=served[ep], version=version, source=src.description,
                        model_class=type(src.model).__name__, task=src.card.task,
                        test_mode={"mode": src.mode, "about": ABOUT[src.mode]})
            if schedule is not None:
                info["diffusion"] = schedule
            if ep == sampler_of:
                info["sampler_endpoint"] = served[sampler_export.ENDPOINT]
            if group is not None:  # loaded only once every endpoint holds this version
                info["group"] = group
            from kzoo.io import write_json

            write_json(staged[ep] / "kzoo.json", info)
            results.append(Exported(served[ep], version, model_dirs[ep] / str(version), info))
            if ep == sampler_of:  # noise -> images in one request (export/sampler.py)
                sep = sampler_export.ENDPOINT
                log(f"exporting the sampler of {served[ep]} as {served[sep]} version {version}")
                staged[sep] = layout.staging_dir(model_dirs[sep], version)
                sinfo = sampler_export.build_version(part, spec, schedule, staged[sep], formats=formats,
                                                     opset=opset, tolerance=tolerance, log=log,
                                                     eps_onnx=staged[ep] / "model.onnx")
                sinfo.update(name=served[sep], version=version, source=src.description,
                             model_class=type(src.model).__name__, task="diffusion-sampling",
                             diffusion=schedule, metadata=_public_metadata(src.metadata))
                if group is not None:
                    sinfo["group"] = group
                write_json(staged[sep] / "kzoo.json", sinfo)
                results.append(Exported(served[sep], version, model_dirs[sep] / str(version), sinfo))
        for ep in staged:
            layout.publish(staged[ep], model_dirs[ep] / str(version), force=force)
    except Exception as e:  # a full or read-only disk (TensorFlow's errors included): one line
        from kzoo.io import as_output_error, output_error

        disk = as_output_error(e)
        if disk is None:
            raise
        raise output_error(getattr(e, "filename", None) or root, disk) from None
    finally:
        for st in staged.values():
            shutil.rmtree(st, ignore_errors=True)
        for d in reversed(created):  # only while empty: nothing was published there
            with contextlib.suppress(OSError):
                d.rmdir()
    for r in results:
        if "onnx" in formats:
            serving_config.write_triton_config(r.path.parent, r.name, r.info, max_batch_size)
    if "savedmodel" in formats:
        serving_config.write_models_config(root, serving_root)
    return results


def _sampler_endpoint(src, schedule):
    """The endpoint of a diffusion model that gets a sampler endpoint beside it: the one
    ε-network (a `timestep` input, a fixed image size), else None."""
    if schedule is None:
        return None
    eps = [e for e in src.card.endpoints if any(t.role == "timestep" for t in e.inputs)]
    if len(eps) != 1 or eps[0].spatial:
        return None
    return eps[0].name


def diffusion_schedule(model):
    """The noise schedule a diffusion model declares (its `schedule`, a
    `kzoo.diffusion.NoiseSchedule`) as kzoo.json's `diffusion` entry: what the
    TensorFlow-free sampler of `kzoo.infer` needs besides the eps-network; else None."""
    from kzoo.diffusion import NoiseSchedule

    schedule = getattr(model, "schedule", None)
    if not isinstance(schedule, NoiseSchedule):
        return None
    info = schedule.config()
    for key in ("variance", "clip_sample"):  # sampler options the model declares
        if hasattr(model, key):
            info[key] = getattr(model, key)
    options = getattr(model, "sampler_options", None)
    if options is not None:  # all of them (kzoo.diffusion.SamplerOptions): what kzoo.infer runs
        info["sampler_options"] = options.config()
    return info


def _check_formats(formats):
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise KzooError(f"unknown export format(s) {', '.join(unknown) or '(none)'}; "
                        f"choose from {', '.join(FORMATS)}")
    return tuple(f for f in FORMATS if f in formats)


def same_as_built(built, dynamic, spec, tolerance=TOLERANCE):
    """Raise a `KzooError` unless the spatially dynamic rebuild of a network gives the
    network's own outputs at the card's base size (the rebuild swaps layers, see
    `kzoo.export.dynamic`); parity is then measured against the rebuild at every size.
    A network that drops out at test time is compared by distribution (`draw_case`)."""
    from kzoo.layers.test_mode import dropout_rate

    if dropout_rate(built) > 0:
        feeds, compare = draw_case(spec)["feeds"][0], parity.compare_draws
    else:
        feeds = sample_inputs(spec["inputs"], 2, np.random.default_rng(PARITY_SEED),
                              size=spec["dynamic"]["spatial_size"]["base"])
        compare = parity.compare
    bad = parity.failures(compare(_keras_outputs(built, feeds, spec),
                                  _keras_outputs(dynamic, feeds, spec), spec), tolerance)
    if bad:
        raise KzooError(f"endpoint {spec['endpoint']!r}: its network rebuilt with dynamic "
                        f"height/width differs from the network: {'; '.join(bad)}")


def traceable(part, spec):
    """Raise a `KzooError` if `part` cannot be traced with `spec`'s input signature (for a
    spatially dynamic endpoint: with unknown height/width)."""
    import tensorflow as tf

    from kzoo.export.saved_model import serving_fn, tensor_specs

    try:
        tf.function(serving_fn(part, spec), input_signature=tensor_specs(spec)).get_concrete_function()
    except Exception as e:
        reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        size = spec["dynamic"].get("spatial_size")
        what = (f"with unknown height/width (its card declares multiples of {size['multiple']})"
                if size else "with its card's input signature")
        raise KzooError(f"endpoint {spec['endpoint']!r} cannot be traced {what}: {reason}") from None


def build_version(part, spec, out_dir, *, formats=FORMATS, opset=DEFAULT_OPSET, fp16=False,
                  tolerance=TOLERANCE, image_signature=False, metadata=None, log=None):
    """Write the artifacts of one endpoint into `out_dir` and measure their parity.

    Raises `ParityError` when an fp32 artifact is off by more than `tolerance`.
    Returns the `kzoo.json` content (without name/version).
    """
    log = log or (lambda msg: None)
    out_dir = Path(out_dir)
    info = {"format_version": 1, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            **spec, "files": {}, "parity": {}, "tolerance": tolerance,
            "versions": _versions(), "metadata": _public_metadata(metadata),
            "processing": PROCESSING}
    from kzoo.layers.test_mode import dropout_rate

    stochastic = dropout_rate(part) > 0  # a new dropout mask at every call: compare distributions
    cases = {"draws": draw_case(spec)} if stochastic else parity_inputs(part, spec, metadata)
    info["parity_inputs"] = {k: v["about"] for k, v in cases.items()}
    reference = {k: [_keras_outputs(part, f, spec) for f in v["feeds"]] for k, v in cases.items()}
    runners = {}
    if "savedmodel" in formats:
        from kzoo.export.saved_model import load_signature, write_saved_model

        info["signatures"] = write_saved_model(part, spec, out_dir, image_signature=image_signature)
        info["files"]["savedmodel"] = "saved_model.pb"
        runners["savedmodel"] = load_signature(out_dir)
    if "onnx" in formats:
        from kzoo.export import onnx_model

        info["opset"] = onnx_model.convert(part, spec, out_dir / "model.onnx", opset=opset)
        info["files"]["onnx"] = "model.onnx"
        runners["onnx"] = onnx_runner(out_dir / "model.onnx")
        if fp16:
            info["fp16_fp32_ops"] = onnx_model.to_fp16(out_dir / "model.onnx", out_dir / "model.fp16.onnx")
            info["files"]["onnx_fp16"] = "model.fp16.onnx"
            runners["onnx_fp16"] = onnx_runner(out_dir / "model.fp16.onnx")
    problems = []
    for fmt, run in runners.items():
        info["parity"][fmt] = {}
        for case, c in cases.items():
            compare = parity.compare_draws if case == "draws" else parity.compare
            figures = parity.merge(*(compare(ref, run(**f), spec)
                                     for f, ref in zip(c["feeds"], reference[case])))
            info["parity"][fmt][case] = figures
            limit = FP16_WARN if fmt == "onnx_fp16" else tolerance
            bad = parity.failures(figures, limit)
            if bad and fmt != "onnx_fp16":
                problems += [f"{fmt} ({case} inputs) {b}" for b in bad]
            elif bad:
                log(f"warning: fp16 ONNX is coarse: {'; '.join(bad)}")
        figures = [f for c in info["parity"][fmt].values() for f in c.values()]
        if stochastic:
            log(f"  {fmt}: over {DRAWS} dropout draws, mean z^2 "
                f"{max(f.get('mean_z2', 0.0) for f in figures):.2g}, spread ratio "
                + ", ".join(f"{f.get('spread_ratio', 0.0):.3g}" for f in figures))
        else:
            worst = max((f.get("max_rel", 0.0) for f in figures), default=0.0)
            log(f"  {fmt}: max error {worst:.2g} of the output range")
    if problems:
        raise ParityError("export failed the parity check, nothing was written: " + "; ".join(problems))
    return info


DRAWS = 64


def draw_case(spec, draws=DRAWS):
    """The parity inputs of a network that drops out at test time: one seeded input
    repeated `draws` times (authors-mode batch norm normalizes each image on its own, so
    the rows are independent draws of the same input)."""
    one = sample_inputs(spec["inputs"], 1, np.random.default_rng(PARITY_SEED),
                        size=(spec["dynamic"].get("spatial_size") or {}).get("base"))
    feeds = {k: np.repeat(v, draws, axis=0) for k, v in one.items()}
    return {"feeds": [feeds], "about": f"one seeded input repeated {draws} times: dropout is "
                                       "random, so the distributions of the outputs are compared "
                                       "(kzoo.export.parity.compare_draws)"}


def _keras_outputs(part, feeds, spec):
    import keras

    try:
        return {n: keras.ops.convert_to_numpy(v) for n, v in call(part, feeds).items()}
    except Exception as e:  # e.g. a card that declares sizes the network cannot take
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in feeds.items())
        reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise KzooError(f"endpoint {spec['endpoint']!r} does not run in Keras on {shapes}, which "
                        f"its card accepts: {reason}") from None


def parity_inputs(part, spec, metadata):
    """The input sets parity is measured on: {"random": ..., "data": ...}.

    `random`: seeded inputs over each input's declared range, at batch 1 and 3
    (and at a second size for spatially dynamic endpoints). `data`: images from
    the model's dataset when the endpoint takes images (skipped, with the reason,
    when the data cannot be read); latents ~ N(0, I) and every class label when
    it does not -- the inputs the model is used with.
    """
    rng = np.random.default_rng(PARITY_SEED)
    sizes = [None]
    dyn = spec["dynamic"].get("spatial_size")
    if dyn:
        sizes = [dyn["base"], dyn["base"] + dyn["multiple"]]
    random_feeds = [sample_inputs(spec["inputs"], b, rng, size=s) for s in sizes for b in (1, 3)]
    about = "seeded random inputs at batch 1 and 3" + (f", sizes {sizes}" if dyn else "")
    cases = {"random": {"feeds": random_feeds, "about": about}}
    image_inputs = [e for e in spec["inputs"] if e["role"] == "image"]
    if not image_inputs:
        labels = next((e for e in spec["inputs"] if e["role"] == "label"), None)
        n = (labels.get("num_classes") or 4) if labels else 4
        feeds = sample_inputs(spec["inputs"], n, np.random.default_rng(PARITY_SEED + 1))
        if labels:
            feeds[labels["name"]] = np.arange(n).astype(labels["dtype"])
        cases["data"] = {"feeds": [feeds], "about": "latents ~ N(0, I)" + (
            f", every class label 0..{n - 1}" if labels else "")}
        return cases
    try:
        feeds = _data_feeds(spec, image_inputs, metadata, sizes[0])
        cases["data"] = {"feeds": [feeds], "about": f"{len(next(iter(feeds.values())))} images "
                                                    f"of {metadata['data']}"}
    except Exception as e:  # data is optional for parity: say why it was not used
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        cases["data"] = {"feeds": [], "about": f"skipped: {reason}"}
    return cases


def _data_feeds(spec, image_inputs, metadata, size, count=4):
    if not (metadata or {}).get("data"):
        raise KzooError("the source names no dataset")
    from kzoo.data import load

    first = image_inputs[0]
    h = first["shape"][1] or size
    data = None
    for split in ("test", "train"):
        try:
            data = load(metadata["data"], image_size=h, channels=first["shape"][-1], labels=False,
                        split=split)
            break
        except KzooError:
            continue
    if data is None:
        raise KzooError(f"cannot load {metadata['data']}")
    examples = list(data.dataset.take(count).as_numpy_iterator())
    feeds = sample_inputs(spec["inputs"], len(examples), np.random.default_rng(PARITY_SEED + 2),
                          size=size)
    for e in image_inputs:
        want = tuple(feeds[e["name"]].shape[1:])
        arrays = [next(a for a in (ex if isinstance(ex, tuple) else (ex,)) if a.shape == want)
                  for ex in examples]
        feeds[e["name"]] = np.stack(arrays).astype(e["dtype"])
    return feeds


def _public_metadata(metadata):
    """What of the run's metadata travels with the export (no local paths)."""
    keep = ("recipe", "data", "image_size", "channels", "num_classes", "metrics", "model_class")
    return {k: v for k, v in (metadata or {}).items() if k in keep}


def read_info(version_dir):
    """The `kzoo.json` of an exported version."""
    path = Path(version_dir) / "kzoo.json"
    if not path.is_file():
        raise KzooError(f"{version_dir} is not an exported version (no kzoo.json)")
    return json.loads(path.read_text())
