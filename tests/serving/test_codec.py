"""TF Serving's REST JSON and TensorProto <-> NumPy."""

import base64
import json

import numpy as np
import pytest

from kzoo.serving import codec
from kzoo.serving.errors import ServingError

SIGS = {"serving_default": {"inputs": [{"name": "z", "dtype": "float32", "shape": [None, 2]},
                                       {"name": "label", "dtype": "int32", "shape": [None]}]},
        "one": {"inputs": [{"name": "x", "dtype": "float32", "shape": [None, 2]}]},
        "bytes": {"inputs": [{"name": "image_bytes", "dtype": "string", "shape": [None]}]}}


def parse(obj):
    return codec.parse_predict(json.dumps(obj).encode(), SIGS)


def test_row_and_columnar_forms_give_the_same_feeds():
    sig, rows, form = parse({"instances": [{"z": [1, 2], "label": 3}, {"z": [3, 4], "label": 4}]})
    assert (sig, form) == ("serving_default", "row")
    _, cols, form = parse({"inputs": {"z": [[1, 2], [3, 4]], "label": [3, 4]}})
    assert form == "columnar"
    for feeds in (rows, cols):
        assert feeds["z"].dtype == np.float32 and feeds["z"].tolist() == [[1, 2], [3, 4]]
        assert feeds["label"].dtype == np.int32 and feeds["label"].tolist() == [3, 4]


def test_single_input_signatures_take_bare_values():
    assert parse({"signature_name": "one", "instances": [[1, 2]]})[1]["x"].shape == (1, 2)
    assert parse({"signature_name": "one", "inputs": [[1, 2], [3, 4]]})[1]["x"].shape == (2, 2)
    assert parse({"signature_name": "one", "instances": [{"x": [1, 2]}]})[1]["x"].shape == (1, 2)


def test_b64_values_become_bytes():
    blob = bytes(range(256))
    enc = base64.b64encode(blob).decode()
    _, feeds, _ = parse({"signature_name": "bytes", "instances": [{"b64": enc}, {"b64": enc}]})
    assert feeds["image_bytes"].dtype == object and feeds["image_bytes"].tolist() == [blob, blob]
    _, feeds, _ = parse({"signature_name": "bytes", "inputs": {"image_bytes": [{"b64": enc}]}})
    assert feeds["image_bytes"].tolist() == [blob]


@pytest.mark.parametrize("body,match", [
    (b"{not json", "JSON Parse error"),
    (b"[1, 2]", "not an object"),
    (b'{"instance": [1]}', "Missing 'inputs' or 'instances' key"),
    (b'{"instances": [1], "inputs": [1]}', "only one of"),
    (b'{"instances": []}', "non-empty"),
    (b'{"instances": [{"z": [1, 2]}]}', "missing input\\(s\\) label"),
    (b'{"instances": [{"z": [1, 2], "label": 1, "extra": 2}]}', "unknown input\\(s\\) extra"),
    (b'{"inputs": {"z": [[1, 2]], "lable": [1]}}', "missing label; has unknown lable"),
    (b'{"inputs": {"z": [[1, 2], [3]], "label": [1, 2]}}', "ragged"),
    (b'{"inputs": {"z": [["a", "b"]], "label": [1]}}', "expected numbers"),
    (b'{"inputs": {"z": [[1, 2]], "label": [1.5]}}', "expected integers"),
    (b'{"inputs": {"z": [[1, 2]], "label": [9999999999]}}', "out of range"),
    (b'{"signature_name": "nope", "instances": [1]}', '"nope" not found'),
    (b'{"signature_name": "bytes", "instances": [{"b64": "***"}]}', "not valid base64"),
    (b'{"signature_name": "bytes", "instances": [3]}', "expected a string"),
])
def test_bad_requests_are_invalid_argument(body, match):
    with pytest.raises(ServingError, match=match) as info:
        codec.parse_predict(body, SIGS)
    assert info.value.code == "INVALID_ARGUMENT" and info.value.http_status == 400


def test_responses_are_shaped_as_tf_serving_shapes_them():
    one = {"y": np.array([[1.5], [2.5]], np.float32)}
    two = {"y": np.array([1, 2]), "s_bytes": np.array([b"\xff", b"a"], dtype=object)}
    assert codec.predict_response(one, "row") == {"predictions": [[1.5], [2.5]]}
    assert codec.predict_response(one, "columnar") == {"outputs": [[1.5], [2.5]]}
    assert codec.predict_response(two, "row") == {"predictions": [
        {"y": 1, "s_bytes": {"b64": "/w=="}}, {"y": 2, "s_bytes": {"b64": "YQ=="}}]}
    text = codec.predict_response({"s": np.array([b"ok", b"\x89PNG"], dtype=object)}, "columnar")
    assert text == {"outputs": ["ok", {"b64": "iVBORw=="}]}  # non-UTF-8 -> b64


@pytest.mark.parametrize("value", [
    np.arange(12, dtype=np.float32).reshape(3, 4), np.array([1, -2], np.int64), np.array([True, False]),
    np.array([0.5, 2], np.float16), np.arange(6, dtype=np.uint8).reshape(2, 3, 1),
    np.array([b"a", b"\x00\xff"], dtype=object)])
def test_tensor_proto_round_trip_agrees_with_tensorflow(value):
    tf = pytest.importorskip("tensorflow")
    proto = codec.tensor_proto(value)
    back = codec.from_tensor_proto(proto)
    assert back.shape == value.shape and back.tolist() == value.tolist()
    theirs = tf.make_ndarray(proto)
    assert theirs.tolist() == value.tolist()
    mine = codec.from_tensor_proto(tf.make_tensor_proto(value))  # TF's way of filling protos
    assert mine.tolist() == value.tolist()


def test_tensor_proto_value_fields_and_broadcast():
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=2),
                                                   tensor_shape_pb2.TensorShapeProto.Dim(size=2)])
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, float_val=[7.0])
    assert codec.from_tensor_proto(proto).tolist() == [[7, 7], [7, 7]]
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, tensor_content=b"\0" * 5)
    with pytest.raises(ServingError, match="tensor_content has 5 bytes"):
        codec.from_tensor_proto(proto)


def test_signature_def_map_parses_as_the_official_proto():
    from google.protobuf import json_format
    from tensorflow_serving.apis import get_model_metadata_pb2

    sigs = {k: {**v, "outputs": [{"name": "y", "dtype": "float32", "shape": [None, None, None, 3]}]}
            for k, v in SIGS.items()}
    sig_map = json_format.ParseDict(codec.signature_def_map(sigs), get_model_metadata_pb2.SignatureDefMap())
    assert [d.size for d in sig_map.signature_def["one"].outputs["y"].tensor_shape.dim] == [-1, -1, -1, 3]
    z = sig_map.signature_def["serving_default"].inputs["z"]
    assert z.dtype == 1 and [d.size for d in z.tensor_shape.dim] == [-1, 2]
    back = codec.entries_from_signature_def(codec.signature_def_map(sigs)["signature_def"]["one"])
    assert back["inputs"] == [{"name": "x", "dtype": "float32", "shape": [None, 2]}]


def test_declared_shapes_are_checked_before_any_allocation(monkeypatch):
    from tensorflow.core.framework import tensor_pb2

    entry = {"name": "z", "dtype": "float32", "shape": [None, 8]}

    def no_allocation(*args, **kwargs):
        raise AssertionError("allocated before checking the declared shape")

    for fn in ("zeros", "empty", "repeat", "concatenate", "frombuffer", "asarray"):
        monkeypatch.setattr(codec.np, fn, no_allocation)
    for shape, match in (([10**6, 64], r"has shape \(1000000, 64\); expected z: float32 of shape \(batch, 8\)"),
                         ([10**7, 8], "needs 320000000 bytes"), ([2**40, 8], "needs 35184372088832 bytes")):
        proto = tensor_pb2.TensorProto(dtype=1, float_val=[1.0])
        for d in shape:
            proto.tensor_shape.dim.add(size=d)
        with pytest.raises(ServingError, match=match):
            codec.from_tensor_proto(proto, "input z", entry, codec.Budget(64 << 20))
    with pytest.raises(ServingError, match="needs 3200 bytes; a request may use at most 1000"):  # REST
        codec.to_array([[0.0] * 8] * 100, entry, "inputs", codec.Budget(1000))


def test_budget_is_per_request_and_booleans_are_not_numbers():
    budget = codec.Budget(100, booleans=True)
    budget.take(60, "a")
    with pytest.raises(ServingError, match="at most 100 bytes"):
        budget.take(60, "b")
    label = {"name": "label", "dtype": "int32", "shape": [None]}
    with pytest.raises(ServingError, match="Type: Bool is not of expected type: int32"):
        codec.to_array([1, True], label, "inputs", codec.Budget(None))
    assert codec.to_array([1, 2], label, "inputs", codec.Budget(None, booleans=False)).tolist() == [1, 2]
    flag = {"name": "flag", "dtype": "bool", "shape": [None]}
    assert codec.to_array([True, False], flag, "inputs").tolist() == [True, False]


def test_predict_response_bytes_equal_the_whole_json():
    from kzoo.serving.codec import dumps, predict_response, predict_response_bytes

    rng = np.random.default_rng(0)
    cases = [{"y": rng.standard_normal((3, 2, 2)).astype(np.float32)},
             {"y": rng.standard_normal((2, 4)), "n": np.arange(2, dtype=np.int32)},
             {"img_png_bytes": np.array([b"\x89PNG\x00", b"\xff"], dtype=object), "t": np.array([b"a", b"\xfe"], dtype=object)},
             {"y": np.array([[np.nan, np.inf]], np.float32)}]
    for outputs in cases:
        for form in ("row", "columnar"):
            assert predict_response_bytes(outputs, form) == dumps(predict_response(outputs, form))


def test_an_empty_axis_is_completed_from_the_signature_where_its_dims_are_fixed():
    """`[[]]` (NumPy's tolist() of a (1, 0, 4, 4, 1) array) for a (batch, any, 4, 4, 1) input is
    (1, 0, 4, 4, 1); where a later dimension is not fixed, or the list is not empty, the rank
    is still refused (TF Serving reads (1, 0) and its graph refuses the rank)."""
    entry = {"name": "step_noise", "dtype": "float32", "shape": [None, None, 4, 4, 1]}
    assert np.zeros((1, 0, 4, 4, 1)).tolist() == [[]]
    for value, shape in (([[]], (1, 0, 4, 4, 1)), ([[], []], (2, 0, 4, 4, 1))):
        arr = codec.to_array(value, entry, "inputs", codec.Budget(1000))
        assert arr.shape == shape and arr.dtype == np.float32
    rows = codec.parse_predict(b'{"instances": [{"step_noise": []}, {"step_noise": []}]}',
                               {"serving_default": {"inputs": [entry]}})[1]
    assert rows["step_noise"].shape == (2, 0, 4, 4, 1)
    with pytest.raises(ServingError, match=r"has shape \(1, 1\); expected step_noise"):
        codec.to_array([[0.0]], entry, "inputs")
    free = {**entry, "shape": [None, None, None, 4, 1]}
    with pytest.raises(ServingError, match=r"has shape \(1, 0\); expected step_noise"):
        codec.to_array([[]], free, "inputs")
