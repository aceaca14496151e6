"""TF Serving's documented REST format, with plain `requests`, against `kzoo serve`."""

import base64
import io
import json

import numpy as np
import pytest
import requests
from PIL import Image

from kzoo.infer import OnnxModel


def url(server, path):
    return server.rest_url + path


def good_predict(server, cgan_inputs):
    r = requests.post(url(server, "/v1/models/cgan:predict"), timeout=30,
                      json={"inputs": {k: v.tolist() for k, v in cgan_inputs.items()}})
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["outputs"], np.float32)


def test_status_and_metadata(server):
    r = requests.get(url(server, "/v1/models/cgan"), timeout=10)
    assert r.status_code == 200
    assert r.json() == {"model_version_status": [
        {"version": v, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for v in ("2", "1")]}
    one = requests.get(url(server, "/v1/models/cgan/versions/1"), timeout=10).json()
    assert [s["version"] for s in one["model_version_status"]] == ["1"]
    meta = requests.get(url(server, "/v1/models/fcn/metadata"), timeout=10).json()
    assert meta["model_spec"] == {"name": "fcn", "signature_name": "", "version": "1"}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert sig["inputs"]["image"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in sig["inputs"]["image"]["tensor_shape"]["dim"]] == ["-1", "-1", "-1", "3"]
    images = meta["metadata"]["signature_def"]["signature_def"]["serving_images"]
    assert images["inputs"]["image_bytes"]["dtype"] == "DT_STRING"


def test_row_and_columnar_predictions_equal_onnx_runtime(server, export_tree, cgan_inputs):
    expected = OnnxModel(export_tree / "cgan").run(**cgan_inputs)["image"]
    rows = [{"z": z.tolist(), "label": int(l)} for z, l in zip(cgan_inputs["z"], cgan_inputs["label"])]
    r = requests.post(url(server, "/v1/models/cgan:predict"), data=json.dumps({"instances": rows}),
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 200 and set(r.json()) == {"predictions"}
    np.testing.assert_allclose(np.asarray(r.json()["predictions"], np.float32), expected, atol=1e-4)
    np.testing.assert_allclose(good_predict(server, cgan_inputs), expected, atol=1e-4)
    r = requests.post(url(server, "/v1/models/cgan/versions/1:predict"), timeout=30,
                      json={"signature_name": "serving_default",
                            "inputs": {k: v.tolist() for k, v in cgan_inputs.items()}})
    v1 = OnnxModel(export_tree / "cgan" / "1").run(**cgan_inputs)["image"]
    np.testing.assert_allclose(np.asarray(r.json()["outputs"], np.float32), v1, atol=1e-4)


def test_b64_images_in_and_out(server, export_tree):
    img = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    r = requests.post(url(server, "/v1/models/fcn:predict"), timeout=30, json={
        "signature_name": "serving_images",
        "instances": [{"b64": base64.b64encode(buf.getvalue()).decode()}]})
    assert r.status_code == 200, r.text
    out = r.json()["predictions"][0]
    got = np.asarray(Image.open(io.BytesIO(base64.b64decode(out["b64"]))))
    np.testing.assert_array_equal(got, OnnxModel(export_tree / "fcn").predict_image(img)["restored"])


BAD = [
    ("/v1/models/cgan:predict", b"{\"inputs\": ", 400, "JSON Parse error"),
    ("/v1/models/cgan:predict", b'{"instance": [[1]]}', 400, "Missing 'inputs' or 'instances' key"),
    ("/v1/models/cgan:predict", b'{"inputs": {"zz": [[0]], "label": [1]}}', 400, "missing z"),
    ("/v1/models/cgan:predict", b'{"inputs": {"z": [[0, 1]], "label": [1]}}', 400,
     r"shape \(1, 2\); expected z: float32 of shape \(batch, 8\)"),
    ("/v1/models/cgan:predict", b'{"inputs": {"z": [[0,0,0,0,0,0,0,0]], "label": ["x"]}}', 400,
     "expected numbers"),
    ("/v1/models/cgan:predict", b'{"inputs": {"z": [[0,0,0,0,0,0,0,0]], "label": [12]}}', 400,
     "labels must be in 0..9"),
    ("/v1/models/fcn:predict", b'{"inputs": [[[[0, 0, 0]]]]}', 400, "fcn cannot run on image"),
    ("/v1/models/fcn:predict", b'{"signature_name": "serving_images", "instances": [{"b64": "AAAA"}]}',
     400, "cannot decode image"),
    ("/v1/models/nope:predict", b'{"instances": [1]}', 404, r"Servable not found for request: Latest\(nope\)"),
    ("/v1/models/cgan/versions/7:predict", b'{"instances": [1]}', 404,
     r"Servable not found for request: Specific\(cgan, 7\)"),
    ("/v1/models/cgan:classify", b'{"instances": [1]}', 400, "not supported"),
    ("/v1/models/cgan:frobnicate", b"{}", 400, "Malformed request"),
]


@pytest.mark.parametrize("path,body,status,match", BAD, ids=[b[3][:24] for b in BAD])
def test_bad_requests_get_tf_serving_errors_and_the_server_keeps_answering(
        server, cgan_inputs, path, body, status, match):
    import re

    r = requests.post(url(server, path), data=body, timeout=30)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert set(r.json()) == {"error"} and re.search(match, r.json()["error"]), r.json()
    good_predict(server, cgan_inputs)


def test_unknown_model_status_and_paths(server):
    r = requests.get(url(server, "/v1/models/nope"), timeout=10)
    assert r.status_code == 404 and "Servable not found" in r.json()["error"]
    for bad in ("x", "-1"):  # TF Serving's URL grammar: a version is digits
        r = requests.get(url(server, f"/v1/models/cgan/versions/{bad}/metadata"), timeout=10)
        assert r.status_code == 400 and "Malformed request" in r.json()["error"]
    r = requests.get(url(server, "/v1/models/cgan/versions/7/metadata"), timeout=10)
    assert r.status_code == 404 and "Specific(cgan, 7)" in r.json()["error"]
    r = requests.get(url(server, "/v2/elsewhere"), timeout=10)
    assert r.status_code == 404 and "error" in r.json()


def test_payload_over_the_limit_is_413(server, cgan_inputs):
    big = b'{"instances": [' + b"0," * (server.max_body_bytes // 2) + b"0]}"
    r = requests.post(url(server, "/v1/models/cgan:predict"), data=big, timeout=60)
    assert r.status_code == 413 and "over the limit" in r.json()["error"]

    def chunks():  # no Content-Length: the limit holds while streaming
        for _ in range(server.max_body_bytes // 65536 + 2):
            yield b" " * 65536

    r = requests.post(url(server, "/v1/models/cgan:predict"), data=chunks(), timeout=60)
    assert r.status_code == 413
    good_predict(server, cgan_inputs)
