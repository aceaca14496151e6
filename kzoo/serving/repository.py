"""What `kzoo serve` serves: every version of every model of an export tree.

A `Servable` is one exported version on a backend (`onnx` or `ort`: onnxruntime through
`kzoo.infer.OnnxModel`; `openvino`: OpenVINO reading the same `model.onnx`,
`kzoo.runtime.OpenVinoSession`; `savedmodel`: the version's TensorFlow SavedModel; None:
the runtime recorded beside the version, `kzoo.runtime.default_runtime`, else onnxruntime),
with the signatures clients call:

- `serving_default`: the raw tensors of `kzoo.json` (named inputs and outputs,
  dynamic batch), as in the exported SavedModel;
- `serving_images` (models with image inputs or outputs): every image input as a
  batch of encoded images (`<name>_bytes`, PNG/JPEG/...), every image output as PNG
  bytes (`<name>_png_bytes`); other inputs and outputs raw. It is what `kzoo export
  --image-signature` adds to the SavedModel, done here with the pre/post-processing
  of `kzoo.json`, so a client sends pictures and gets pictures whatever the backend.

`Servable.prepare` validates a request's inputs, plans it within the memory budget
and turns it into model feeds (per request, so one bad request never fails a
batch); `Servable.run` runs a (batched) set of feeds; `Servable.finish`
post-processes a request's outputs.

Memory: each version's `kzoo.memory.ActivationProfile` is measured when it loads.
`Servable.plan` estimates a request's peak -- decoded images (their size read from
the image headers, before anything is decoded), activations, outputs, the response
in its encoding -- and runs it in chunks of the model's batch size, in tiles (only
models `kzoo.infer.tile_overlap` tiles), or refuses it: RESOURCE_EXHAUSTED, REST
400, naming the limit. A response larger than `max_response_bytes` is refused the
same way before it is built.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import logging
import threading
import time
from pathlib import Path

import numpy as np

from kzoo.errors import KzooError
from kzoo.export.layout import group_complete, versions
from kzoo.export.saved_model import SERVING_DEFAULT, SERVING_IMAGES, has_images
from kzoo.infer import OVERLAP, OnnxModel, SavedModelRunner, Stopped, tile_overlap
from kzoo.memory import default_request_budget, plan_run
from kzoo.serving.config import LATEST, aspired, read_config, tree_config
from kzoo.serving.errors import ServingError, not_found, unknown_label

BACKENDS = ("onnx", "openvino", "savedmodel")
RUNTIME_OF = {"onnx": "ort", "ort": "ort", "openvino": "openvino", "savedmodel": "savedmodel"}
"""Backend names (`kzoo serve --backend`, kept) and runtime names (`--runtime`) -> runtime."""
log = logging.getLogger("kzoo.serving")


def image_signature(info):
    """Inputs/outputs of `serving_images` derived from `kzoo.json` (see module docstring)."""
    def swap(entries, suffix):
        return [{"name": f"{e['name']}{suffix}", "dtype": "string", "shape": [None], "role": "encoded_image",
                 "image": e["name"]} if e["role"] == "image" else e for e in entries]

    return {"inputs": swap(info["inputs"], "_bytes"), "outputs": swap(info["outputs"], "_png_bytes")}


# Bytes per element of a REST (JSON) response: its text (a float32 written by Python takes
# up to 24 characters with its comma; held twice, as str and as bytes) and the Python
# objects built first (`tolist`: a 24-byte float, an 8-byte list slot, and the nested
# lists' headers -- 27 bytes per element for images of 3 channels). Measured in
# benchmarks/serving_abuse.json: 1,000 rows of the cGAN (12.3 M floats) took 1.47 GB of
# RSS for a 279 MB body, 120 bytes per element. PNG bytes travel base64-encoded (4/3).
JSON_TEXT_BYTES = 24
JSON_OBJECT_BYTES = 64
# Copies of a gRPC output tensor while its answer is built: the contiguous array's bytes,
# TensorProto.tensor_content, the copy into PredictResponse, grpc's serialized message
# (measured: 2,000 cGAN rows, a 98 MB answer, took 426 MB of RSS).
PROTO_COPIES = 4


class Servable:
    """One exported version on one backend (see module docstring).

    Attributes set by the server: `budget` (bytes one request may use), `budget_name`
    (what sets it, for messages), `chunk_rows` (the model's batch size),
    `max_response_bytes`.
    """

    def __init__(self, path, backend=None, name=None):
        from kzoo.runtime import default_runtime

        if backend is not None and backend not in RUNTIME_OF:
            raise KzooError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)} "
                            "(or a runtime: ort, openvino, savedmodel)")
        self.path = Path(path)
        runtime = RUNTIME_OF[backend] if backend else default_runtime(self.path)
        self.backend = {"ort": "onnx"}.get(runtime, runtime)
        self.model = (SavedModelRunner(self.path) if runtime == "savedmodel" else
                      OnnxModel(self.path, providers=["cpu"] if runtime == "ort" else None,
                                arena=False, runtime=runtime))
        self.info = self.model.info
        self.profile = self.model.profile  # measured now, not on the first request
        self.budget, self.budget_name = default_request_budget(), "--max-request-memory-bytes"
        self.chunk_rows, self.max_response_bytes = 32, 2**31 - 1
        self.name = name or self.path.parent.name  # the served name (models.config may rename)
        self.version = int(self.path.name)
        self.signatures = {SERVING_DEFAULT: {"inputs": self.info["inputs"], "outputs": self.info["outputs"]}}
        if has_images(self.info):
            self.signatures[SERVING_IMAGES] = image_signature(self.info)

    def signature(self, name):
        name = name or SERVING_DEFAULT
        if name not in self.signatures:
            raise ServingError(f"Serving signature name: \"{name}\" not found in signature def; "
                               f"this model has {', '.join(sorted(self.signatures))}")
        return name, self.signatures[name]

    def prepare(self, signature, feeds, encoding="json", output_filter=()):
        """(validated model feeds ({name: array}, all of one batch), `RunPlan`) for one request
        whose response is sent as `encoding` ("json" or "proto")."""
        _, sig = self.signature(signature)
        names = [e["name"] for e in sig["inputs"]]
        missing = [n for n in names if n not in feeds]
        extra = [n for n in feeds if n not in names]
        if missing or extra:
            raise ServingError(f"{self.name} ({signature or SERVING_DEFAULT}) takes inputs {', '.join(names)}; "
                               + "; ".join(filter(None, [missing and f"missing {', '.join(missing)}",
                                                        extra and f"unexpected {', '.join(extra)}"])))
        for e in sig["inputs"]:  # as strict as TF Serving: the signature's dtype, no conversion
            got = np.asarray(feeds[e["name"]]).dtype
            if (e["dtype"] == "string") != (got == object) or (e["dtype"] != "string" and got != e["dtype"]):
                raise ServingError(f"Expects input {e['name']} to be {e['dtype']} but "
                                   f"{'string' if got == object else got} is provided")
        try:
            encoded = [e for e in sig["inputs"] if e["role"] == "encoded_image"]
            if encoded:  # sizes from the headers, planned before anything is decoded
                sizes = {self._image_size(feeds[e["name"]], e) for e in encoded}
                if len(sizes) > 1:
                    raise ServingError("the image inputs of one request must have one size; got "
                                       + ", ".join(f"{w}x{h}" for n, h, w in sorted(sizes)))
                rows, height, width = sizes.pop()
                plan = self.plan(signature, rows, height * width, encoding, output_filter,
                                 images=sum(self.model.inputs[e["image"]]["shape"][-1] for e in encoded),
                                 what=f"{rows} image(s) of {width}x{height}")
            out = {e.get("image", e["name"]): (self._decode_images(feeds[e["name"]], e)
                                               if e["role"] == "encoded_image" else feeds[e["name"]])
                   for e in sig["inputs"]}
            out = self.model.check_feeds(out)
            if not encoded:
                rows, pixels = len(next(iter(out.values()))), self._pixels(out)
                plan = self.plan(signature, rows, pixels, encoding, output_filter, what=f"{rows} row(s)"
                                 + (f" of {int(pixels ** 0.5)}x{int(pixels ** 0.5)} pixels" if pixels else ""))
            return out, plan
        except ServingError:
            raise
        except (KzooError, ValueError, TypeError) as err:
            raise ServingError(str(err)) from None

    def _pixels(self, feeds):
        """Height x width of the request's image-like input (0 for models of fixed size)."""
        if not (self.info.get("dynamic") or {}).get("spatial"):
            return 0
        for name, e in self.model.inputs.items():
            if len(e["shape"]) >= 3:
                return int(feeds[name].shape[1]) * int(feeds[name].shape[2])
        return 0

    def plan(self, signature, rows, pixels, encoding="json", output_filter=(), images=0, what="request"):
        """The `RunPlan` of a request of `rows` rows of `pixels` pixels (see module docstring);
        `images`: channels of the encoded images it decodes (0: raw tensors)."""
        from kzoo.memory import fmt_bytes

        prof = self.profile
        _, sig = self.signature(signature)
        fixed = {}
        if images:  # uint8, float32 and its scaled copy of every image, then the stacked batch
            fixed["decoded images"] = int(rows * pixels * images * 9 + pixels * images * 12)
        else:
            fixed["inputs"] = int(sum(rows * (a + b * pixels) for a, b in prof.inputs.values()))
        fixed["outputs"] = prof.output_bytes(rows, pixels)
        body = building = 0
        for e in sig["outputs"]:
            if output_filter and e["name"] not in output_filter:
                continue
            raw = e.get("image", e["name"])
            nbytes = prof.output_bytes(rows, pixels, {raw})
            elements = nbytes / np.dtype(self.model.outputs[raw]["dtype"]).itemsize
            if e["role"] == "encoded_image":  # uint8 after float temporaries; PNG about the raw size
                png = elements * 1.01 + rows * 1024
                size = png * 4 / 3 if encoding == "json" else png
                building += elements * 9 + png + 2 * size
            else:
                size = elements * JSON_TEXT_BYTES if encoding == "json" else nbytes
                building += (elements * JSON_OBJECT_BYTES + 2 * size if encoding == "json"
                             else PROTO_COPIES * size)
            body += size
        fixed["response"] = int(building)
        overlap = tile_overlap(self.info)
        tiles = overlap is not None and len(self.model.image_inputs) == 1 and len(self.model.inputs) == 1
        size = (self.info.get("dynamic") or {}).get("spatial_size") or {}
        try:
            plan = plan_run(prof, rows, pixels, fixed, self.budget, chunk_rows=self.chunk_rows,
                            what=f"{what} for {self.name}", limit_name=self.budget_name,
                            tile_multiple=size.get("multiple") if tiles else None, overlap=overlap or 0)
        except KzooError as err:
            raise ServingError(str(err), "RESOURCE_EXHAUSTED", 400) from None
        if body > self.max_response_bytes:
            raise ServingError(f"the response to {what} for {self.name} would be about {fmt_bytes(body)}, over "
                               f"the limit of {fmt_bytes(self.max_response_bytes)} (--max-response-bytes)",
                               "RESOURCE_EXHAUSTED", 400)
        return plan

    def _image_size(self, value, e):
        """(images, height, width) of a batch of encoded images, from their headers."""
        value = np.asarray(value, dtype=object)
        if value.ndim != 1:
            raise ServingError(f"{e['name']} takes a batch (list) of encoded images; got shape {value.shape}")
        if not len(value):
            raise ServingError(f"{e['name']} is empty")
        sizes = {_image_header(b, f"{e['name']}[{i}]") for i, b in enumerate(value)}
        if len(sizes) > 1:
            raise ServingError(f"{e['name']}: the images of one request must have one size; got "
                               + ", ".join(f"{w}x{h}" for w, h in sorted(sizes)))
        width, height = sizes.pop()
        try:
            self.model.endpoint.check_size(height, width)
        except KzooError as err:
            raise ServingError(f"{e['name']}: {err}") from None
        return len(value), height, width

    def _decode_images(self, value, e):
        value = np.asarray(value, dtype=object)
        images = [self.model.preprocess(_decode_image(b, e["name"], self.model.inputs[e["image"]]),
                                        e["image"], source=f"{e['name']}[{i}]")
                  for i, b in enumerate(value)]
        return np.stack(images)

    def run(self, feeds, plan=None, should_stop=None):
        """Run the model on prepared (possibly batched) feeds -> {output: array}: in chunks of
        `chunk_rows`, or image by image in tiles when `plan` says so; `should_stop()` is
        asked before each chunk or tile (`kzoo.infer.Stopped`)."""
        try:
            return self._run(feeds, plan, should_stop)
        except Stopped as err:
            log.info("%s version %d: %s", self.name, self.version, err)
            raise

    def _run(self, feeds, plan, should_stop):
        if plan is None or not plan.tile:
            return self.model.run_rows(feeds, plan.chunk_rows if plan else self.chunk_rows, should_stop)
        (name, x), = feeds.items()
        out = {}
        for i in range(len(x)):
            for k, v in self.model.run_tiled(x[i], plan.tile, OVERLAP, should_stop=should_stop).items():
                if k not in out:
                    out[k] = np.empty((len(x), *v.shape[1:]), v.dtype)
                out[k][i] = v[0]
        return out

    def finish(self, signature, outputs, output_filter=()):
        """A request's outputs as its signature names them (PNG bytes for `serving_images`)."""
        name, sig = self.signature(signature)
        result = {}
        for e in sig["outputs"]:
            if output_filter and e["name"] not in output_filter:
                continue
            if e["role"] == "encoded_image":
                images = self.model.postprocess({e["image"]: outputs[e["image"]]})[e["image"]]
                result[e["name"]] = np.array([_encode_png(img) for img in images], dtype=object)
            else:
                result[e["name"]] = outputs[e["name"]]
        unknown = set(output_filter or ()) - {e["name"] for e in sig["outputs"]}
        if unknown:
            raise ServingError(f"output_filter names unknown outputs {', '.join(sorted(unknown))}")
        return result


def _image_header(data, name):
    """(width, height) of one encoded image, read from its header only."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, (bytes, bytearray)):
        raise ServingError(f"{name} takes encoded images (send {{\"b64\": \"...\"}}); got {type(data).__name__}")
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Image.DecompressionBombError as err:
        raise ServingError(f"{name}: image is too large: {str(err).splitlines()[0][:200]}",
                           "RESOURCE_EXHAUSTED", 400) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ServingError(f"{name}: cannot decode image ({str(err).splitlines()[0][:200]})") from None


def _decode_image(data, name, entry):
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, (bytes, bytearray)):
        raise ServingError(f"{name} takes encoded images (send {{\"b64\": \"...\"}}); got {type(data).__name__}")
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("L" if entry["shape"][-1] == 1 else "RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ServingError(f"{name}: cannot decode image ({str(err).splitlines()[0][:200]})") from None


def _encode_png(image):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, format="PNG")
    return buf.getvalue()


def _stamp(path):
    try:
        return (path / "kzoo.json").stat().st_mtime_ns
    except OSError:
        return None


class Repository:
    """The served versions of every configured model, kept in step with the file system.

    `poll()` does one pass of TF Serving's file-system source and manager: for each
    model it lists the complete versions on disk (`kzoo.json` present, its export
    group complete), picks those its version policy aspires to, loads the new ones
    (in the calling thread: the server polls in a background thread), then switches
    the model's version map in one assignment and drops the versions no longer
    aspired to. Requests hold the `Servable` they started on, so in-flight requests
    finish on the old version. A version that fails to load is reported by `status`
    with its error and is left out of the policy (so it never replaces a healthy
    version); it is retried when its `kzoo.json` changes. `models`, `failed`,
    `loading`, `ended` and `labels` are replaced, never changed in place, so requests
    read them without a lock while a poll runs.

    Args:
        root: the export tree (`export/`); every model directory is served.
        backend: `onnx` (onnxruntime), `openvino` or `savedmodel` (TensorFlow); None:
            each version's recorded runtime, else onnxruntime (see module docstring).
        config_file: a TF Serving `models.config`; then only its models are served,
            with their version policies and labels (`root` is ignored).
        policy: version policy of the models found under `root` (default: latest).
        on_load: optional `fn(servable)` called on each newly loaded version before
            it becomes visible (the server attaches its batcher there).

    Example::

        repo = Repository("export", policy=("all",))
        repo.get("dcgan").version, repo.get("dcgan", 1).version
        # (2, 1)
    """

    def __init__(self, root="export", backend=None, *, config_file=None, policy=LATEST, on_load=None):
        self.root = None if root is None else Path(root)
        self.backend, self.config_file, self.policy, self.on_load = backend, config_file, policy, on_load
        self.configs = {}
        self.models, self.failed, self.loading, self.ended, self.labels = {}, {}, {}, {}, {}
        self.events = collections.deque(maxlen=10000)  # (unix time, name, version, what)
        self._stamps = {}
        self._lock = threading.Lock()
        self.reload_config(strict=True)
        self.poll()
        if not self.models:
            raise KzooError(f"{config_file or self.root} holds no servable model for the {backend or 'recorded'} backend "
                            + (f"({'; '.join(e for d in self.failed.values() for e in d.values())})"
                               if self.failed else "(expected <name>/<version>/kzoo.json; run kzoo export)"))

    # --- keeping in step with the file system --------------------------------------
    def reload_config(self, strict=False):
        """Re-read `config_file` (or re-scan the tree); a bad file keeps the old config
        (raises only when `strict`, i.e. at start)."""
        try:
            configs = read_config(self.config_file) if self.config_file else [
                dataclasses.replace(c, policy=self.policy) for c in tree_config(self.root)]
        except KzooError as err:
            if strict:
                raise
            log.error("keeping the previous model config: %s", err)
            return False
        self.configs = {c.name: c for c in configs}
        self.labels = {c.name: dict(c.labels) for c in configs}
        return True

    def poll(self):
        """One pass over every model (see class docstring); returns the events it caused."""
        with self._lock:
            before = len(self.events)
            if not self.config_file:
                self.reload_config()
            for cfg in list(self.configs.values()):
                self._poll_model(cfg)
            for name in set(self.models) - set(self.configs):
                self._switch(name, {})
            return list(self.events)[before:] if len(self.events) > before else []

    def _on_disk(self, cfg, loaded):
        """({version: path} of the versions that may be served: complete ones, and loaded
        ones still on disk (a loaded version is not reloaded when its directory changes,
        as in TF Serving, nor dropped while `--force` re-exports its group); {version:
        error} of those whose `kzoo.json` is there but unreadable (kzoo writes it
        atomically, so it is broken, not half-written))."""
        found, broken = {}, {}
        for v in versions(cfg.base_path):
            path = cfg.base_path / str(v)
            if v in loaded:
                found[v] = path
                continue
            try:
                info = json.loads((path / "kzoo.json").read_text())
            except FileNotFoundError:
                continue  # not (yet) a kzoo export
            except (OSError, ValueError) as err:
                broken[v] = (path, f"{path / 'kzoo.json'} is not valid JSON (truncated?): "
                                   f"{getattr(err, 'strerror', None) or err}")
                continue
            if not isinstance(info, dict):
                broken[v] = (path, f"{path / 'kzoo.json'} is not a JSON object")
            elif group_complete(path, info):
                found[v] = path
        return found, broken

    def _poll_model(self, cfg):
        name = cfg.name
        loaded = self.models.get(name, {})
        found, broken = self._on_disk(cfg, loaded)
        failed = {v: m for v, m in self.failed.get(name, {}).items()
                  if v in found and self._stamps.get((name, v)) == _stamp(found[v])}
        for v, (path, message) in broken.items():
            old = self.failed.get(name, {}).get(v)
            if old is None or self._stamps.get((name, v)) != _stamp(path):
                self._failed(name, v, path, message)
            failed[v] = message
        new = {}
        while True:
            want = aspired(cfg.policy, [v for v in found if v not in failed])
            todo = [v for v in want if v not in loaded and v not in new]
            if not todo:
                break
            for v in todo:
                servable = self._load(name, v, found[v])
                if isinstance(servable, str):
                    failed[v] = servable
                else:
                    new[v] = servable
        self.failed = {**self.failed, name: failed} if failed else {
            k: d for k, d in self.failed.items() if k != name}
        self._switch(name, {v: new.get(v) or loaded[v] for v in want})

    def _load(self, name, v, path):
        self.loading = {**self.loading, name: self.loading.get(name, set()) | {v}}
        try:
            servable = Servable(path, self.backend, name)
            servable.config = self.configs.get(name)
            if self.on_load is not None:
                self.on_load(servable)
            return servable
        except Exception as err:  # a broken version is reported, never served
            message = str(err) if isinstance(err, KzooError) else f"{type(err).__name__}: {err}"
            return self._failed(name, v, path, message)
        finally:
            self.loading = {**self.loading, name: self.loading[name] - {v}}

    def _failed(self, name, v, path, message):
        log.warning("cannot load %s: %s", path, message)
        self._stamps[name, v] = _stamp(path)
        self.events.append((time.time(), name, v, "failed"))
        return message

    def _switch(self, name, serving):
        old = self.models.get(name, {})
        if serving.keys() == old.keys() and all(serving[v] is old[v] for v in old):
            return
        self.models = {**self.models, name: serving} if serving else {
            k: d for k, d in self.models.items() if k != name}
        now = time.time()
        for v in sorted(set(serving) - set(old)):
            self.ended = {**self.ended, name: self.ended.get(name, set()) - {v}}  # copy: requests read it
            self.events.append((now, name, v, "available"))
            log.info("serving %s version %d", name, v)
        for v in sorted(set(old) - set(serving)):
            self.ended = {**self.ended, name: self.ended.get(name, set()) | {v}}
            self.events.append((now, name, v, "unloaded"))
            log.info("unloaded %s version %d", name, v)

    # --- answering requests -------------------------------------------------------
    def names(self):
        return sorted(set(self.models) | set(self.failed))

    def version_of(self, name, version=None, label=None):
        """The version a request names: its number, its label's, or None (the latest)."""
        if label is not None:
            labels = self.labels.get(name, {})
            if label not in labels:
                raise unknown_label(label)
            return labels[label]
        if version is None:
            return None
        try:
            return int(version)
        except (TypeError, ValueError):
            raise ServingError(f"version must be an integer, got {version!r}") from None

    def get(self, name, version=None, label=None):
        """The servable a request names (latest version unless `version` or `label`)."""
        version = self.version_of(name, version, label)
        versions_ = self.models.get(name)
        if not versions_:
            raise not_found(name, version)
        if version is None:
            return versions_[max(versions_)]
        if version not in versions_:
            raise not_found(name, version)
        return versions_[version]

    def status(self, name, version=None, label=None):
        """TF Serving's GetModelStatus: [{version, state, status: {error_code, error_message}}]."""
        version = self.version_of(name, version, label)
        if name not in self.configs and name not in self.models:
            raise not_found(name, version)
        rows = {v: ("END", "OK", "") for v in self.ended.get(name, ())}
        rows.update({v: ("END", "UNKNOWN", msg) for v, msg in self.failed.get(name, {}).items()})
        rows.update({v: ("LOADING", "OK", "") for v in self.loading.get(name, ())})
        rows.update({v: ("AVAILABLE", "OK", "") for v in self.models.get(name, {})})
        if version is not None:
            rows = {v: r for v, r in rows.items() if v == version}
        if not rows:
            raise not_found(name, version)
        return [{"version": str(v), "state": state, "status": {"error_code": code, "error_message": msg}}
                for v, (state, code, msg) in sorted(rows.items(), reverse=True)]
