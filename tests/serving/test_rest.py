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


# --- limits of a good server -------------------------------------------------------------
def test_oversized_body_gets_413_even_for_a_client_that_sends_it_all_first(server, cgan_inputs):
    import http.client

    body = b'{"instances": [' + b"0," * server.max_body_bytes + b"0]}"  # 2 MiB against a 1 MiB limit
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", "/v1/models/cgan:predict", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()  # no ConnectionResetError: the server read and dropped the body
        assert response.status == 413 and b"over the limit" in response.read()
        assert response.getheader("connection") == "close"
    finally:
        conn.close()
    good_predict(server, cgan_inputs)


def test_json_nested_thousands_deep_is_400(server, cgan_inputs):
    for depth in (5000, 100_000):
        body = b'{"instances": ' + b"[" * depth + b"]" * depth + b"}"
        r = requests.post(url(server, "/v1/models/cgan:predict"), data=body, timeout=30)
        assert r.status_code == 400 and "nested too deeply" in r.json()["error"], r.text
    good_predict(server, cgan_inputs)


def raw_http(server, data, wait_s=10.0):
    """Send `data` on a raw socket and read until the server closes (bounded)."""
    import socket
    import time

    with socket.create_connection(("127.0.0.1", server.port), timeout=wait_s) as s:
        s.sendall(data)
        started, chunks = time.monotonic(), []
        while time.monotonic() - started < wait_s:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks), time.monotonic() - started


def test_a_body_that_never_arrives_gets_408(server):
    head = (b"POST /v1/models/cgan:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000\r\n\r\n{\"instance")
    answer, seconds = raw_http(server, head)
    assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 2 s" in answer, answer[:200]
    assert seconds < 8


def test_headers_that_never_finish_get_408_and_the_connection_closes(server, cgan_inputs):
    answer, seconds = raw_http(server, b"POST /v1/models/cgan:predict HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    assert answer.startswith(b"HTTP/1.1 408") and b"headers did not arrive" in answer, answer[:200]
    assert seconds < 8
    answer, _ = raw_http(server, b"")  # a silent connection is closed too
    assert answer.startswith(b"HTTP/1.1 408")
    good_predict(server, cgan_inputs)


MORE_BAD = [
    ('{"inputs": {"z": [[0,0,0,0,0,0,0,0]], "label": [true]}}', "Type: Bool is not of expected type: int32"),
    ('{"inputs": {"z": [[0,0,0,0,0,0,0,false]], "label": [1]}}', "Type: Bool is not of expected type: float32"),
    ('{"instances": [{"z": [0,0,0,0,0,0,0,0], "label": true}]}', "Type: Bool"),
    ('{"inputs": {"z": [[[0]]], "label": [1]}}', r"has shape \(1, 1, 1\); expected z: float32 of shape"),
]


@pytest.mark.parametrize("body,match", MORE_BAD, ids=[m[:20] for _, m in MORE_BAD])
def test_booleans_and_shapes_are_refused_before_decoding(server, body, match):
    import re

    r = requests.post(url(server, "/v1/models/cgan:predict"), data=body, timeout=30)
    assert r.status_code == 400 and re.search(match, r.json()["error"]), r.json()


def test_a_request_over_the_tensor_budget_is_refused(export_tree):
    from kzoo.serving.server import ModelServer

    with ModelServer(export_tree, port=0, grpc_port=None, max_tensor_bytes=1000) as small:
        r = requests.post(url(small, "/v1/models/cgan:predict"), timeout=30,
                          json={"inputs": {"z": [[0.0] * 8] * 40, "label": [1] * 40}})
        assert r.status_code == 400 and "at most 1000 bytes" in r.json()["error"]


def test_a_full_queue_is_429(export_tree):
    from concurrent.futures import ThreadPoolExecutor

    from kzoo.serving.server import ModelServer

    body = json.dumps({"inputs": np.zeros((16, 48, 48, 3)).tolist()})
    with ModelServer(export_tree, port=0, grpc_port=None, max_batch=1, max_queue=1, batch_wait_ms=0) as small:
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(lambda _: requests.post(url(small, "/v1/models/fcn:predict"), data=body,
                                                          timeout=60), range(32)))
    statuses = {r.status_code for r in codes}
    assert statuses <= {200, 429} and 429 in statuses and 200 in statuses, statuses
    assert "queue is full" in next(r for r in codes if r.status_code == 429).json()["error"]


def test_url_grammar_is_case_insensitive_as_tf_serving(server, cgan_inputs):
    """TF Serving's regexes are (?i) (http_rest_api_util.cc) but its handler dispatches on
    the verb as written (http_rest_api_handler.cc: `*method == "predict"`)."""
    body = {"inputs": {k: v.tolist() for k, v in cgan_inputs.items()}}
    r = requests.post(url(server, "/V1/MODELS/cgan/VERSIONS/1:predict"), json=body, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.post(url(server, "/v1/models/cgan:PREDICT"), json=body, timeout=30)
    assert r.status_code == 400 and r.json()["error"] == "Malformed request: POST /v1/models/cgan:PREDICT"
    r = requests.get(url(server, "/V1/Models/cgan"), timeout=10)
    assert r.status_code == 200 and "model_version_status" in r.json()
    r = requests.get(url(server, "/v1/models/cgan/METADATA"), timeout=10)
    assert r.status_code == 200 and "model_version_status" in r.json()  # TF Serving: the status
    assert requests.get(url(server, "/v2/models/cgan"), timeout=10).status_code == 404


def test_sampler_endpoint_over_rest_with_no_step_noise(ddpm_server):
    """Deterministic DDIM needs K = 0 step-noise draws. Over REST JSON the portable request
    sends one draw of zeros (TF Serving's parser reads `[[]]` as shape (1, 0)); kzoo serve also
    takes the empty axis, `[[]]` in the columnar form and `[]` per instance, completed from the
    signature's fixed dims: all three give the images of the ONNX sampler run on K = 0."""
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((2, 8, 8, 1)).astype(np.float32)
    common = {"noise": noise.tolist(), "steps": [4, 9], "eta": [0.0, 0.0], "sampler": [0, 0]}
    model = OnnxModel(ddpm_server.repo.root / "ddpm_sampler" / "1")
    want = model.run(**{k: np.asarray(v, model.inputs[k]["dtype"]) for k, v in common.items()},
                     step_noise=np.zeros((2, 0, 8, 8, 1), np.float32))["images"]
    assert np.zeros((2, 0, 8, 8, 1)).tolist() == [[], []]
    path = url(ddpm_server, "/v1/models/ddpm_sampler:predict")
    for step_noise in (np.zeros((2, 1, 8, 8, 1)).tolist(), [[], []]):
        r = requests.post(path, json={"inputs": {**common, "step_noise": step_noise}}, timeout=60)
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(np.asarray(r.json()["outputs"], np.float32), want, atol=1e-6)
    rows = [{**{k: v[i] for k, v in common.items()}, "step_noise": []} for i in range(2)]
    r = requests.post(path, json={"instances": rows}, timeout=60)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.asarray(r.json()["predictions"], np.float32), want, atol=1e-6)
    # eta > 0 with no draws is refused before any step runs, naming the input
    r = requests.post(path, json={"inputs": {**common, "eta": [0.5, 0.5], "step_noise": [[], []]}}, timeout=60)
    assert r.status_code == 400 and "step_noise has fewer draws" in r.json()["error"], r.text
