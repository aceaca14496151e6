"""benchmarks/providers.py: ONNX Runtime rows, CUDA against CPU, on weight-less exports too."""

import json

import numpy as np
import pytest

from benchmarks import providers


def tiny_onnx(path, out_channels=64):
    """A model.onnx at `path` taking NHWC images as kzoo's exports do (symbolic batch, 16x16, 32
    channels): a Transpose to NCHW, then one Conv to `out_channels` channels."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((out_channels, 32, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.full(out_channels, 0.5, np.float32), "b")
    nodes = [helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["nchw", "w", "b"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16, 16, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", out_channels, 16, 16])], [w, b])
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_without_cuda_each_model_is_a_skip_row(tmp_path):
    import onnxruntime as ort

    if providers.CUDA in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    tiny_onnx(tmp_path / "a" / "1" / "model.onnx")
    tiny_onnx(tmp_path / "b" / "1" / "model.onnx")
    rows = providers.run([tmp_path])
    assert [r["model"] for r in rows] == ["a/1", "b/1"]
    assert all("has no CUDAExecutionProvider" in r["skipped"] for r in rows)
    assert "- a/1: onnxruntime" in "\n".join(providers.table(rows))


def test_cpu_rows_from_the_graph_inputs_and_kzoo_json(tmp_path):
    model = tiny_onnx(tmp_path / "conv" / "1" / "model.onnx")
    rows = providers.measure(model, [providers.CPU], batches=(1, 16), repeats=2, warmup=1)
    assert [(r["batch"], r["inputs"]) for r in rows] == [(1, {"x": [1, 16, 16, 32]}), (16, {"x": [16, 16, 16, 32]})]
    assert all(r["cpu_ms"] > 0 and r["weights"] == "as exported" for r in rows)
    (model.parent / "kzoo.json").write_text(json.dumps({"inputs": [
        {"name": "x", "dtype": "float32", "role": "image", "range": [-1.0, 1.0], "shape": [None, None, None, 32]}],
        "dynamic": {"spatial_size": {"base": 16, "multiple": 16}}}))
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=[providers.CPU])
    feeds = providers.sample_feeds(model, sess, 2, np.random.default_rng(0))
    assert feeds["x"].shape == (2, 16, 16, 32) and -1 <= feeds["x"].min() and feeds["x"].max() <= 1


def test_a_weightless_copy_runs_with_weights_drawn_again(tmp_path):
    src = tiny_onnx(tmp_path / "export" / "conv" / "1" / "model.onnx")
    (src.parent / "kzoo.json").write_text("{}")
    assert providers.main([str(tmp_path / "export"), "--strip", str(tmp_path / "bare")]) == 0
    bare = tmp_path / "bare" / "conv" / "1" / "model.onnx"
    assert (bare.parent / "kzoo.json").is_file() and bare.stat().st_size < src.stat().st_size / 50
    source, redrawn = providers.load_model(bare)
    assert redrawn and isinstance(source, bytes)
    import onnxruntime as ort

    x = np.ones((1, 16, 16, 32), np.float32)
    (y,) = ort.InferenceSession(source, providers=[providers.CPU]).run(None, {"x": x})
    assert y.shape == (1, 64, 16, 16) and 0.1 < y.std() < 10  # N(0, 1/fan_in) keeps the scale
    assert np.allclose(y.mean(), 0.5, atol=0.5)  # the bias (small) was kept
    (row, ) = providers.measure(bare, [providers.CPU], batches=(1,), repeats=1, warmup=1)
    assert row["weights"] == "redrawn"


def test_bad_paths_are_one_error_line(tmp_path, capsys):
    assert providers.main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'missing'}: no such file or folder"
    tiny_onnx(tmp_path / "m" / "1" / "model.onnx")
    assert providers.main([str(tmp_path), "--batches", "1,0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --batches takes positive integers separated by commas, not '1,0'"


def test_a_batch_that_fails_is_its_row_and_the_other_batches_are_timed(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([1, 16 * 16 * 32], np.int64), "shape")  # batch 1 only
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16, 16, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16 * 16 * 32])], [shape])
    path = tmp_path / "flat" / "1" / "model.onnx"
    path.parent.mkdir(parents=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    ok, failed = providers.measure(path, [providers.CPU], batches=(1, 16), repeats=1, warmup=1)
    assert ok["cpu_ms"] > 0 and "error" not in ok
    assert failed["batch"] == 16 and "cpu_ms" not in failed and failed["error"]
    assert f"- flat/1 (batch 16): {failed['error']}" in providers.table([ok, failed])
