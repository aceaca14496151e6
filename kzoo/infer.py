"""Inference on exported models with ONNX Runtime -- no TensorFlow needed.

`OnnxModel(path)` opens an exported version (`export/<name>/<version>/`, or
`export/<name>/` for its latest version, or a `model.onnx` beside its
`kzoo.json`), picks execution providers in the order TensorRT > CUDA > CPU
among those onnxruntime offers (or the caller's list), and does the model's pre-
and post-processing from `kzoo.json`: uint8 images <-> the value range of each
image input/output, latents ~ N(0, I), class labels.

Example (an exported model; `kzoo export` writes one)::

    model = OnnxModel("export/dcgan")
    model.provider                     # 'CPUExecutionProvider'
    images, feeds = model.generate(8, seed=0)
    images["image"].shape              # (8, 64, 64, 3)

Importing this module never imports TensorFlow (tested).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from kzoo.card import IMAGE_RANGE, ModelCard
from kzoo.errors import KzooError
from kzoo.runtime import PREFERRED_PROVIDERS, choose_providers, session_options  # noqa: F401 (kzoo.infer's API)

GENERATE_BATCH = 64  # rows kzoo predict runs together (generators)
TILE = 256  # super-resolution inputs larger than this (LR pixels) are run in tiles of this size
OVERLAP = 40  # context around each tile, >= SRResNet's receptive radius (39.5 LR px, 16 blocks)


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
        arena: bool. onnxruntime's CPU arena (see `session_options`).
        runtime: "ort" (onnxruntime), "openvino" (OpenVINO reading the same ONNX file,
            `kzoo.runtime.OpenVinoSession`), or None: the runtime recorded beside the export
            (`kzoo.runtime.default_runtime`), else "ort".

    Attributes:
        info: the `kzoo.json` content. provider: the execution provider in use.
        inputs / outputs: {name: kzoo.json entry}. runtime: "ort" or "openvino".
    """

    def __init__(self, path, providers=None, fp16=False, arena=True, runtime=None):
        from kzoo.runtime import check_runtime, default_runtime, open_session

        self.path = find_version(path)
        runtime = check_runtime(runtime) if runtime else default_runtime(self.path, onnx=True)
        if runtime == "savedmodel":
            raise KzooError(f"{self.path}: OnnxModel runs ONNX files (ort or openvino); the SavedModel "
                            "runs through kzoo.infer.SavedModelRunner")
        if runtime == "openvino" and providers:
            raise KzooError("--providers chooses onnxruntime's execution providers; the openvino runtime "
                            "runs on OpenVINO's CPU plugin")
        self.runtime = runtime
        self.info = read_info(self.path)
        key = "onnx_fp16" if fp16 else "onnx"
        filename = self.info.get("files", {}).get(key)
        if not filename or not (self.path / filename).is_file():
            raise KzooError(f"{self.path} has no {'fp16 ' if fp16 else ''}ONNX model "
                            f"(export it with --formats onnx{' --fp16' if fp16 else ''})")
        self.name = self.info.get("name", self.path.parent.name)
        self.endpoint = endpoint_of(self.info, self.name)
        self.inputs = {e["name"]: e for e in self.info["inputs"]}
        self.outputs = {e["name"]: e for e in self.info["outputs"]}
        self.onnx_path = self.path / filename
        try:
            self.session = open_session(self.onnx_path, runtime, providers=providers, arena=arena)
        except KzooError:
            raise
        except Exception as e:
            raise KzooError(f"onnxruntime cannot open {self.path / filename}: {_first_line(e)}") from None
        takes = {i.name for i in self.session.get_inputs()}
        if takes != set(self.inputs):
            raise KzooError(f"{self.path}: kzoo.json lists inputs {', '.join(sorted(self.inputs))} but "
                            f"{filename} takes {', '.join(sorted(takes))}")
        self.providers = self.session.get_providers()
        self.provider = self.providers[0]
        self._profile = None

    @property
    def profile(self):
        """The model's `kzoo.memory.ActivationProfile` (measured at the first use, once)."""
        if self._profile is None:
            from kzoo.memory import activation_profile

            self._profile = activation_profile(self.onnx_path, self.info)
        return self._profile

    def __repr__(self):
        return f"OnnxModel({str(self.path)!r}, runtime={self.runtime!r}, provider={self.provider!r})"

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

    def run_rows(self, feeds, chunk_rows, should_stop=None):
        """Run checked `feeds` `chunk_rows` rows at a time (the model's batch size), into
        preallocated outputs; `should_stop()` is asked before each chunk (raises `Stopped`)."""
        rows = len(next(iter(feeds.values())))
        if rows <= chunk_rows:
            if should_stop is not None and should_stop():
                raise Stopped(f"{self.name}: stopped before running (the caller went away)")
            return self.run(**feeds)
        out = {}
        for i in range(0, rows, chunk_rows):
            if should_stop is not None and should_stop():
                raise Stopped(f"{self.name}: stopped after {i} of {rows} rows (the caller went away)")
            for k, v in self.run(**{k: v[i:i + chunk_rows] for k, v in feeds.items()}).items():
                if k not in out:
                    out[k] = np.empty((rows, *v.shape[1:]), v.dtype)
                out[k][i:i + len(v)] = v
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

    def sample(self, batch, seed=0, label=None, fixed=None, *, rng=None, start=0):
        """Inputs for `batch` items: given `fixed` ones, latents ~ N(0, I), labels.

        `rng` (default: a new generator seeded with `seed`) and `start` (the first item's
        index: labels cycle through the classes) let `generate_batches` continue where
        the previous batch ended."""
        rng = np.random.default_rng(seed) if rng is None else rng
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
                               else np.arange(start, start + batch).reshape(shape) % n).astype(e["dtype"])
            elif e["role"] == "timestep":
                raise KzooError(f"{self.name} is a diffusion step model (input {name}); it is "
                                "sampled step by step, not run once by kzoo predict")
            else:
                raise KzooError(f"{self.name} needs input {name!r} ({e['role']}); give it explicitly")
        return feeds

    def generate(self, num, seed=0, label=None, max_memory_bytes=None, chunk_rows=GENERATE_BATCH):
        """For models without image inputs: `num` outputs from seeded latents (post-processed),
        run `chunk_rows` at a time; refused (one `KzooError` line) when the estimated peak
        is over `max_memory_bytes` (default: `kzoo.memory.default_request_budget()`)."""
        from kzoo.memory import check_budget, plan_run

        if self.image_inputs:
            raise KzooError(f"{self.name} transforms images: give input images, not --num")
        if num < 1:
            raise KzooError(f"--num must be >= 1, got {num}")
        budget = check_budget(max_memory_bytes, "--max-memory-bytes")
        fixed = {"inputs": int(sum(num * a for a, _ in self.profile.inputs.values())),
                 "outputs": 2 * self.profile.output_bytes(num)}  # float outputs, then uint8 images
        plan_run(self.profile, num, 0, fixed, budget, chunk_rows=chunk_rows, what=f"--num {num}",
                 limit_name="--max-memory-bytes")
        feeds = self.sample(num, seed, label)
        return self.postprocess(self.run_rows(self.check_feeds(feeds), chunk_rows)), feeds

    def generate_batches(self, num, seed=0, label=None, batch=None, max_memory_bytes=None):
        """`generate`, `batch` items per model call (default: the export's Triton
        `max_batch_size`): yields `(start, outputs, feeds)`, so that any `num` runs in
        the memory of one batch, whose estimated peak is checked against
        `max_memory_bytes` first (as `generate` checks all of them). Item i is the same
        whatever the batch size when the model has one latent input (its rows are drawn
        in order from one generator)."""
        from kzoo.export.serving_config import MAX_BATCH_SIZE
        from kzoo.memory import check_budget, plan_run

        if self.image_inputs:
            raise KzooError(f"{self.name} transforms images: give input images, not --num")
        if num < 1:
            raise KzooError(f"--num must be >= 1, got {num}")
        batch = batch or MAX_BATCH_SIZE
        rows = min(batch, num)
        fixed = {"inputs": int(sum(rows * a for a, _ in self.profile.inputs.values())),
                 "outputs": 2 * self.profile.output_bytes(rows)}
        plan_run(self.profile, rows, 0, fixed, check_budget(max_memory_bytes, "--max-memory-bytes"),
                 chunk_rows=rows, what=f"--num {num} ({rows} at a time)",
                 limit_name="--max-memory-bytes")
        rng = np.random.default_rng(seed)
        for start in range(0, num, batch):
            feeds = self.sample(min(batch, num - start), seed, label, rng=rng, start=start)
            yield start, self.postprocess(self.run(**feeds)), feeds

    def output_nbytes(self, name=None):
        """Bytes of one item of output `name` (default: all outputs together) as `kzoo
        predict` writes it before compression (uint8 images and label maps), or None
        when a dimension is dynamic."""
        total = 0
        for n, e in self.outputs.items():
            if name is not None and n != name:
                continue
            dims = e["shape"][1:]
            if any(d is None for d in dims):
                return None
            item = 1 if e["role"] in ("image", "labels") else np.dtype(e["dtype"]).itemsize
            total += int(np.prod(dims, dtype=np.int64)) * item
        return total

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
        from kzoo.io import check_memory

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
        # The sampler holds x_t for all `num` images at once (float32) and draws their noise
        # together, so the images depend on `num` only through the order of the draws.
        check_memory(int(np.prod(shape, dtype=object)) * 4, f"--num {num} ({num} float32 images "
                     f"of {'x'.join(map(str, shape[1:]))} sampled together)", "lower --num")
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
            tile = TILE if tile_overlap(self.info) is not None else 0
        if tile and max(x.shape[:2]) > tile:
            outputs = self.run_tiled(x, tile, overlap, seed=seed, label=label)
        else:
            outputs = self.run(**self.sample(1, seed, label, fixed={e["name"]: x[None]}))
        outputs = {k: _crop(v, x.shape[:2], (height, width)) for k, v in outputs.items()}
        return {k: v[0] for k, v in self.postprocess(outputs).items()}

    def plan_image(self, height, width, budget, tile=None, overlap=OVERLAP, source="image",
                   limit_name="--max-memory-bytes"):
        """The tile size (0: whole image) to run one `height` x `width` image with, so that
        the estimated peak stays within `budget` bytes -- known from the image's header,
        before it is decoded. `tile` as in `predict_image` (None: super-resolution models
        in tiles of `TILE`, others whole); an image that does not fit is refused with one
        `KzooError` line naming the limit (and `--tile` where the model takes any size)."""
        from kzoo.memory import plan_run

        size = self.info.get("dynamic", {}).get("spatial_size")
        m = size["multiple"] if size else 1
        pixels = (-(-height // m) * m) * (-(-width // m) * m)
        channels = self.image_inputs[0]["shape"][-1]
        fixed = {"decoded image": pixels * channels * 9,  # uint8, float32, its scaled copy
                 "outputs": 2 * self.profile.output_bytes(1, pixels)}  # and post-processed
        tiles = bool(size) and self._maps_only()
        auto = tile is None and tile_overlap(self.info) is not None
        if tile is None:
            tile = TILE if auto else 0
        if tile and max(height, width) <= tile:
            tile = 0
        what = f"{source} ({width}x{height})"
        if not tile:
            try:
                plan_run(self.profile, 1, pixels, fixed, budget, chunk_rows=1, what=what, limit_name=limit_name)
                return 0
            except KzooError as err:
                hint = "; --tile N runs it in N x N tiles" if tiles else ""
                raise KzooError(f"{err}{hint}") from None
        args = dict(chunk_rows=1, what=what, limit_name=limit_name, tile_multiple=m if tiles else None,
                    overlap=overlap)
        try:
            return plan_run(self.profile, 1, pixels, fixed, budget, tile=tile, **args).tile
        except KzooError:
            if not auto:
                raise
        return plan_run(self.profile, 1, pixels, fixed, budget, **args).tile or 0  # a smaller tile

    def _maps_only(self):
        """Every output is an image or a per-pixel map (batch, height, width, ...)."""
        return all(len(e["shape"]) >= 3 for e in self.outputs.values())

    def run_tiled(self, x, tile, overlap=OVERLAP, seed=0, label=None, should_stop=None):
        """Run a fully convolutional model on one preprocessed HxWxC input `x` in tiles.

        Each `tile` x `tile` block is run with `overlap` input pixels of context on every
        side (less at the image border), and only the block's own part of the output is
        kept: no blending, no seams. Where `overlap` covers the network's receptive radius
        the result equals the untiled output up to float rounding. Sizes are rounded up to
        the model's size multiple; returns {output: array with batch 1}. `should_stop()`
        is asked before each tile (raises `Stopped`).
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
                if should_stop is not None and should_stop():
                    raise Stopped(f"{self.name}: stopped between tiles (the caller went away)")
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


class SavedModelRunner(OnnxModel):
    """An exported version run through its SavedModel's `serving_default` (TensorFlow),
    with the same checks and pre/post-processing as `OnnxModel`."""

    def __init__(self, path):  # noqa: super().__init__ would open the ONNX model
        from kzoo.export.saved_model import SERVING_DEFAULT, load_signature  # TensorFlow, when called

        self.path = Path(path)
        self.info = read_info(self.path)
        if not (self.path / "saved_model.pb").is_file():
            raise KzooError(f"{self.path} has no SavedModel (export it with --formats savedmodel)")
        self.name = self.info.get("name", self.path.parent.name)
        self.inputs = {e["name"]: e for e in self.info["inputs"]}
        self.outputs = {e["name"]: e for e in self.info["outputs"]}
        self._signature = load_signature(self.path, SERVING_DEFAULT)
        self.provider = "tensorflow"
        self.runtime = "savedmodel"
        self.endpoint = endpoint_of(self.info, self.name)

    def run(self, **feeds):
        feeds = self.check_feeds(feeds)
        values = self._signature(**feeds)
        return {k: np.asarray(values[k]) for k in self.outputs}

    @property
    def profile(self):
        """Measured on the version's ONNX model when it has one; else only the tensors."""
        from kzoo.memory import ActivationProfile, activation_profile

        onnx = self.info.get("files", {}).get("onnx")
        if onnx and (self.path / onnx).is_file():
            return activation_profile(self.path / onnx, self.info)
        return ActivationProfile(0.0, 0.0, {e["name"]: (0.0, 0.0) for e in self.info["outputs"]},
                                 {e["name"]: (0.0, 0.0) for e in self.info["inputs"]})


class Stopped(KzooError):
    """A run given up between chunks or tiles because its caller went away."""


def tile_overlap(info):
    """The context (input pixels) a model described by `kzoo.json` `info` is tiled with, or
    None when it is not tiled: only super-resolution models are run in tiles unasked --
    their receptive radius (`OVERLAP`) is small, so tiles give the untiled result; a
    U-Net's or DeepLab's reaches across the image, so tiling would change the answer."""
    size = (info.get("dynamic") or {}).get("spatial_size")
    maps = all(len(e["shape"]) >= 3 for e in info["outputs"])
    return OVERLAP if info.get("task") == "super-resolution" and size and maps else None


def read_info(path):
    """The `kzoo.json` of an exported version, checked: one `KzooError` line when it is
    truncated, not JSON, or an entry lacks a field."""
    path = Path(path)
    try:
        info = json.loads((path / "kzoo.json").read_text())
    except OSError as err:
        raise KzooError(f"cannot read {path / 'kzoo.json'}: {err.strerror}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise KzooError(f"{path / 'kzoo.json'} is not valid JSON (truncated?): {err}") from None
    if not isinstance(info, dict):
        raise KzooError(f"{path / 'kzoo.json'} is not a JSON object")
    for kind in ("inputs", "outputs"):
        entries = info.get(kind)
        if not isinstance(entries, list) or not entries:
            raise KzooError(f"{path / 'kzoo.json'} has no {kind} list")
        for i, e in enumerate(entries):
            missing = [f for f in ("name", "dtype", "shape", "role") if not isinstance(e, dict) or f not in e]
            if missing:
                raise KzooError(f"{path / 'kzoo.json'}: {kind}[{i}] has no {', '.join(missing)} "
                                "(a kzoo.json of another format version?)")
    return info


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


def image_size(path):
    """(width, height) of an image file, from its header (nothing is decoded)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError:
        raise KzooError(f"input image {path} does not exist") from None
    except Image.DecompressionBombError as e:
        raise KzooError(f"image {path} is too large to decode: {_first_line(e)}") from None
    except Exception as e:
        raise KzooError(f"cannot read image {path}: {_first_line(e)}") from None


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


def jpeg_at_size(image, max_bytes):
    """`(decoded uint8 image, bytes, quality)` of the best-quality JPEG of `image` (uint8
    HxWxC, C 1 or 3) that fits in `max_bytes` (quality 1 if none fits), by bisection over
    Pillow's quality 1..95."""
    import io

    from PIL import Image

    img = Image.fromarray(np.asarray(image)[..., 0] if np.asarray(image).shape[-1] == 1
                          else np.asarray(image))

    def encode(quality):
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality)
        return buf.getvalue()

    lo, hi, best = 1, 95, None
    while lo <= hi:
        mid = (lo + hi) // 2
        data = encode(mid)
        if len(data) <= max_bytes:
            best, lo = (data, mid), mid + 1
        else:
            hi = mid - 1
    data, quality = best or (encode(1), 1)
    decoded = np.asarray(Image.open(io.BytesIO(data)))
    return decoded.reshape(np.shape(image)), len(data), quality


def reconstruction_report(original, reconstruction, latent):
    """One line: the autoencoder's PSNR (8-bit images, data range 255) beside a JPEG of the
    original at the size of the latent stored as float16 (`latent.size * 2` bytes)."""
    from kzoo.metrics import psnr

    original = np.asarray(original)
    if original.ndim == 2:
        original = original[..., None]
    budget = int(np.asarray(latent).size) * 2
    jpeg, nbytes, quality = jpeg_at_size(original, budget)
    ours = psnr(reconstruction, original, data_range=255.0)
    theirs = psnr(jpeg, original, data_range=255.0)
    over = ", the smallest JPEG: over the latent's size" if nbytes > budget else ""
    return (f"reconstruction PSNR {ours:.2f} dB from a {'x'.join(map(str, np.shape(latent)))} "
            f"latent ({budget} bytes as float16); JPEG at {nbytes} bytes (quality {quality}{over}): "
            f"{theirs:.2f} dB")


def save_label_summary(path, labels, entry):
    """A label map's coloured mask (`<path>_mask.png`, `kzoo.viz.colorize`'s palette) and
    per-class areas (`<path>_areas.json`: each class present, by name where the card lists
    `class_names`, with its pixel count and fraction, largest first); returns both paths."""
    from kzoo.io import save_png, write_json
    from kzoo.viz import colorize

    labels = np.asarray(labels).astype(np.int64)
    names = entry.get("class_names") or []
    counts = np.bincount(labels[labels >= 0].ravel(), minlength=len(names))
    areas = [{"class": int(i), "name": names[i] if i < len(names) else str(i),
              "pixels": int(c), "fraction": round(float(c) / labels.size, 6)}
             for i, c in enumerate(counts) if c]
    areas.sort(key=lambda a: (-a["pixels"], a["class"]))
    path = Path(path)
    mask, summary = Path(f"{path}_mask.png"), Path(f"{path}_areas.json")
    save_png(mask, colorize(labels))
    write_json(summary, {"height": int(labels.shape[0]), "width": int(labels.shape[1]),
                         "classes": areas})
    return [mask, summary]


def cache_dir():
    return Path(os.environ.get("KZOO_HOME") or Path.home() / ".cache" / "kzoo") / "exports"


def resolve_model(source, endpoint=None, mode=None):
    """An exported version for `source`: an export dir as is; a preset (or hub reference:
    catalog name, archive, URL), run dir or .keras file is exported (ONNX only) into the
    cache first -- that step needs TensorFlow.

    `mode`: the test-time mode of a junyanz network, "eval" or "authors"
    (`kzoo.layers.test_mode`); None: the source's. An export was made in one mode: asking
    it for the other is refused with the `kzoo export --mode` command that makes it."""
    from kzoo.hub.loader import hub_folder

    preset = hub_folder(source) if not Path(source).is_dir() else None
    path = Path(preset if preset is not None else source)
    if not path.exists():
        raise KzooError(f"{source} does not exist; give an exported model (export/<name>) or a "
                        "preset / run directory")
    try:
        version = find_version(path)
    except KzooError:
        keras_file = path if path.suffix == ".keras" else next(
            (p for p in (path / "model.keras", path / "model" / "model.keras") if p.is_file()), None)
        if keras_file is None:
            raise
    else:
        made = json.loads((version / "kzoo.json").read_text()).get("test_mode", {}).get("mode", "eval")
        if mode is not None and mode != made:
            raise KzooError(f"{version} was exported in {made} mode; export the source again with "
                            f"`kzoo export SOURCE --mode {mode}` to predict in {mode} mode")
        return version
    import hashlib

    digest = hashlib.sha256(keras_file.read_bytes()).hexdigest()[:16]
    root = cache_dir() / (digest if mode is None else f"{digest}-{mode}")
    models = sorted(p for p in root.glob("*/1") if (p / "kzoo.json").is_file()) if root.is_dir() else []
    if not models:
        from kzoo.export import export

        models = [r.path for r in export(path, out=root, formats=("onnx",), version=1, force=True,
                                         mode=mode)]
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


def open_model(path, runtime=None, *, providers=None, fp16=False, arena=False):
    """The exported version `path` on `runtime` (see `predict`): an `OnnxModel`, or for
    "savedmodel" a `SavedModelRunner` (imports TensorFlow)."""
    from kzoo.runtime import check_runtime, default_runtime

    runtime = check_runtime(runtime) if runtime else default_runtime(find_version(path))
    if runtime != "savedmodel":
        return OnnxModel(path, providers=providers, fp16=fp16, arena=arena, runtime=runtime)
    if providers or fp16:
        raise KzooError("--providers and --fp16 apply to the ONNX model; the savedmodel runtime runs "
                        "the export's SavedModel")
    from kzoo.backend import import_tensorflow

    import_tensorflow()
    return SavedModelRunner(find_version(path))


def _runtime_words(model):
    runtime = getattr(model, "runtime", "savedmodel")
    return {"ort": f"onnxruntime {model.provider}", "openvino": "OpenVINO (CPU)",
            "savedmodel": "the TensorFlow SavedModel"}[runtime]


def predict(source, inputs=(), out="predictions", *, num=8, seed=0, label=None, providers=None,
            endpoint=None, fp16=False, sampler="ddim", steps=50, eta=0.0, use_clipped_model_output=None,
            tile=None, overlap=OVERLAP, mode=None, max_memory_bytes=None, runtime=None, log=None):
    """What `kzoo predict` does: run `source` on `inputs` (or generate `num`); returns paths.

    `runtime`: "ort", "openvino" or "savedmodel" (TensorFlow; the export needs its
    SavedModel); None: the runtime recorded beside the export, else "ort" (`kzoo.runtime`).

    Diffusion eps-models are sampled with `sampler` ("ddim" or "ddpm") in `steps` steps,
    with the sampler options of their kzoo.json (`use_clipped_model_output` overrides one).
    Image models take `tile` and `overlap` (see `OnnxModel.predict_image`). `mode`: the
    test-time mode of a junyanz network (`resolve_model`). Each image's and each generated
    batch's estimated peak is checked against `max_memory_bytes` (default:
    `kzoo.memory.default_request_budget()`) before anything is decoded or run
    (`OnnxModel.plan_image`), as `kzoo serve` checks a request.
    """
    from kzoo.memory import check_budget

    log = log or (lambda msg: None)
    budget = check_budget(max_memory_bytes, "--max-memory-bytes")
    model = open_model(resolve_model(source, endpoint, mode), runtime, providers=providers, fp16=fp16)
    log(f"{model.name} version {model.info.get('version')} on {_runtime_words(model)}")
    out = Path(out)
    written = []
    if model.is_diffusion and model.info.get("sampler_endpoint") and use_clipped_model_output is None \
            and not fp16:  # its sampler endpoint, one session call (same images for the same seed)
        sampler_dir = model.path.parent.parent / model.info["sampler_endpoint"] / model.path.name
        if (sampler_dir / "kzoo.json").is_file():
            model = open_model(sampler_dir, runtime, providers=providers)
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
        if len(model.image_inputs) != 1:
            raise KzooError(f"{model.name} takes {len(model.image_inputs)} images; "
                            "kzoo predict feeds models with exactly one image input")
        for i, src in enumerate(inputs):
            width, height = image_size(src)
            use = model.plan_image(height, width, budget, tile, overlap, source=str(src))
            image = load_image(src)
            result = model.predict_image(image, seed=seed + i, label=label, source=str(src),
                                         tile=use, overlap=overlap)
            if "reconstruction" in result and "latent" in result:
                log(f"{src}: {reconstruction_report(image, result['reconstruction'], result['latent'])}")
            for name, value in result.items():
                stem = Path(src).stem if len(result) == 1 else f"{Path(src).stem}_{name}"
                written.append(save_output(out / stem, value, model.outputs[name]))
                if model.outputs[name]["role"] == "labels" and np.ndim(value) == 2:
                    written += save_label_summary(out / stem, value, model.outputs[name])
        return written
    if inputs:
        raise KzooError(f"{model.name} generates from latents and takes no input images; "
                        "use --num N --seed S" + (" --label L" if any(
                            e["role"] == "label" for e in model.inputs.values()) else ""))
    per_item = model.output_nbytes()
    if per_item:
        from kzoo.io import check_free_space

        check_free_space(out, num * per_item)  # e.g. --num 1000000000: refused before any work
    label_name = next((n for n, e in model.inputs.items() if e["role"] == "label"), None)
    for start, result, feeds in model.generate_batches(num, seed=seed, label=label,
                                                          max_memory_bytes=budget):
        for name, values in result.items():
            for i, value in enumerate(values, start):
                tag = f"_label{int(feeds[label_name][i - start])}" if label_name else ""
                written.append(save_output(out / f"{name}_{i:03d}{tag}", value, model.outputs[name]))
    return written


def measure_runtimes(version_dir, runtimes=None, *, batch=1, repeats=5, warmup=2, record=True):
    """Time the export on each of `runtimes` (alternated call by call, median ms at `batch`
    on the card's sample inputs, through the same `open_model` as `kzoo predict`) and, if
    `record`, record the fastest (`kzoo.runtime.record_runtime`).

    Args:
        runtimes: names from `kzoo.runtime.RUNTIMES`; None: every runtime available here
            (`kzoo.runtime.available_runtimes`: onnxruntime, OpenVINO where installed, the
            SavedModel where the export has one).

    Returns:
        ({runtime: median ms}, the fastest runtime).
    """
    import statistics
    import time

    from kzoo.card import sample_inputs
    from kzoo.runtime import available_runtimes, record_runtime

    version_dir = find_version(version_dir)
    runtimes = tuple(runtimes or available_runtimes(version_dir))
    models = {r: open_model(version_dir, r, arena=True) for r in runtimes}
    first = next(iter(models.values()))
    feeds = first.check_feeds(sample_inputs(first.info["inputs"], batch, np.random.default_rng(0),
                                            size=_sample_size(first.info)))
    times = {r: [] for r in models}
    for _ in range(warmup):
        for m in models.values():
            m.run(**feeds)
    for i in range(repeats):
        order = list(models)[i % len(models):] + list(models)[:i % len(models)]
        for r in order:
            t = time.perf_counter()
            models[r].run(**feeds)
            times[r].append(time.perf_counter() - t)
    medians = {r: 1000 * statistics.median(v) for r, v in times.items()}
    best = min(medians, key=medians.get)
    if record:
        record_runtime(version_dir, best, medians, batch=batch, repeats=repeats,
                       cores=os.cpu_count(), how="kzoo.infer.measure_runtimes")
    return medians, best


def _sample_size(info):
    shapes = [e["shape"] for e in info["inputs"] if e.get("role") == "image" and len(e["shape"]) == 4]
    if shapes and shapes[0][1]:
        return shapes[0][1]
    base = (info.get("dynamic") or {}).get("spatial_size", {}).get("base")
    return base or 32
