"""kzoo.runtime: onnxruntime and OpenVINO run the same exported model.onnx alike; the recorded
choice is the default; bad or missing runtimes are one line."""

import builtins
import json

import numpy as np
import pytest
from PIL import Image

from kzoo.cli import main
from kzoo.errors import KzooError
from kzoo.export import export
from kzoo.infer import OnnxModel, measure_runtimes, predict
from kzoo.runtime import default_runtime, record_runtime
from tests.export.common import fcn, tiny_cgan


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    export(tiny_cgan(), name="cgan", out=root, formats="savedmodel,onnx")
    export(fcn(channels=3), name="fcn", out=root, formats="onnx")
    return root


def test_openvino_equals_onnxruntime(exported):
    pytest.importorskip("openvino")
    rng = np.random.default_rng(0)
    feeds = {"z": rng.standard_normal((3, 8)).astype("float32"), "label": np.array([0, 5, 9], "int32")}
    ort, ov = (OnnxModel(exported / "cgan", runtime=r) for r in ("ort", "openvino"))
    assert (ort.runtime, ov.runtime, ov.provider) == ("ort", "openvino", "OpenVINO CPU")
    np.testing.assert_allclose(ov.run(**feeds)["image"], ort.run(**feeds)["image"], atol=1e-5)
    x = rng.uniform(-1, 1, (2, 8, 6, 3)).astype("float32")  # dynamic batch and size
    a, b = (OnnxModel(exported / "fcn", runtime=r).run(image=x) for r in ("ort", "openvino"))
    np.testing.assert_allclose(b["restored"], a["restored"], atol=1e-5)


def test_predict_on_every_runtime_writes_the_same_images(exported, tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("tensorflow")
    Image.fromarray(np.arange(8 * 6 * 3, dtype=np.uint8).reshape(8, 6, 3)).save(tmp_path / "in.png")
    images = {}
    for runtime in ("ort", "openvino", "savedmodel"):
        (out,) = predict(exported / "cgan", out=tmp_path / runtime, num=1, runtime=runtime)
        images[runtime] = np.asarray(Image.open(out)).astype(int)
    assert np.abs(images["openvino"] - images["ort"]).max() <= 1
    assert np.abs(images["savedmodel"] - images["ort"]).max() <= 1
    with pytest.raises(KzooError, match="no SavedModel"):
        predict(exported / "fcn", [tmp_path / "in.png"], tmp_path / "x", runtime="savedmodel")


def test_the_recorded_runtime_is_the_default(exported, tmp_path):
    pytest.importorskip("openvino")
    import shutil

    version = tmp_path / "fcn" / "1"
    shutil.copytree(exported / "fcn" / "1", version)
    assert default_runtime(version) == "ort" and OnnxModel(version).runtime == "ort"
    medians, best = measure_runtimes(version, repeats=2, warmup=1)  # an ONNX-only export
    assert set(medians) == {"ort", "openvino"} and default_runtime(version) == best
    record_runtime(version, "openvino", medians)
    assert OnnxModel(version).runtime == "openvino"
    assert OnnxModel(version, runtime="ort").runtime == "ort"  # asked for: the option wins
    from kzoo.serving.repository import Servable

    assert Servable(version).backend == "openvino" and Servable(version, "onnx").backend == "onnx"
    (version / "runtime.json").write_text(json.dumps({"runtime": "tensorrt"}))
    with pytest.raises(KzooError, match="is not a runtime record"):
        OnnxModel(version)


def test_bad_runtime_is_one_line_exit_2(exported, tmp_path, capsys):
    assert main(["predict", str(exported / "cgan"), "--runtime", "tvm", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: 'tvm'" in err[0], err
    assert main(["serve", str(exported), "--runtime", "ort", "--backend", "savedmodel"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "disagree" in err[0], err
    with pytest.raises(KzooError, match="unknown runtime 'tvm'"):
        OnnxModel(exported / "cgan", runtime="tvm")


def test_openvino_missing_is_one_clear_line(exported, tmp_path, monkeypatch, capsys):
    real = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    assert main(["predict", str(exported / "cgan"), "--runtime", "openvino", "--num", "1",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'kzoo[openvino]'" in err[0], err


def test_export_pick_runtime_records_the_faster(tmp_path, capsys):
    pytest.importorskip("openvino")
    from tests.export.common import save_run

    run = save_run(tmp_path / "run", tiny_cgan(), "cgan")
    assert main(["export", str(run), "--out", str(tmp_path / "export"), "--pick-runtime"]) == 0
    version = tmp_path / "export" / "cgan" / "1"
    record = json.loads((version / "runtime.json").read_text())
    assert set(record["median_ms"]) == {"ort", "openvino", "savedmodel"}  # every runtime timed
    assert record["runtime"] == min(record["median_ms"], key=record["median_ms"].get)
    assert f"runs on {record['runtime']} by default" in capsys.readouterr().err
    from kzoo.infer import open_model

    assert open_model(version).runtime == record["runtime"]  # what kzoo predict opens
    # the SavedModel recorded as fastest: what runs the ONNX file takes the faster ONNX runtime
    record_runtime(version, "savedmodel", {"ort": 2.0, "openvino": 1.0, "savedmodel": 0.5})
    assert open_model(version).runtime == "savedmodel" and OnnxModel(version).runtime == "openvino"
    record_runtime(version, "savedmodel", {"savedmodel": 0.5})
    assert OnnxModel(version).runtime == "ort"


def test_a_recorded_runtime_that_cannot_run_here_falls_back_to_one_that_can(exported, tmp_path, monkeypatch):
    """An export copied to a machine without OpenVINO: the fastest other runtime it timed."""
    import importlib.util
    import shutil

    version = tmp_path / "cgan" / "1"
    shutil.copytree(exported / "cgan" / "1", version)
    record_runtime(version, "openvino", {"openvino": 1.0, "savedmodel": 2.0, "ort": 3.0})
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    assert default_runtime(version) == "savedmodel" and default_runtime(version, onnx=True) == "ort"
    assert OnnxModel(version).runtime == "ort"
