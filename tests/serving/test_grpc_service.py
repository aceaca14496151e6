"""The official tensorflow-serving-api gRPC stub against `kzoo serve`, and garbage on the port."""

import socket

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)

from kzoo.infer import OnnxModel


@pytest.fixture
def stub(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def request(inputs, name="cgan", version=None, signature=None):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    if version is not None:
        req.model_spec.version.value = version
    if signature:
        req.model_spec.signature_name = signature
    for k, v in inputs.items():
        req.inputs[k].CopyFrom(tf.make_tensor_proto(v))
    return req


def test_predict_with_the_official_stub_equals_onnx_runtime(stub, export_tree, cgan_inputs):
    response = stub.Predict(request(cgan_inputs), timeout=30)
    assert response.model_spec.name == "cgan" and response.model_spec.version.value == 2
    assert response.model_spec.signature_name == "serving_default"
    got = tf.make_ndarray(response.outputs["image"])
    np.testing.assert_allclose(got, OnnxModel(export_tree / "cgan").run(**cgan_inputs)["image"], atol=1e-4)
    old = stub.Predict(request(cgan_inputs, version=1), timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(old.outputs["image"]),
                               OnnxModel(export_tree / "cgan" / "1").run(**cgan_inputs)["image"], atol=1e-4)


def test_metadata_and_status(server, stub):
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    req.model_spec.name = "fcn"
    response = stub.GetModelMetadata(req, timeout=10)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(sig_map)
    assert set(sig_map.signature_def) == {"serving_default", "serving_images"}
    assert [d.size for d in sig_map.signature_def["serving_default"].inputs["image"].tensor_shape.dim] == [
        -1, -1, -1, 3]
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "cgan"}), timeout=10)
    assert [(s.version, s.state) for s in status.model_version_status] == [(2, 30), (1, 30)]  # AVAILABLE


@pytest.mark.parametrize("req,code,match", [
    (lambda i: request(i, name="nope"), grpc.StatusCode.NOT_FOUND, r"Latest\(nope\)"),
    (lambda i: request(i, version=9), grpc.StatusCode.NOT_FOUND, r"Specific\(cgan, 9\)"),
    (lambda i: request({"z": i["z"]}), grpc.StatusCode.INVALID_ARGUMENT, "missing label"),
    (lambda i: request({**i, "z": i["z"][:, :3]}), grpc.StatusCode.INVALID_ARGUMENT, "expected z"),
    (lambda i: request(i, signature="nope"), grpc.StatusCode.INVALID_ARGUMENT, "not found in signature def"),
    (lambda i: request({**i, "label": np.array(["a", "b", "c"])}), grpc.StatusCode.INVALID_ARGUMENT,
     "Expects input label to be int32 but string is provided"),
    (lambda i: request({**i, "z": i["z"].astype("float64")}), grpc.StatusCode.INVALID_ARGUMENT,
     "Expects input z to be float32 but float64"),
])
def test_bad_requests_get_grpc_status_codes(stub, cgan_inputs, req, code, match):
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(req(cgan_inputs), timeout=30)
    assert info.value.code() == code and __import__("re").search(match, info.value.details())
    stub.Predict(request(cgan_inputs), timeout=30)


def test_garbage_on_the_grpc_port(server, stub, cgan_inputs):
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", bytes(range(256)) * 8, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 64):
        with socket.create_connection(("127.0.0.1", server.grpc_port), timeout=5) as s:
            s.sendall(junk)
            s.settimeout(2)
            try:
                s.recv(1024)
            except (socket.timeout, ConnectionResetError):
                pass
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:  # not a PredictRequest
        raw = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
        with pytest.raises(grpc.RpcError) as info:
            raw(b"\xff\xff\xff\xff garbage", timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    response = stub.Predict(request(cgan_inputs), timeout=30)
    assert tf.make_ndarray(response.outputs["image"]).shape == (3, 16, 16, 1)


def test_message_over_the_limit_is_refused(server, stub, cgan_inputs):
    too_big = {"z": np.zeros((server.grpc_max_message_bytes // 32 + 1, 8), np.float32),
               "label": np.zeros(server.grpc_max_message_bytes // 32 + 1, np.int32)}
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request(too_big), timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    stub.Predict(request(cgan_inputs), timeout=30)


def declared(shape, dtype=1, values=None, content=b""):
    """A TensorProto that declares `shape` and carries few (or no) values."""
    from tensorflow.core.framework import tensor_pb2

    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_content=content)
    for d in shape:
        proto.tensor_shape.dim.add(size=d)
    if values:
        proto.float_val.extend(values)
    return proto


@pytest.mark.parametrize("z,match", [
    (declared([10**6, 64]), r"has shape \(1000000, 64\); expected z: float32 of shape \(batch, 8\)"),
    (declared([10**7, 8]), "needs 320000000 bytes; a request may use at most 67108864 bytes"),
    (declared([2**40, 8], values=[1.0]), "needs 35184372088832 bytes"),
    (declared([4, 8], content=b"\0" * 12), "tensor_content has 12 bytes"),
])
def test_declared_sizes_are_checked_before_allocating(server, stub, cgan_inputs, z, match):
    import re

    req = request({"label": cgan_inputs["label"]})
    req.inputs["z"].CopyFrom(z)
    assert req.ByteSize() < 200
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(req, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and re.search(match, info.value.details())
    stub.Predict(request(cgan_inputs), timeout=30)


def test_negative_or_unknown_versions(stub, cgan_inputs):
    for version in (-1, 3):
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(request(cgan_inputs, version=version), timeout=30)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert f"Specific(cgan, {version})" in info.value.details()
