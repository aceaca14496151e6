"""models.config and config.pbtxt parse with the official TF Serving and Triton protos."""

import pytest
from google.protobuf import text_format

from kzoo.errors import KzooError
from kzoo.export import serving_config

model_server_config_pb2 = pytest.importorskip("tensorflow_serving.config.model_server_config_pb2")
model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")

SPEC = {"inputs": [{"name": "z", "dtype": "float32", "shape": [None, 8]},
                   {"name": "label", "dtype": "int32", "shape": [None]},
                   {"name": "image", "dtype": "float32", "shape": [None, None, None, 3]}],
        "outputs": [{"name": "restored", "dtype": "float32", "shape": [None, None, None, 3]}]}


def test_models_config_lists_saved_models_of_the_tree(tmp_path):
    for name, files in {"dcgan": ["1/saved_model.pb", "2/saved_model.pb"],
                        "onnx_only": ["1/model.onnx"], "half_done": [".staging-1-9-x/saved_model.pb"]}.items():
        for f in files:
            (tmp_path / name / f).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name / f).write_bytes(b"")
    path = serving_config.write_models_config(tmp_path, serving_root="/models/")
    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    entries = config.model_config_list.config
    assert [(c.name, c.base_path, c.model_platform) for c in entries] == [
        ("dcgan", "/models/dcgan", "tensorflow")]


def test_empty_tree_gives_a_valid_empty_config(tmp_path):
    path = serving_config.write_models_config(tmp_path)
    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    assert len(config.model_config_list.config) == 0


def test_triton_config(tmp_path):
    path = serving_config.write_triton_config(tmp_path, "fcn", SPEC, max_batch_size=16)
    config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    assert config.name == "fcn" and config.backend == "onnxruntime"
    assert config.default_model_filename == "model.onnx"
    assert config.max_batch_size == 16 and config.HasField("dynamic_batching")
    z, label, image = config.input
    assert (z.name, z.data_type, list(z.dims)) == ("z", model_config_pb2.TYPE_FP32, [8])
    assert label.data_type == model_config_pb2.TYPE_INT32 and list(label.dims) == [1]
    assert label.HasField("reshape") and list(label.reshape.shape) == []
    assert list(image.dims) == [-1, -1, 3]
    assert [o.name for o in config.output] == ["restored"]


def test_triton_rejects_unservable_dtypes(tmp_path):
    spec = {"inputs": [{"name": "s", "dtype": "string", "shape": [None]}], "outputs": []}
    with pytest.raises(KzooError, match="Triton"):
        serving_config.triton_config_text("m", spec)
