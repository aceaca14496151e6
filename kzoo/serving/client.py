"""`Client(url)`: one client for `kzoo serve`, TF Serving and anything speaking its API.

`Client("http://host:8501")` speaks REST, `Client("grpc://host:8500")` gRPC
(`tensorflow.serving.PredictionService` with the official protos). NumPy in,
NumPy out; `predict_images` sends and returns pictures through the
`serving_images` signature (added to the SavedModel by `kzoo export
--image-signature`, always offered by `kzoo serve`). `version=` is a version
number or a version label (`"stable"`, from models.config). Only the protocol is
used, so the same code works against the `tensorflow/serving` container.

Example::

    client = Client("http://127.0.0.1:8501")
    client.predict("cgan", {"z": np.zeros((2, 100), "float32"), "label": np.array([3, 4])})["image"].shape
    # (2, 32, 32, 1)
    client.predict_images("pix2pix", [photo])["image_png_bytes"][0].shape     # uint8 HxWxC
    # (256, 256, 3)
"""

from __future__ import annotations

import io
import json
import time
import urllib.parse

import numpy as np

from kzoo.errors import KzooError
from kzoo.serving import codec
from kzoo.serving.errors import HTTP_STATUS, ServingError

SERVING_DEFAULT = "serving_default"
SERVING_IMAGES = "serving_images"
_CODE_OF_HTTP = {v: k for k, v in reversed(list(HTTP_STATUS.items()))}


class Client:
    """A TF Serving client (REST or gRPC by the URL's scheme); see module docstring.

    Args:
        url: `http://host:port` / `https://...` (REST) or `grpc://host:port`.
        timeout: float. Seconds per call.
    """

    def __init__(self, url, timeout=30.0):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme in ("http", "https"):
            self._t = _Rest(url.rstrip("/"), timeout)
        elif parsed.scheme == "grpc":
            if not parsed.port:
                raise KzooError(f"{url}: give the gRPC port, e.g. grpc://{parsed.hostname or 'localhost'}:8500")
            self._t = _Grpc(parsed.netloc, timeout)
        else:
            raise KzooError(f"{url!r}: the URL must start with http://, https:// or grpc://")
        self.url = url
        self._signatures = {}

    def close(self):
        self._t.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def status(self, model, version=None):
        """[{version, state, status}] as TF Serving reports it."""
        return self._t.status(model, version)

    def wait_ready(self, model, timeout=30.0):
        """Block until a version of `model` is AVAILABLE."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                if any(s["state"] == "AVAILABLE" for s in self.status(model)):
                    return self
            except (ServingError, OSError) as err:
                last = err
            time.sleep(0.1)
        raise KzooError(f"{model} is not available at {self.url} after {timeout:.0f} s ({last})")

    def metadata(self, model, version=None):
        """{signature: {"inputs": [{name, dtype, shape}], "outputs": [...]}}."""
        key = (model, version)
        if key not in self._signatures:
            sigs = self._t.metadata(model, version)
            self._signatures[key] = {k: codec.entries_from_signature_def(v) for k, v in sigs.items()}
        return self._signatures[key]

    def _signature(self, model, version, signature):
        sigs = self.metadata(model, version)
        if signature not in sigs:
            hint = " (export with `kzoo export --image-signature`)" if signature == SERVING_IMAGES else ""
            raise KzooError(f"{model} has no signature {signature!r}{hint}; it has {', '.join(sorted(sigs))}")
        return sigs[signature]

    def predict(self, model, inputs, *, version=None, signature=SERVING_DEFAULT):
        """Run `model` on `inputs` ({name: array}, or one array for a one-input model);
        returns {output name: array} with the signature's dtypes."""
        sig = self._signature(model, version, signature)
        names = [e["name"] for e in sig["inputs"]]
        if not isinstance(inputs, dict):
            if len(names) != 1:
                raise KzooError(f"{model} takes {len(names)} inputs ({', '.join(names)}): pass a dict")
            inputs = {names[0]: inputs}
        dtypes = {e["name"]: e["dtype"] for e in sig["inputs"]}
        arrays = {k: np.asarray(v, dtype=object if dtypes.get(k) == "string" else dtypes.get(k))
                  for k, v in inputs.items()}
        return self._t.predict(model, version, signature, arrays, sig)

    def predict_images(self, model, images=None, *, version=None, **inputs):
        """Pictures in, pictures out (signature `serving_images`).

        Args:
            images: a uint8 image (HxW or HxWxC), a list of them, or {input: list} for
                models with several image inputs; None for generators.
            **inputs: other inputs as arrays (e.g. `label=np.array([3])`, `z=...`).

        Returns:
            {output: list of uint8 HxWxC images} for image outputs (`<name>_png_bytes`), arrays for the rest.
        """
        sig = self._signature(model, version, SERVING_IMAGES)
        byte_inputs = [e["name"] for e in sig["inputs"] if e["dtype"] == "string"]
        if images is not None:
            if not isinstance(images, dict):
                if len(byte_inputs) != 1:
                    raise KzooError(f"{model} takes {len(byte_inputs)} image inputs "
                                    f"({', '.join(byte_inputs)}): pass a dict")
                images = {byte_inputs[0]: images}
            for name, value in images.items():
                key = name if name.endswith("_bytes") else f"{name}_bytes"
                batch = [value] if isinstance(value, np.ndarray) and value.ndim in (2, 3) and value.dtype == np.uint8 \
                    and not (value.ndim == 3 and value.shape[-1] not in (1, 3, 4)) else list(value)
                inputs[key] = np.array([encode_png(img) for img in batch], dtype=object)
        out = self.predict(model, inputs, version=version, signature=SERVING_IMAGES)
        return {k: ([decode_png(b) for b in v.reshape(-1)] if v.dtype == object else v) for k, v in out.items()}


def is_label(version):
    """A `version=` that names a version label (`"stable"`) rather than a number."""
    return isinstance(version, str) and not version.lstrip("-").isdigit()


def encode_png(image):
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise KzooError(f"images must be uint8 arrays, got {image.dtype}")
    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image).save(buf, format="PNG")
    return buf.getvalue()


def decode_png(data):
    from PIL import Image

    with Image.open(io.BytesIO(bytes(data))) as img:
        arr = np.asarray(img)
    return arr[..., None] if arr.ndim == 2 else arr


def _json_tensor(arr):
    if arr.dtype == object:
        return codec._json_value(arr, binary=True)
    return arr.tolist()


def _from_json(value, entry):
    if entry["dtype"] == "string":
        return codec.to_array(value, entry, "response")
    return np.asarray(value, dtype=entry["dtype"])


class _Rest:
    def __init__(self, base, timeout):
        import requests

        self.base, self.timeout = base, timeout
        self.session = requests.Session()

    def close(self):
        self.session.close()

    def _call(self, method, path, body=None):
        import requests

        try:
            r = self.session.request(method, self.base + path, data=body, timeout=self.timeout,
                                     headers={"Content-Type": "application/json"} if body else None)
        except requests.RequestException as err:
            raise ServingError(f"{self.base}: {err}", "UNAVAILABLE") from None
        try:
            obj = r.json()
        except ValueError:
            obj = {"error": r.text[:500]}
        if r.status_code != 200:
            raise ServingError(obj.get("error", r.text[:500]) if isinstance(obj, dict) else r.text[:500],
                               _CODE_OF_HTTP.get(r.status_code, "UNKNOWN"), r.status_code)
        return obj

    @staticmethod
    def _path(model, version):
        if version is None:
            return f"/v1/models/{model}"
        return f"/v1/models/{model}" + (f"/labels/{version}" if is_label(version) else f"/versions/{version}")

    def status(self, model, version):
        return self._call("GET", self._path(model, version))["model_version_status"]

    def metadata(self, model, version):
        return self._call("GET", self._path(model, version) + "/metadata")["metadata"]["signature_def"][
            "signature_def"]

    def predict(self, model, version, signature, arrays, sig):
        body = json.dumps({"signature_name": signature,
                           "inputs": {k: _json_tensor(v) for k, v in arrays.items()}})
        out = self._call("POST", self._path(model, version) + ":predict", body)["outputs"]
        entries = {e["name"]: e for e in sig["outputs"]}
        if not isinstance(out, dict) or set(out) != set(entries):
            out = {sig["outputs"][0]["name"]: out}
        return {k: _from_json(v, entries[k]) for k, v in out.items()}


class _Grpc:
    def __init__(self, target, timeout):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.timeout = timeout
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 256 << 20),
                                                              ("grpc.max_send_message_length", 256 << 20)])
        self.predict_stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model_stub = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.target = target

    def close(self):
        self.channel.close()

    def _call(self, fn, request):
        import grpc

        try:
            return fn(request, timeout=self.timeout)
        except grpc.RpcError as err:
            code = err.code().name if err.code() else "UNKNOWN"
            raise ServingError(err.details() or code, code) from None

    @staticmethod
    def _spec(spec, model, version, signature=None):
        spec.name = model
        if version is not None and is_label(version):
            spec.version_label = version
        elif version is not None:
            spec.version.value = int(version)
        if signature:
            spec.signature_name = signature

    def status(self, model, version):
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model, version)
        response = self._call(self.model_stub.GetModelStatus, request)
        rows = json_format.MessageToDict(response, preserving_proto_field_name=True).get(
            "model_version_status", [])
        for row in rows:
            row.setdefault("status", {}).setdefault("error_code", "OK")
            row["status"].setdefault("error_message", "")
        return rows

    def metadata(self, model, version):
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, model, version)
        response = self._call(self.predict_stub.GetModelMetadata, request)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(sig_map)
        return json_format.MessageToDict(sig_map, preserving_proto_field_name=True).get("signature_def", {})

    def predict(self, model, version, signature, arrays, sig):
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model, version, signature)
        for k, v in arrays.items():
            request.inputs[k].CopyFrom(codec.tensor_proto(v, "string" if v.dtype == object else None))
        response = self._call(self.predict_stub.Predict, request)
        return {k: codec.from_tensor_proto(v, k) for k, v in response.outputs.items()}
