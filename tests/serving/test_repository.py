"""Servables of an export tree: backends agree, signatures, versions, load failures."""

import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.serving.errors import ServingError
from kzoo.serving.repository import Repository


def test_savedmodel_backend_equals_onnx(export_tree, cgan_inputs):
    pytest.importorskip("tensorflow")
    onnx = Repository(export_tree, "onnx").get("cgan")
    saved = Repository(export_tree, "savedmodel")
    assert sorted(saved.models) == ["cgan"] and "fcn" in saved.failed  # fcn was exported ONNX-only
    assert "no SavedModel" in saved.failed["fcn"][1]
    assert saved.status("fcn")[0]["state"] == "END"
    sm = saved.get("cgan")
    feeds = sm.prepare("serving_default", cgan_inputs)
    np.testing.assert_allclose(sm.run(*feeds)["image"], onnx.run(*onnx.prepare(None, cgan_inputs))["image"],
                               atol=1e-4)


def test_versions_and_signatures(export_tree, cgan_inputs):
    repo = Repository(export_tree, policy=("all",))
    assert repo.names() == ["cgan", "fcn"] and repo.get("cgan").version == 2
    assert repo.get("cgan", "1").version == 1
    with pytest.raises(ServingError, match=r"Specific\(cgan, 3\)"):
        repo.get("cgan", 3)
    fcn = repo.get("fcn")
    assert sorted(fcn.signatures) == ["serving_default", "serving_images"]
    assert [e["name"] for e in fcn.signatures["serving_images"]["inputs"]] == ["image_bytes"]
    with pytest.raises(ServingError, match="serving_nope"):
        fcn.signature("serving_nope")
    cgan = repo.get("cgan")
    out = cgan.finish("serving_images", cgan.run(*cgan.prepare("serving_images", cgan_inputs)))
    assert set(out) == {"image_png_bytes"} and out["image_png_bytes"][0][:4] == b"\x89PNG"


def test_an_empty_or_missing_tree_is_a_clear_error(tmp_path):
    with pytest.raises(KzooError, match="is not a directory"):
        Repository(tmp_path / "nope")
    with pytest.raises(KzooError, match="no servable model"):
        Repository(tmp_path)


def test_truncated_or_mismatched_kzoo_json_is_a_failed_version_with_one_line(export_tree, tmp_path, caplog):
    import json
    import shutil

    from kzoo.serving.repository import Repository

    model = tmp_path / "cgan"
    shutil.copytree(export_tree / "cgan" / "1", model / "1")
    for v in (2, 3):
        shutil.copytree(export_tree / "cgan" / "1", model / str(v))
    text = (model / "2" / "kzoo.json").read_text()
    (model / "2" / "kzoo.json").write_text(text[: len(text) // 2])  # truncated
    info = json.loads(text)
    for e in info["inputs"]:
        del e["role"]
    info["inputs"][0]["name"] = "zz"
    (model / "3" / "kzoo.json").write_text(json.dumps(info))
    caplog.set_level("WARNING", logger="kzoo.serving")
    repo = Repository(tmp_path, policy=("all",))
    rows = {r["version"]: r for r in repo.status("cgan")}
    assert rows["1"]["state"] == "AVAILABLE"
    for v, message in (("2", "is not valid JSON (truncated?)"), ("3", "inputs[0] has no role")):
        assert rows[v]["state"] == "END" and rows[v]["status"]["error_code"] == "UNKNOWN"
        assert message in rows[v]["status"]["error_message"] and "\n" not in rows[v]["status"]["error_message"]
        assert sum(f"{model / v}" in r.getMessage() for r in caplog.records) == 1
    repo.poll()  # reported once, not on every poll
    assert sum(f"{model / '2'}" in r.getMessage() for r in caplog.records) == 1
    info["inputs"] = json.loads(text)["inputs"]
    info["inputs"][0]["name"] = "zz"
    (model / "3" / "kzoo.json").write_text(json.dumps(info))
    repo.poll()
    assert "kzoo.json lists inputs label, zz but model.onnx takes label, z" in repo.failed["cgan"][3]
