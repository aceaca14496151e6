"""What `kzoo serve` serves: every version of every model of an export tree.

A `Servable` is one exported version on a backend (`onnx`: onnxruntime through
`kzoo.infer.OnnxModel`; `savedmodel`: the version's TensorFlow SavedModel), with
the signatures clients call:

- `serving_default`: the raw tensors of `kzoo.json` (named inputs and outputs,
  dynamic batch), as in the exported SavedModel;
- `serving_images` (models with image inputs or outputs): every image input as a
  batch of encoded images (`<name>_bytes`, PNG/JPEG/...), every image output as PNG
  bytes (`<name>_png_bytes`); other inputs and outputs raw. It is what `kzoo export
  --image-signature` adds to the SavedModel, done here with the pre/post-processing
  of `kzoo.json`, so a client sends pictures and gets pictures whatever the backend.

`Servable.prepare` validates a request's inputs and turns them into model feeds
(per request, so one bad request never fails a batch); `Servable.run` runs a
(batched) set of feeds; `Servable.finish` post-processes a request's outputs.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np

from kzoo.errors import KzooError
from kzoo.export.layout import versions
from kzoo.export.saved_model import SERVING_DEFAULT, SERVING_IMAGES, has_images, load_signature
from kzoo.infer import OnnxModel
from kzoo.serving.errors import ServingError, not_found

BACKENDS = ("onnx", "savedmodel")
log = logging.getLogger("kzoo.serving")


class SavedModelRunner(OnnxModel):
    """An exported version run through its SavedModel's `serving_default` (TensorFlow),
    with the same checks and pre/post-processing as `OnnxModel`."""

    def __init__(self, path):  # noqa: super().__init__ would open the ONNX model
        import json

        self.path = Path(path)
        self.info = json.loads((self.path / "kzoo.json").read_text())
        if not (self.path / "saved_model.pb").is_file():
            raise KzooError(f"{self.path} has no SavedModel (export it with --formats savedmodel)")
        self.name = self.info.get("name", self.path.parent.name)
        self.inputs = {e["name"]: e for e in self.info["inputs"]}
        self.outputs = {e["name"]: e for e in self.info["outputs"]}
        self._signature = load_signature(self.path, SERVING_DEFAULT)
        self.provider = "tensorflow"

    def run(self, **feeds):
        feeds = self.check_feeds(feeds)
        values = self._signature(**feeds)
        return {k: values[k] for k in self.outputs}


def image_signature(info):
    """Inputs/outputs of `serving_images` derived from `kzoo.json` (see module docstring)."""
    def swap(entries, suffix):
        return [{"name": f"{e['name']}{suffix}", "dtype": "string", "shape": [None], "role": "encoded_image",
                 "image": e["name"]} if e["role"] == "image" else e for e in entries]

    return {"inputs": swap(info["inputs"], "_bytes"), "outputs": swap(info["outputs"], "_png_bytes")}


class Servable:
    """One exported version on one backend (see module docstring)."""

    def __init__(self, path, backend="onnx"):
        if backend not in BACKENDS:
            raise KzooError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        self.path = Path(path)
        self.backend = backend
        self.model = OnnxModel(self.path, providers=["cpu"]) if backend == "onnx" else SavedModelRunner(self.path)
        self.info = self.model.info
        self.name = self.path.parent.name
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

    def prepare(self, signature, feeds):
        """Validated model feeds ({name: array}, all of one batch) for one request."""
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
            out = {e.get("image", e["name"]): (self._decode_images(feeds[e["name"]], e)
                                               if e["role"] == "encoded_image" else feeds[e["name"]])
                   for e in sig["inputs"]}
            return self.model.check_feeds(out)
        except ServingError:
            raise
        except (KzooError, ValueError, TypeError) as err:
            raise ServingError(str(err)) from None

    def _decode_images(self, value, e):
        value = np.asarray(value, dtype=object)
        if value.ndim != 1:
            raise ServingError(f"{e['name']} takes a batch (list) of encoded images; got shape {value.shape}")
        images = [self.model.preprocess(_decode_image(b, e["name"], self.model.inputs[e["image"]]),
                                        e["image"], source=f"{e['name']}[{i}]")
                  for i, b in enumerate(value)]
        if len({x.shape for x in images}) > 1:
            raise ServingError(f"{e['name']}: the images of one request must have one size; got "
                               + ", ".join(f"{x.shape[1]}x{x.shape[0]}" for x in images))
        if not images:
            raise ServingError(f"{e['name']} is empty")
        return np.stack(images)

    def run(self, feeds):
        """Run the model on prepared (possibly batched) feeds -> {output: array}."""
        return self.model.run(**feeds)

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


def _decode_image(data, name, entry):
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, (bytes, bytearray)):
        raise ServingError(f"{name} takes encoded images (send {{\"b64\": \"...\"}}); got {type(data).__name__}")
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("L" if entry["shape"][-1] == 1 else "RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise ServingError(f"{name}: cannot decode image ({str(err).splitlines()[0][:200]})") from None


def _encode_png(image):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, format="PNG")
    return buf.getvalue()


class Repository:
    """Every model and version under an export tree: `repo.get(name, version=None)`."""

    def __init__(self, root, backend="onnx"):
        self.root = Path(root)
        self.backend = backend
        if not self.root.is_dir():
            raise KzooError(f"{self.root} is not a directory; give an export tree (kzoo export writes export/)")
        self.models, self.failed = {}, {}
        for model_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for v in versions(model_dir):
                path = model_dir / str(v)
                if not (path / "kzoo.json").is_file():
                    continue
                try:
                    self.models.setdefault(model_dir.name, {})[v] = Servable(path, backend)
                except KzooError as err:  # serve the rest; status reports the failure
                    log.warning("cannot load %s: %s", path, err)
                    self.failed.setdefault(model_dir.name, {})[v] = str(err)
        if not self.models:
            raise KzooError(f"{self.root} holds no servable model for the {backend} backend "
                            + (f"({'; '.join(e for d in self.failed.values() for e in d.values())})"
                               if self.failed else "(expected <name>/<version>/kzoo.json; run kzoo export)"))

    def names(self):
        return sorted(set(self.models) | set(self.failed))

    def get(self, name, version=None):
        versions_ = self.models.get(name)
        if not versions_:
            raise not_found(name, version)
        if version is None:
            return versions_[max(versions_)]
        try:
            version = int(version)
        except (TypeError, ValueError):
            raise ServingError(f"version must be an integer, got {version!r}") from None
        if version not in versions_:
            raise not_found(name, version)
        return versions_[version]

    def status(self, name, version=None):
        """TF Serving's GetModelStatus: [{version, state, status: {error_code, error_message}}]."""
        if name not in self.models and name not in self.failed:
            raise not_found(name, version)
        rows = [(v, "AVAILABLE", "OK", "") for v in self.models.get(name, {})]
        rows += [(v, "END", "UNKNOWN", msg) for v, msg in self.failed.get(name, {}).items()]
        if version is not None:
            rows = [r for r in rows if str(r[0]) == str(version)]
            if not rows:
                raise not_found(name, version)
        return [{"version": str(v), "state": state, "status": {"error_code": code, "error_message": msg}}
                for v, state, code, msg in sorted(rows, reverse=True)]
