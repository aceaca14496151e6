"""Export end to end: sources, dynamic sizes, layout, versions, atomicity (every model
of the zoo: test_contract.py)."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.export import ParityError, export
from tests.export.common import carded, fcn, image_card, image_model, save_preset, save_run, tiny_cgan


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
    preset = save_preset(tmp_path / "fcn", fcn(), {"data": "builtin:digits", "image_size": 8})
    (r,) = export(preset, out=tmp_path / "export", image_signature=True)
    assert r.info["dynamic"] == {"batch": True, "spatial": True,
                                 "spatial_size": {"base": 8, "multiple": 2}}
    assert r.info["parity_inputs"]["data"] == "4 images of builtin:digits"
    assert r.info["parity"]["onnx"]["data"]["restored"]["max_rel"] <= 1e-4
    assert r.info["signatures"] == ["serving_default", "serving_images"]
    assert r.info["task"] == "image-to-image-translation"


@pytest.mark.parametrize("upsample,size", [("bilinear", None), ("transpose", 8)])
def test_dynamic_sizes_whatever_the_network_was_built_with(tmp_path, upsample, size):
    """A bilinear `UpSampling2D` (untraceable with unknown sizes in Keras 3.15) and a fixed
    `Input` (SRGAN presets, pix2pix) still export with the card's dynamic height/width."""
    from kzoo.infer import OnnxModel

    model = fcn(upsample=upsample, size=size)
    (r,) = export(model, name="fcn", out=tmp_path)
    assert r.info["inputs"][0]["shape"] == [None, None, None, 1] and r.info["dynamic"]["spatial"]
    for fmt in ("savedmodel", "onnx"):
        assert r.info["parity"][fmt]["random"]["restored"]["max_rel"] <= 1e-4
    assert r.info["parity_inputs"]["random"].endswith("sizes [8, 10]")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 12, 6, 1)).astype("float32")
    net = model.inference_parts()["model"]
    if size is None:  # the original network takes it too: compare with it
        np.testing.assert_allclose(OnnxModel(r.path).run(image=x)["restored"], net(x), atol=1e-5)
    else:
        assert OnnxModel(r.path).run(image=x)["restored"].shape == (1, 12, 6, 1)


def test_a_rebuild_that_changes_the_outputs_is_refused(tmp_path, monkeypatch):
    from kzoo.export import dynamic

    monkeypatch.setattr(dynamic.ResizeByFactor, "call", lambda self, x: keras.ops.repeat(
        keras.ops.repeat(x, 2, axis=1), 2, axis=2))  # nearest, not the layer's bilinear
    with pytest.raises(KzooError, match="rebuilt with dynamic height/width differs from the "
                                        "network: restored: max error"):
        export(fcn(upsample="bilinear"), name="fcn", out=tmp_path)


def test_a_model_without_a_card_is_refused(tmp_path):
    with pytest.raises(KzooError, match="has no model card: export needs a model that defines"):
        export(image_model(), name="fcn", out=tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_card_size_the_network_cannot_take_fails_clearly(tmp_path):
    import dataclasses

    card = image_card()
    card = dataclasses.replace(card, endpoints=(dataclasses.replace(card.endpoints[0],
                                                                    size_multiple=1),))
    with pytest.raises(KzooError, match=r"'model' does not run in Keras on image \(1, 9, 9, 1\)"):
        export(carded({"model": image_model()}, card), name="fcn", out=tmp_path)


def test_parity_failure_leaves_nothing(tmp_path):
    with pytest.raises(ParityError, match=r"onnx \(random inputs\) image: max error"):
        export(tiny_cgan(), name="cgan", out=tmp_path, tolerance=1e-15)
    assert not (tmp_path / "cgan").exists()  # the model folder the export made is gone too
    assert not (tmp_path / "models.config").exists()


def two_way():
    """A CycleGAN-shaped owner: two endpoints."""
    import dataclasses

    card = image_card()
    endpoints = tuple(dataclasses.replace(card.endpoints[0], name=n)
                      for n in ("generator_ab", "generator_ba"))
    return carded({"generator_ab": image_model(name="ab"), "generator_ba": image_model(name="ba")},
                  dataclasses.replace(card, endpoints=endpoints))


def test_several_endpoints_become_models_sharing_a_version(tmp_path):
    (tmp_path / "cyc_generator_ba" / "4").mkdir(parents=True)
    results = export(two_way(), name="cyc", out=tmp_path, formats="onnx")
    assert [(r.name, r.version) for r in results] == [("cyc_generator_ab", 5), ("cyc_generator_ba", 5)]
    assert all((r.path / "model.onnx").is_file() for r in results)
    groups = [r.info["group"] for r in results]  # served only once both are published
    assert groups[0] == groups[1] and groups[0]["members"] == ["cyc_generator_ab", "cyc_generator_ba"]


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
