"""Hostile requests against `kzoo serve`'s memory budget, response limit and cancellation:
each gets its status naming the limit, and the server keeps answering the others."""

import base64
import io
import json
import re
import socket
import struct
import threading
import time
import zlib

import grpc
import numpy as np
import pytest
import requests
from PIL import Image
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from kzoo.infer import OnnxModel
from kzoo.serving import codec, repository

BUDGET = 96 << 20


@pytest.fixture(scope="module")
def limited(tmp_path_factory, export_tree):
    """cgan (from the shared tree), a tiny U-Net (segmentation) and a tiny SRResNet behind a
    server with a 96 MiB request budget (the U-Net's serving.json: 32 MiB), 8 MiB responses,
    batches of 16 rows."""
    from kzoo.export import export
    from kzoo.serving.server import ModelServer
    from kzoo.zoo import create_model, tiny_overrides

    root = tmp_path_factory.mktemp("limits") / "export"
    root.mkdir()
    (root / "cgan").symlink_to(export_tree / "cgan")
    for zoo, name in (("unet", "unet"), ("srresnet", "sr")):
        export(create_model(zoo, **tiny_overrides(zoo)), name=name, out=root, formats="onnx")
    (root / "unet" / "serving.json").write_text(json.dumps({"max_request_memory_bytes": 32 << 20}))
    s = ModelServer(root, port=0, grpc_port=0, max_batch=16, batch_wait_ms=2, max_body_bytes=8 << 20,
                    max_request_memory_bytes=BUDGET, max_response_bytes=8 << 20,
                    file_system_poll_wait_seconds=-1).start(timeout=120)
    yield s
    s.stop()


def png(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def png_header_only(width, height):
    """A PNG whose header declares width x height (gray) and whose data is one empty chunk."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def post(server, model, body, timeout=60):
    return requests.post(f"{server.rest_url}/v1/models/{model}:predict", data=json.dumps(body), timeout=timeout)


def cgan_body(n):
    rng = np.random.default_rng(0)
    return {"inputs": {"z": rng.standard_normal((n, 8)).round(3).tolist(), "label": (np.arange(n) % 10).tolist()}}


def still_serving(server):
    r = post(server, "cgan", cgan_body(2))
    assert r.status_code == 200, r.text


def images_body(data):
    return {"signature_name": "serving_images", "instances": [{"b64": base64.b64encode(data).decode()}]}


def test_big_png_to_a_segmentation_model_is_refused_before_decoding(limited, monkeypatch):
    decoded = []
    monkeypatch.setattr(repository, "_decode_image", lambda *a: decoded.append(a) or 1 / 0)
    big = png(np.zeros((4096, 4096), np.uint8))  # a few KB on the wire
    assert len(big) < 100_000
    r = post(limited, "unet", images_body(big))
    assert r.status_code == 400, r.text
    assert re.search(r"1 image\(s\) of 4096x4096 for unet needs about .* over the limit of 32\.0 MiB "
                     r"for one request \(max_request_memory_bytes of \S+/unet/serving.json\)", r.json()["error"])
    assert decoded == []
    still_serving(limited)


def test_decompression_bomb_header_is_refused(limited):
    r = post(limited, "unet", images_body(png_header_only(100_000, 100_000)))
    assert r.status_code == 400 and "too large" in r.json()["error"], r.text
    r = post(limited, "unet", images_body(png_header_only(8000, 8000)))
    assert r.status_code == 400 and "over the limit" in r.json()["error"], r.text
    still_serving(limited)


def test_small_png_to_the_segmentation_model_is_served(limited):
    r = post(limited, "unet", images_body(png(np.full((32, 48, 3), 99, np.uint8))))
    assert r.status_code == 200, r.text


def test_super_resolution_image_over_budget_runs_in_tiles(limited):
    servable = limited.repo.get("sr")
    img = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    plan = servable.plan("serving_images", 1, 256 * 256, images=3)
    assert plan.tile and plan.tile < 256 and plan.estimate.total <= BUDGET
    calls = []
    original = servable.model.run_tiled
    servable.model.run_tiled = lambda *a, **k: calls.append(a[1]) or original(*a, **k)
    try:
        r = post(limited, "sr", images_body(png(img)))
    finally:
        del servable.model.run_tiled
    assert r.status_code == 200, r.text
    assert calls == [plan.tile]
    got = np.asarray(Image.open(io.BytesIO(base64.b64decode(r.json()["predictions"][0]["b64"]))))
    whole = OnnxModel(servable.path).predict_image(img, tile=0)["sr"]
    assert got.shape == whole.shape and np.abs(got.astype(int) - whole).max() <= 1


def test_many_rows_are_refused_or_run_in_chunks(limited, export_tree):
    r = post(limited, "cgan", cgan_body(10_000))  # its JSON answer would need ~200 MB to build
    assert r.status_code == 400 and "--max-request-memory-bytes" in r.json()["error"], r.text
    r = post(limited, "cgan", cgan_body(2_000))  # fits the memory, not the 8 MiB response limit
    assert r.status_code == 400, r.text
    assert re.search(r"response .* would be about .* over the limit of 8\.0 MiB \(--max-response-bytes\)",
                     r.json()["error"])
    servable = limited.repo.get("cgan")
    calls = []
    original = servable.model.run
    servable.model.run = lambda **f: calls.append(len(f["z"])) or original(**f)
    try:
        body = cgan_body(100)
        r = post(limited, "cgan", body)
    finally:
        del servable.model.run
    assert r.status_code == 200, r.text
    assert calls == [16] * 6 + [4]  # the model's batch size (--max-batch 16)
    feeds = {"z": np.asarray(body["inputs"]["z"], np.float32), "label": np.asarray(body["inputs"]["label"], np.int32)}
    np.testing.assert_allclose(np.asarray(r.json()["outputs"], np.float32),
                               OnnxModel(export_tree / "cgan").run(**feeds)["image"], atol=1e-4)


def grpc_request(n):
    rng = np.random.default_rng(0)
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "cgan"
    req.inputs["z"].CopyFrom(codec.tensor_proto(rng.standard_normal((n, 8)).astype(np.float32)))
    req.inputs["label"].CopyFrom(codec.tensor_proto((np.arange(n) % 10).astype(np.int32)))
    return req


def test_grpc_request_over_budget_is_resource_exhausted(limited):
    with grpc.insecure_channel(f"127.0.0.1:{limited.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(grpc_request(70_000), timeout=30)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "over the limit" in err.value.details()
        assert stub.Predict(grpc_request(3), timeout=30).outputs["image"].tensor_shape.dim[0].size == 3


def cancelled_count(server, api):
    m = re.search(rf'kzoo_serving_request_count_total{{[^}}]*api="{api}"[^}}]*status="CANCELLED"[^}}]*}} (\S+)',
                  server.metrics.text().decode())
    return float(m[1]) if m else 0.0


def gate_first_chunk(servable, server, api, started):
    """Make the first chunk wait until the server has seen the client go (its request
    counted CANCELLED); returns the list of chunk sizes run."""
    calls, before = [], cancelled_count(server, api)
    original = servable.model.run

    def run(**feeds):
        calls.append(len(feeds["z"]))
        if len(calls) == 1:
            started.set()
            deadline = time.monotonic() + 20
            while cancelled_count(server, api) == before and time.monotonic() < deadline:
                time.sleep(0.01)
        return original(**feeds)

    servable.model.run = run
    return calls


def wait_for(predicate, seconds=20):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_grpc_deadline_stops_the_request_at_the_next_chunk(limited, caplog):
    servable = limited.repo.get("cgan")
    calls = gate_first_chunk(servable, limited, "grpc", threading.Event())
    caplog.set_level("INFO", logger="kzoo.serving")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{limited.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.Predict(grpc_request(2_000), timeout=1.0)  # 125 chunks of 16
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert wait_for(lambda: any("stopped after 16 of 2000 rows" in r.getMessage() for r in caplog.records))
        assert calls == [16]
    finally:
        del servable.model.run
    still_serving(limited)


def test_rest_client_hanging_up_stops_the_request(limited, caplog):
    servable = limited.repo.get("cgan")
    started = threading.Event()
    calls = gate_first_chunk(servable, limited, "rest", started)
    caplog.set_level("INFO", logger="kzoo.serving")
    try:
        body = json.dumps(cgan_body(1_000)).encode()
        sock = socket.create_connection(("127.0.0.1", limited.port))
        sock.sendall(b"POST /v1/models/cgan:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert started.wait(20)
        sock.close()
        assert wait_for(lambda: any("stopped after 16 of 1000 rows" in r.getMessage() for r in caplog.records))
        assert calls == [16]
    finally:
        del servable.model.run
    still_serving(limited)


def test_queued_work_of_a_cancelled_request_is_dropped():
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from kzoo.serving.batching import Batcher

    ran, gate = [], threading.Event()

    def run(feeds, plan=None, should_stop=None):
        gate.wait(10)
        ran.append(int(feeds["x"][0, 0]))
        return {"y": feeds["x"]}

    async def main():
        b = Batcher(run, ThreadPoolExecutor(1), max_batch=1, wait_s=0)
        first = asyncio.ensure_future(b.submit({"x": np.zeros((1, 1))}))
        queued = asyncio.ensure_future(b.submit({"x": np.ones((1, 1))}))
        await asyncio.sleep(0.1)
        queued.cancel()  # its client is gone while it waits
        await asyncio.sleep(0.05)
        gate.set()
        await first
        await asyncio.sleep(0.1)

    asyncio.run(main())
    assert ran == [0]
