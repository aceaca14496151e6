"""Export end to end: every model of the zoo, layout, versions, atomicity."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import keras
import pytest

from kzoo.errors import KzooError
from kzoo.export import ParityError, export
from kzoo.zoo import create_model, list_models, tiny_overrides
from tests.export.common import image_model, save_preset, save_run, tiny_cgan


def _one_entry_per_class():
    """Entry points of the zoo, one per model class (the tiny sizes make them the same)."""
    seen = {}
    for name in list_models():
        seen.setdefault(type(create_model(name, **tiny_overrides(name))).__name__, name)
    return sorted(seen.values())


@pytest.mark.parametrize("name", _one_entry_per_class())
def test_every_model_of_the_zoo_exports_with_parity(tmp_path, name):
    model = create_model(name, **tiny_overrides(name))
    results = export(model, name=name.replace("_", "-"), out=tmp_path)
    parts = model.inference_parts()
    assert len(results) == len(parts)
    for r, (endpoint, part) in zip(results, parts.items()):
        info = json.loads((r.path / "kzoo.json").read_text())
        assert info["endpoint"] == endpoint and r.version == 1
        assert [e["name"] for e in info["inputs"]] == [t.name for t in keras.tree.flatten(part.input)]
        assert all(e["shape"][0] is None for e in info["inputs"] + info["outputs"])  # dynamic batch
        for fmt in ("savedmodel", "onnx"):
            for case in ("random", "data"):
                for out, f in info["parity"][fmt][case].items():
                    if "mismatch_fraction" in f:  # integer outputs (segmentation labels)
                        assert f["mismatch_fraction"] <= 0.01, (fmt, case, out, f)
                    else:
                        assert f["max_rel"] <= 1e-4, (fmt, case, out, f)
        assert (r.path / "saved_model.pb").is_file() and (r.path / "model.onnx").is_file()
        assert (r.path.parent / "config.pbtxt").is_file()
    assert (tmp_path / "models.config").is_file()


def test_run_dir_versions_force_and_fp16(tmp_path):
    run = save_run(tmp_path / "run", tiny_cgan(), "cgan")
    out = tmp_path / "export"
    (first,) = export(run, out=out, fp16=True)
    assert first.path == out / "cgan" / "1" and first.info["opset"] == 17
    assert first.info["metadata"]["recipe"] == "cgan"
    fp16 = first.info["parity"]["onnx_fp16"]["random"]["image"]
    assert 0 < fp16["max_rel"] < 1e-2  # its own (coarser) figure
    assert "latents" in first.info["parity_inputs"]["data"]
    (second,) = export(run, out=out, formats="onnx")
    assert second.version == 2 and not (second.path / "saved_model.pb").exists()
    with pytest.raises(KzooError, match="already exists"):
        export(run, out=out, version=1)
    (forced,) = export(run, out=out, version=1, force=True, formats=["savedmodel"])
    assert not (forced.path / "model.onnx").exists()  # really replaced
    assert sorted(p.name for p in (out / "cgan").iterdir()) == ["1", "2", "config.pbtxt"]


def test_image_model_from_a_preset_uses_real_data_and_dynamic_sizes(tmp_path):
    preset = save_preset(tmp_path / "fcn", image_model(), {"data": "builtin:digits", "image_size": 8})
    (r,) = export(preset, out=tmp_path / "export", image_signature=True)
    assert r.info["dynamic"] == {"batch": True, "spatial": True,
                                 "spatial_size": {"base": 8, "multiple": 2}}
    assert r.info["parity_inputs"]["data"] == "4 images of builtin:digits"
    assert r.info["parity"]["onnx"]["data"]["restored"]["max_rel"] <= 1e-4
    assert r.info["signatures"] == ["serving_default", "serving_images"]


def test_untraceable_dynamic_sizes_fall_back_to_the_base_size(tmp_path):
    (r,) = export(image_model(upsample="bilinear"), name="fcn", out=tmp_path, formats="onnx")
    assert r.info["dynamic"]["spatial"] is False
    assert r.info["dynamic"]["spatial_fixed"].startswith("32x32: the graph cannot be traced")
    assert r.info["inputs"][0]["shape"] == [None, 32, 32, 1]
    assert r.info["parity"]["onnx"]["random"]["restored"]["max_rel"] <= 1e-4


def test_parity_failure_leaves_nothing(tmp_path):
    with pytest.raises(ParityError, match=r"onnx \(random inputs\) image: max error"):
        export(tiny_cgan(), name="cgan", out=tmp_path, tolerance=1e-15)
    assert list((tmp_path / "cgan").iterdir()) == []
    assert not (tmp_path / "models.config").exists()


class TwoWay(keras.Model):
    """A CycleGAN-shaped owner: two endpoints."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.ab, self.ba = image_model(name="ab"), image_model(name="ba")

    def inference_parts(self):
        return {"generator_ab": self.ab, "generator_ba": self.ba}


def test_several_endpoints_become_models_sharing_a_version(tmp_path):
    (tmp_path / "cyc_generator_ba" / "4").mkdir(parents=True)
    results = export(TwoWay(), name="cyc", out=tmp_path, formats="onnx")
    assert [(r.name, r.version) for r in results] == [("cyc_generator_ab", 5), ("cyc_generator_ba", 5)]
    assert all((r.path / "model.onnx").is_file() for r in results)


def test_bad_arguments(tmp_path):
    with pytest.raises(KzooError, match="unknown export format"):
        export(tiny_cgan(), out=tmp_path, formats="tflite")
    with pytest.raises(KzooError, match="include onnx"):
        export(tiny_cgan(), out=tmp_path, formats="savedmodel", fp16=True)
    with pytest.raises(KzooError, match="opset"):
        export(tiny_cgan(), out=tmp_path, opset=99)
    assert not list(tmp_path.glob("*/[0-9]*"))


def test_kill_9_mid_export_leaves_no_version(tmp_path):
    run = save_run(tmp_path / "run", tiny_cgan(), "cgan")
    out = tmp_path / "export"
    script = textwrap.dedent(f"""
        import sys, time
        from kzoo.export import export

        def log(msg):
            if "savedmodel:" in msg:  # the SavedModel is written; ONNX is next
                print("READY", flush=True)
                time.sleep(120)

        export({str(run)!r}, out={str(out)!r}, log=log)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert proc.stdout.readline().strip() == "READY"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    staged = [p.name for p in (out / "cgan").iterdir()]
    assert len(staged) == 1 and staged[0].startswith(".staging-1-")  # a dead half-export, hidden
    (r,) = export(run, out=out, formats="onnx")
    assert r.version == 1 and sorted(p.name for p in (out / "cgan").iterdir()) == ["1", "config.pbtxt"]
