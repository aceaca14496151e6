"""Inference on exported models with ONNX Runtime -- no TensorFlow needed.

`OnnxModel(path)` opens an exported version (`export/<name>/<version>/`, or
`export/<name>/` for its latest version, or a `model.onnx` beside its
`kzoo.json`), picks execution providers in the order TensorRT > CUDA > CPU
among those onnxruntime offers (or the caller's list), and does the model's pre-
and post-processing from `kzoo.json`: uint8 images <-> the value range of each
image input/output, latents ~ N(0, I), class labels.

Example:
>>> model = OnnxModel("export/dcgan")  # an exported model   # doctest: +SKIP
>>> model.provider                                  # doctest: +SKIP
'CPUExecutionProvider'
>>> images, feeds = model.generate(8, seed=0)       # doctest: +SKIP
>>> images["image"].shape                           # doctest: +SKIP
(8, 64, 64, 3)

Importing this module never imports TensorFlow (tested).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from kzoo.card import IMAGE_RANGE, ModelCard
from kzoo.errors import KzooError

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
TILE = 256  # super-resolution inputs larger than this (LR pixels) are run in tiles of this size
OVERLAP = 40  # context around each tile, >= SRResNet's receptive radius (39.5 LR px, 16 blocks)


def session_options(threads=None):
    """The ONNX Runtime session options kzoo runs exported models with.

    All graph optimizations (constant folding, Conv+Add/BN/activation fusion, the NCHWc
    layout of the CPU provider's convolutions), sequential execution with one inter-op
    thread (an image model is a chain: parallel branches gain nothing, and a second pool
    competes with the intra-op threads for the cores), intra-op threads = `threads`
    (default: the machine's cores), memory pattern planning and the CPU arena on (the
    same shapes repeat call after call). Measured against onnxruntime's defaults in
    benchmarks/RESULTS.md ("ONNX untuned").

    Args:
        threads: int or None. Intra-op threads; None: `os.cpu_count()`.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = int(threads or os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    opts.enable_mem_pattern = True
    opts.enable_cpu_mem_arena = True
    opts.log_severity_level = 3
    return opts


def choose_providers(available, requested=None):
    """Providers to ask onnxruntime for, best first.

    Without `requested`: TensorRT, CUDA, CPU -- those of them in `available`.
    With `requested` (names, e.g. `["CUDAExecutionProvider", "CPUExecutionProvider"]`
    or short `cuda`, `cpu`, `tensorrt`): those, in that order; a provider that is
    not available is an error naming what is.
    """
    available = list(available)
    if not requested:
        chosen = [p for p in PREFERRED_PROVIDERS if p in available]
        return chosen or available[:1]
    short = {p.replace("ExecutionProvider", "").lower(): p for p in available}
    chosen = []
    for r in requested:
        full = r if r in available else short.get(r.lower())
        if full is None:
            raise KzooError(f"execution provider {r!r} is not available in this onnxruntime; "
                            f"available: {', '.join(available)}")
        chosen.append(full)
    return chosen


def find_version(path):
    """The exported version directory `path` names (a version, a model dir, or a model.onnx)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".onnx":
        path = path.parent
    if (path / "kzoo.json").is_file():
        return path
    if path.is_dir():
        done = sorted((int(p.name) for p in path.iterdir()
                       if p.name.isdigit() and (p / "kzoo.json").is_file()), reverse=True)
        if done:
            return path / str(done[0])
        models = sorted(p.name for p in path.iterdir() if p.is_dir() and any(
            (q / "kzoo.json").is_file() for q in p.iterdir() if q.is_dir()))
        if models:
            raise KzooError(f"{path} is an export tree with several models; give one of: "
                            + ", ".join(str(path / m) for m in models))
    raise KzooError(f"{path} is not an exported model: expected export/<name>[/<version>] with "
                    "kzoo.json and model.onnx (run `kzoo export` first)")


class OnnxModel:
    """An exported kzoo model on ONNX Runtime (see module docstring).

    Args:
        path: an exported version dir, a model dir (latest version) or its model.onnx.
        providers: optional list of execution providers, best first.
        fp16: bool. Use `model.fp16.onnx` (exported with `--fp16`).

    Attributes:
        info: the `kzoo.json` content. provider: the execution provider in use.
        inputs / outputs: {name: kzoo.json entry}.
    """

    def __init__(self, path, providers=None, fp16=False):
        import onnxruntime as ort

        self.path = find_version(path)
        self.info = json.loads((self.path / "kzoo.json").read_text())
        key = "onnx_fp16" if fp16 else "onnx"
        filename = self.info.get("files", {}).get(key)
        if not filename or not (self.path / filename).is_file():
            raise KzooError(f"{self.path} has no {'fp16 ' if fp16 else ''}ONNX model "
                            f"(export it with --formats onnx{' --fp16' if fp16 else ''})")
        self.name = self.info.get("name", self.path.parent.name)
        self.endpoint = endpoint_of(self.info, self.name)
        self.inputs = {e["name"]: e for e in self.info["inputs"]}
        self.outputs = {e["name"]: e for e in self.info["outputs"]}
        chosen = choose_providers(ort.get_available_providers(), providers)
        opts = session_options()
        try:
            self.session = ort.InferenceSession(str(self.path / filename), opts, providers=chosen)
        except Exception as e:
            raise KzooError(f"onnxruntime cannot open {self.path / filename}: {_first_line(e)}") from None
        self.providers = self.session.get_providers()
        self.provider = self.providers[0]

    def __repr__(self):
        return f"OnnxModel({str(self.path)!r}, provider={self.provider!r})"

    # --- raw tensors -----------------------------------------------------------
    def expected(self, name):
        e = self.inputs[name]
        dims = ["batch"] + ["any" if d is None else str(d) for d in e["shape"][1:]]
        return f"{name}: {e['dtype']} of shape ({', '.join(dims)})"

    def check_feeds(self, feeds):
        """Validate and cast {name: array} against kzoo.json; raises KzooError."""
        missing = [n for n in self.inputs if n not in feeds]
        extra = [n for n in feeds if n not in self.inputs]
        if missing or extra:
            raise KzooError(f"{self.name} takes inputs {', '.join(self.inputs)}; "
                            + (f"missing {', '.join(missing)}" if missing else "")
                            + ("; " if missing and extra else "")
                            + (f"unexpected {', '.join(extra)}" if extra else ""))
        out, batch = {}, None
        for name, e in self.inputs.items():
            x = np.asarray(feeds[name])
            if x.ndim != len(e["shape"]) or any(
                    d is not None and d != s for d, s in zip(e["shape"][1:], x.shape[1:])):
                raise KzooError(f"{self.name}: input {name} has shape {x.shape}; expected "
                                + self.expected(name))
            if batch is not None and x.shape[0] != batch:
                raise KzooError(f"{self.name}: inputs have different batch sizes ({batch} and "
                                f"{x.shape[0]} for {name})")
            batch = x.shape[0]
            if e["role"] == "label" and e.get("num_classes") and x.size and (
                    x.min() < 0 or x.max() >= e["num_classes"]):
                raise KzooError(f"{self.name}: labels must be in 0..{e['num_classes'] - 1}, "
                                f"got {x.min()}..{x.max()}")
            out[name] = x.astype(e["dtype"], copy=False)
        if self.is_sampler:  # the graph's entry asserts, which ONNX has none of: before any step
            from kzoo.diffusion import from_info
            from kzoo.export.sampler import check_feeds

            try:
                check_feeds(out, *from_info(self.info["diffusion"]))
            except KzooError as err:
                raise KzooError(f"{self.name}: {err}") from None
        return out

    def run(self, **feeds):
        """Run the model on raw inputs; returns {output name: array}."""
        feeds = self.check_feeds(feeds)
        try:
            values = self.session.run(list(self.outputs), feeds)
        except Exception as e:
            shapes = ", ".join(f"{k} {v.shape}" for k, v in feeds.items())
            want = "; ".join(self.expected(n) for n in self.inputs)
            raise KzooError(f"{self.name} cannot run on {shapes} (expected {want}"
                            + self._size_hint() + f"): {_first_line(e)}") from None
        return dict(zip(self.outputs, values))

    def _size_hint(self):
        size = self.info.get("dynamic", {}).get("spatial_size")
        return f"; height and width a multiple of {size['multiple']}" if size and size["multiple"] > 1 else ""

    # --- pre/post-processing ---------------------------------------------------
    @property
    def image_inputs(self):
        return [e for e in self.inputs.values() if e["role"] == "image"]

    def preprocess(self, image, name=None, source="image", check_size=True):
        """uint8 HxWxC (or HxW) -> float HxWxC in the input's value range, checked
        (its size too, unless `check_size` is False)."""
        e = self.inputs[name] if name else self.image_inputs[0]
        img = np.asarray(image)
        if img.ndim == 2:
            img = img[..., None]
        channels = e["shape"][-1]
        if img.ndim != 3 or img.shape[-1] != channels:
            got = img.shape[-1] if img.ndim == 3 else f"shape {img.shape}"
            raise KzooError(f"{source} has {got} channels; {self.name} expects {channels} "
                            f"({'grayscale' if channels == 1 else 'RGB'}) images")
        try:
            if check_size:
                self.endpoint.check_size(img.shape[0], img.shape[1])
        except KzooError as err:
            raise KzooError(f"{source}: {err}") from None
        lo, hi = e["range"]
        return (lo + (hi - lo) * img.astype(np.float32) / 255.0).astype(e["dtype"])

    def postprocess(self, outputs):
        """Image outputs -> uint8 NHWC; labels -> uint8/int; the rest unchanged."""
        done = {}
        for name, value in outputs.items():
            e = self.outputs[name]
            if e["role"] == "image":
                lo, hi = e["range"]
                done[name] = np.clip(np.rint((value - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)
            else:
                done[name] = value
        return done

    def sample(self, batch, seed=0, label=None, fixed=None):
        """Inputs for `batch` items: given `fixed` ones, latents ~ N(0, I), labels."""
        rng = np.random.default_rng(seed)
        feeds = dict(fixed or {})
        for name, e in self.inputs.items():
            if name in feeds:
                continue
            shape = (batch, *[d or 1 for d in e["shape"][1:]])
            if e["role"] == "latent":
                feeds[name] = rng.standard_normal(shape).astype(e["dtype"])
            elif e["role"] == "label":
                n = e.get("num_classes") or 1
                if label is not None and not 0 <= int(label) < n:
                    raise KzooError(f"--label {label} is out of range: {self.name} has {n} "
                                    f"classes (0..{n - 1})")
                feeds[name] = (np.full(shape, int(label)) if label is not None
                               else np.arange(batch).reshape(shape) % n).astype(e["dtype"])
            elif e["role"] == "timestep":
                raise KzooError(f"{self.name} is a diffusion step model (input {name}); it is "
                                "sampled step by step, not run once by kzoo predict")
            else:
                raise KzooError(f"{self.name} needs input {name!r} ({e['role']}); give it explicitly")
        return feeds

    def generate(self, num, seed=0, label=None):
        """For models without image inputs: `num` outputs from seeded latents (post-processed)."""
        if self.image_inputs:
            raise KzooError(f"{self.name} transforms images: give input images, not --num")
        if num < 1:
            raise KzooError(f"--num must be >= 1, got {num}")
        feeds = self.sample(num, seed, label)
        return self.postprocess(self.run(**feeds)), feeds

    @property
    def is_sampler(self):
        """A diffusion sampler endpoint (kzoo/export/sampler.py): noise in, images out."""
        return "sampler" in self.info and "diffusion" in self.info

    def sampler_sample(self, num, seed=0, sampler="ddim", steps=50, eta=0.0, noise=None, raw=False):
        """`num` images from a sampler endpoint in one session call, drawing x_T and the
        step noise from `seed` exactly as `diffusion_sample` does (so the same images for
        the same seed), or taking them from `noise` ([x_T, z_1, ...])."""
        from kzoo.diffusion import check_sampler, from_info, noise_draws
        from kzoo.export.sampler import SAMPLER_IDS

        if num < 1:
            raise KzooError(f"--num must be >= 1, got {num}")
        schedule, options = from_info(self.info["diffusion"])
        if steps is None or not 1 <= int(steps) <= schedule.num_timesteps:
            raise KzooError(f"--steps must be between 1 and T = {schedule.num_timesteps}, got {steps}")
        check_sampler(sampler)
        shape = (num, *self.inputs["noise"]["shape"][1:])
        k = noise_draws(schedule, sampler, int(steps), eta, options)
        if noise is None:
            rng = np.random.default_rng(seed)  # kzoo.diffusion._noise_source's order
            noise = [rng.standard_normal(shape).astype(np.float32) for _ in range(k + 1)]
        noise = [np.asarray(n, np.float32) for n in noise]
        if len(noise) < k + 1:
            raise KzooError(f"the given noise ran out: {sampler} in {steps} steps draws x_T and {k} more")
        z = (np.stack(noise[1:k + 1], axis=1) if k else np.zeros((num, 0, *shape[1:]), np.float32))
        x = self.run(noise=noise[0], step_noise=z, steps=np.full(num, int(steps), np.int32),
                     eta=np.full(num, eta, np.float32), sampler=np.full(num, SAMPLER_IDS[sampler], np.int32))
        x = next(iter(x.values()))
        if raw:
            return x
        lo, hi = IMAGE_RANGE
        return np.clip(np.rint((x - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)

    @property
    def is_diffusion(self):
        return any(e["role"] == "timestep" for e in self.inputs.values())

    def diffusion_sample(self, num, seed=0, sampler="ddim", steps=50, eta=0.0, callback=None,
                         batch_size=64, noise=None, raw=False, use_clipped_model_output=None):
        """Draw `num` images from a diffusion eps-model with `kzoo.diffusion`'s sampler loop.

        The loop (DDPM ancestral or DDIM, `steps` of the T trained ones) runs in NumPy and
        calls this ONNX session once per step (in slices of `batch_size` images; None:
        all at once): no TensorFlow anywhere. The images do not depend on `batch_size`.
        The sampler options are kzoo.json's `diffusion.sampler_options` (the model's:
        diffusers' for a converted diffusers model, `kzoo.diffusion.KZOO` for kzoo's own).
        `noise` replaces the seeded draws (`kzoo.diffusion.sample`); `raw=True` returns
        the float32 x_0 instead of uint8 images; `use_clipped_model_output` (None: the
        model's option) overrides that DDIM option.
        """
        from kzoo.diffusion import from_info, sample

        if not self.is_diffusion:
            raise KzooError(f"{self.name} is not a diffusion eps-model (no timestep input)")
        if num < 1:
            raise KzooError(f"--num must be >= 1, got {num}")
        t_name = next(n for n, e in self.inputs.items() if e["role"] == "timestep")
        x_name = next(n for n in self.inputs if n != t_name)
        out_name = next(iter(self.outputs))
        schedule, sampler_options = from_info(self.info.get("diffusion", {}))  # the model's
        if use_clipped_model_output is not None:
            sampler_options = sampler_options.replace(use_clipped_model_output=bool(use_clipped_model_output))
        if steps is None or not 1 <= int(steps) <= schedule.num_timesteps:
            raise KzooError(f"--steps must be between 1 and T = {schedule.num_timesteps}, got {steps}")
        shape = (num, *self.inputs[x_name]["shape"][1:])
        if any(d is None for d in shape):
            raise KzooError(f"{self.name} has a dynamic image size; export it at a fixed size")
        t_shape = self.inputs[t_name]["shape"]
        t_dtype = self.inputs[t_name]["dtype"]

        def eps_fn(x, t):
            t = t.reshape((len(t), *[1] * (len(t_shape) - 1))).astype(t_dtype)
            return self.run(**{x_name: x, t_name: t})[out_name]

        x = sample(eps_fn, shape, schedule=schedule, sampler=sampler, steps=int(steps), eta=eta,
                   options=sampler_options, seed=seed, noise=noise, callback=callback,
                   batch_size=batch_size)
        if raw:
            return x
        lo, hi = IMAGE_RANGE  # x_0: an image of the data
        return np.clip(np.rint((x - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)

    def predict_image(self, image, seed=0, label=None, source="image", tile=None, overlap=OVERLAP):
        """For models with one image input: one uint8 image in, post-processed outputs out.

        A spatially dynamic model whose outputs are all images/maps takes any size: an
        image whose height/width is not a multiple of the model's `size_multiple` is padded
        (reflected) up to one and the outputs are cropped back. Super-resolution models run
        images larger than `tile` in tiles (see `run_tiled`).

        Args:
            image: uint8 HxWxC or HxW array.
            seed, label: for the model's other inputs (see `sample`).
            source: the image's name, for messages.
            tile: int or None. Tile size in input pixels; None: `TILE` for
                super-resolution models, no tiling otherwise; 0: never tile.
            overlap: int. Context each tile is run with on every side (then cropped away).
        """
        if len(self.image_inputs) != 1:
            raise KzooError(f"{self.name} takes {len(self.image_inputs)} images; "
                            "kzoo predict feeds models with exactly one image input")
        e = self.image_inputs[0]
        img = np.asarray(image)
        height, width = img.shape[:2]
        size = self.info.get("dynamic", {}).get("spatial_size")
        m = size["multiple"] if size else 1
        if size and (height % m or width % m) and self._maps_only():
            pad = ((0, -height % m), (0, -width % m)) + ((0, 0),) * (img.ndim - 2)
            mode = "reflect" if min(height, width) > m else "edge"
            img = np.pad(img, pad, mode=mode)
        x = self.preprocess(img, e["name"], source)
        if tile is None:
            tile = TILE if self.info.get("task") == "super-resolution" else 0
        if tile and max(x.shape[:2]) > tile:
            outputs = self.run_tiled(x, tile, overlap, seed=seed, label=label)
        else:
            outputs = self.run(**self.sample(1, seed, label, fixed={e["name"]: x[None]}))
        outputs = {k: _crop(v, x.shape[:2], (height, width)) for k, v in outputs.items()}
        return {k: v[0] for k, v in self.postprocess(outputs).items()}

    def _maps_only(self):
        """Every output is an image or a per-pixel map (batch, height, width, ...)."""
        return all(len(e["shape"]) >= 3 for e in self.outputs.values())

    def run_tiled(self, x, tile, overlap=OVERLAP, seed=0, label=None):
        """Run a fully convolutional model on one preprocessed HxWxC input `x` in tiles.

        Each `tile` x `tile` block is run with `overlap` input pixels of context on every
        side (less at the image border), and only the block's own part of the output is
        kept: no blending, no seams. Where `overlap` covers the network's receptive radius
        the result equals the untiled output up to float rounding. Sizes are rounded up to
        the model's size multiple; returns {output: array with batch 1}.
        """
        size = self.info.get("dynamic", {}).get("spatial_size")
        if not size or not self._maps_only():
            raise KzooError(f"{self.name} does not take images of any size: it cannot be tiled")
        m = size["multiple"]
        tile, overlap = -(-int(tile) // m) * m, -(-int(overlap) // m) * m
        name = self.image_inputs[0]["name"]
        height, width = x.shape[:2]
        out = {}
        for y0 in range(0, height, tile):
            for x0 in range(0, width, tile):
                y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
                ya, xa = max(y0 - overlap, 0), max(x0 - overlap, 0)
                yb, xb = min(y1 + overlap, height), min(x1 + overlap, width)
                feeds = self.sample(1, seed, label, fixed={name: x[None, ya:yb, xa:xb]})
                for k, v in self.run(**feeds).items():
                    sy, sx = v.shape[1] / (yb - ya), v.shape[2] / (xb - xa)
                    if sy != int(sy) or sx != int(sx):
                        raise KzooError(f"{self.name}: output {k} is not a whole multiple of the "
                                        "input size; it cannot be tiled")
                    sy, sx = int(sy), int(sx)
                    if k not in out:
                        out[k] = np.zeros((1, height * sy, width * sx, *v.shape[3:]), v.dtype)
                    out[k][:, y0 * sy:y1 * sy, x0 * sx:x1 * sx] = v[
                        :, (y0 - ya) * sy:(y1 - ya) * sy, (x0 - xa) * sx:(x1 - xa) * sx]
        return out


def _crop(value, padded, original):
    """The part of an output map that belongs to the unpadded input (same scale)."""
    (ph, pw), (h, w) = padded, original
    if (ph, pw) == (h, w):
        return value
    sy, sx = value.shape[1] / ph, value.shape[2] / pw
    return value[:, :round(h * sy), :round(w * sx)]


def endpoint_of(info, name=None):
    """The `kzoo.card.Endpoint` a `kzoo.json` describes (named `name`, for messages)."""
    import dataclasses

    card = ModelCard.from_dict({"task": info.get("task", ""), "endpoints": [info]})
    endpoint = card.endpoints[0]
    return dataclasses.replace(endpoint, name=name) if name else endpoint


def _first_line(e):
    text = str(e).strip()
    return text.splitlines()[-1][:500] if text else type(e).__name__


def load_image(path):
    """An image file as a uint8 HxWxC array (channels as stored: 1, 2, 3 or 4).

    Its size is checked before it is decoded (`kzoo.io.check_image_pixels`); a file
    that is missing, not an image, truncated or too large is one `KzooError` line.
    """
    import warnings

    from PIL import Image

    from kzoo.io import check_image_pixels

    try:
        with warnings.catch_warnings():  # PIL only warns between 89 and 179 Mpixel
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            check_image_pixels(path, *img.size)
            if img.mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            elif img.mode in ("CMYK", "YCbCr"):
                img = img.convert("RGB")
            elif img.mode not in ("L", "LA", "RGB", "RGBA"):  # 1-bit, 16/32-bit gray
                img = img.convert("L")
            return np.asarray(img)
    except FileNotFoundError:
        raise KzooError(f"input image {path} does not exist") from None
    except KzooError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise KzooError(f"image {path} is too large to decode: {_first_line(e)}") from None
    except Exception as e:  # PIL's decoders raise OSError, ValueError, SyntaxError, bomb errors...
        raise KzooError(f"cannot read image {path}: {_first_line(e)}") from None


def save_output(path, value, entry):
    """Write one post-processed output: PNG for images/labels, .npy for anything else."""
    from kzoo.io import save_png, write_bytes

    path = Path(path)
    if entry["role"] == "image":
        save_png(path.with_suffix(".png"), value)
        return path.with_suffix(".png")
    if entry["role"] == "labels" and np.asarray(value).ndim == 2 and np.max(value, initial=0) < 256:
        save_png(path.with_suffix(".png"), np.asarray(value).astype(np.uint8))
        return path.with_suffix(".png")
    import io

    buf = io.BytesIO()
    np.save(buf, np.asarray(value))
    write_bytes(path.with_suffix(".npy"), buf.getvalue())
    return path.with_suffix(".npy")


def cache_dir():
    return Path(os.environ.get("KZOO_HOME") or Path.home() / ".cache" / "kzoo") / "exports"


def resolve_model(source, endpoint=None):
    """An exported version for `source`: an export dir as is; a preset (or hub reference:
    catalog name, archive, URL), run dir or .keras file is exported (ONNX only) into the
    cache first -- that step needs TensorFlow."""
    from kzoo.hub.loader import hub_folder

    preset = hub_folder(source) if not Path(source).is_dir() else None
    path = Path(preset if preset is not None else source)
    if not path.exists():
        raise KzooError(f"{source} does not exist; give an exported model (export/<name>) or a "
                        "preset / run directory")
    try:
        return find_version(path)
    except KzooError:
        keras_file = path if path.suffix == ".keras" else next(
            (p for p in (path / "model.keras", path / "model" / "model.keras") if p.is_file()), None)
        if keras_file is None:
            raise
    import hashlib

    digest = hashlib.sha256(keras_file.read_bytes()).hexdigest()[:16]
    root = cache_dir() / digest
    models = sorted(p for p in root.glob("*/1") if (p / "kzoo.json").is_file()) if root.is_dir() else []
    if not models:
        from kzoo.export import export

        models = [r.path for r in export(path, out=root, formats=("onnx",), version=1, force=True)]
    if len(models) == 1:
        return models[0]
    infos = {m: json.loads((m / "kzoo.json").read_text()) for m in models}
    ends = {info["endpoint"]: m for m, info in infos.items()}
    networks = [m for m, info in infos.items() if "sampler" not in info]
    if endpoint is None and len(networks) == 1:  # a DDPM: its eps-network (predict uses its sampler)
        return networks[0]
    if endpoint not in ends:
        raise KzooError(f"{source} has several endpoints; choose one with --endpoint: "
                        + ", ".join(sorted(ends)))
    return ends[endpoint]


def predict(source, inputs=(), out="predictions", *, num=8, seed=0, label=None, providers=None,
            endpoint=None, fp16=False, sampler="ddim", steps=50, eta=0.0, use_clipped_model_output=None,
            tile=None, overlap=OVERLAP, log=None):
    """What `kzoo predict` does: run `source` on `inputs` (or generate `num`); returns paths.

    Diffusion eps-models are sampled with `sampler` ("ddim" or "ddpm") in `steps` steps,
    with the sampler options of their kzoo.json (`use_clipped_model_output` overrides one).
    Image models take `tile` and `overlap` (see `OnnxModel.predict_image`).
    """
    log = log or (lambda msg: None)
    model = OnnxModel(resolve_model(source, endpoint), providers=providers, fp16=fp16)
    log(f"{model.name} version {model.info.get('version')} on onnxruntime {model.provider}")
    out = Path(out)
    written = []
    if model.is_diffusion and model.info.get("sampler_endpoint") and use_clipped_model_output is None \
            and not fp16:  # its sampler endpoint, one session call (same images for the same seed)
        sampler_dir = model.path.parent.parent / model.info["sampler_endpoint"] / model.path.name
        if (sampler_dir / "kzoo.json").is_file():
            model = OnnxModel(sampler_dir, providers=providers)
            log(f"sampling with {model.name} (one request)")
    if model.is_diffusion or model.is_sampler:
        if inputs:
            raise KzooError(f"{model.name} samples from noise and takes no input images; use --num N")
        if model.is_sampler:
            images = model.sampler_sample(num, seed=seed, sampler=sampler, steps=steps, eta=eta)
        else:
            images = model.diffusion_sample(num, seed=seed, sampler=sampler, steps=steps, eta=eta,
                                            use_clipped_model_output=use_clipped_model_output)
        entry = {"role": "image"}
        for i, img in enumerate(images):
            written.append(save_output(out / f"sample_{i:03d}", img, entry))
        return written
    if model.image_inputs:
        if not inputs:
            raise KzooError(f"{model.name} transforms images: give one or more INPUT image files")
        for i, src in enumerate(inputs):
            result = model.predict_image(load_image(src), seed=seed + i, label=label, source=str(src),
                                         tile=tile, overlap=overlap)
            for name, value in result.items():
                stem = Path(src).stem if len(result) == 1 else f"{Path(src).stem}_{name}"
                written.append(save_output(out / stem, value, model.outputs[name]))
        return written
    if inputs:
        raise KzooError(f"{model.name} generates from latents and takes no input images; "
                        "use --num N --seed S" + (" --label L" if any(
                            e["role"] == "label" for e in model.inputs.values()) else ""))
    result, feeds = model.generate(num, seed=seed, label=label)
    labels = next((feeds[n] for n, e in model.inputs.items() if e["role"] == "label"), None)
    for name, values in result.items():
        for i, value in enumerate(values):
            tag = f"_label{int(labels[i])}" if labels is not None else ""
            written.append(save_output(out / f"{name}_{i:03d}{tag}", value, model.outputs[name]))
    return written
