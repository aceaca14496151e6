import json
import zipfile

import keras
import numpy as np
import pytest

from kzoo.card import ModelCard
from kzoo.errors import KzooError
from kzoo.hub.preset import ChecksumError, build_preset, check_keras_file, sha256_file, verify


def test_preset_holds_every_file_with_its_sha256(tiny_preset_dir, tiny_run):
    names = sorted(p.name for p in tiny_preset_dir.iterdir())
    assert names == ["README.md", "inference.keras", "metadata.json", "model.keras", "samples.png"]
    meta = verify(tiny_preset_dir)
    for name, info in meta["files"].items():
        assert info["sha256"] == sha256_file(tiny_preset_dir / name)
        assert info["size"] == (tiny_preset_dir / name).stat().st_size
    run_meta = json.loads((tiny_run / "model" / "metadata.json").read_text())
    assert meta["name"] == "tiny-cgan" and meta["model_class"] == "ConditionalGAN"
    assert meta["task"] == "class-conditional-image-generation"
    assert meta["metrics"] == run_meta["metrics"] and "frechet_distance" in meta["metrics"]
    assert meta["image_size"] == 8 and meta["dataset"] == "builtin:digits"
    assert meta["config"]["model"]["width"] == 4 and meta["changed_from_paper"]["width"] == 4
    assert {"kzoo_version", "keras_version", "tensorflow_version", "license"} <= set(meta)
    card = ModelCard.from_dict(meta["card"])  # the trained model's own card
    assert card == keras.saving.load_model(tiny_run / "model" / "model.keras").card()
    (generator,) = card.endpoints
    assert [t.name for t in generator.inputs] == ["z", "label"]
    assert generator.outputs[0].range == (-1.0, 1.0) and generator.outputs[0].shape == (8, 8, 1)
    assert not {"inputs", "outputs", "value_ranges"} & set(meta)  # the card says it once
    assert meta["command"].startswith("python -m kzoo.recipes.cgan --preset quick")
    assert "--out" not in meta["command"]
    last = sorted((tiny_run / "samples").glob("*.png"))[-1]
    assert (tiny_preset_dir / "samples.png").read_bytes() == last.read_bytes()


def test_a_preset_published_before_cards_still_has_one(kzoo_home):
    """Shipped presets' metadata.json has no card: their loaded model declares it."""
    from kzoo.hub import loader

    assert "card" not in loader.metadata("srresnet-photos")
    card = loader.card("srresnet-photos")
    assert card.task == "super-resolution" and card.endpoint("generator").size_multiple == 1


def test_tampered_file_is_refused(tiny_preset):
    path = tiny_preset / "inference.keras"
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ChecksumError, match="inference.keras: sha256"):
        verify(tiny_preset)


def test_refuses_a_run_that_is_not_finished(tmp_path):
    with pytest.raises(KzooError, match="not a finished kzoo run"):
        build_preset(tmp_path, tmp_path / "out", name="x")


def test_refuses_bad_names_and_existing_destination(tiny_run, tiny_preset):
    with pytest.raises(KzooError, match="preset name"):
        build_preset(tiny_run, tiny_preset.parent / "y", name="../Bad")
    with pytest.raises(KzooError, match="already exists"):
        build_preset(tiny_run, tiny_preset, name="tiny-cgan")


def _lambda_model(path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(path)
    return path


def test_lambda_layers_are_refused(tmp_path):
    path = _lambda_model(tmp_path / "lambda.keras")
    with pytest.raises(KzooError, match="Lambda layer"):
        check_keras_file(path)


def test_keras_safe_mode_refuses_lambda_even_without_the_scan(tmp_path, tiny_preset, monkeypatch):
    """Belt and braces: with kzoo's own scan disabled, loading still runs no code."""
    from kzoo.hub import loader, preset

    _lambda_model(tiny_preset / "inference.keras")
    meta = json.loads((tiny_preset / "metadata.json").read_text())
    meta["files"]["inference.keras"]["sha256"] = sha256_file(tiny_preset / "inference.keras")
    (tiny_preset / "metadata.json").write_text(json.dumps(meta))
    monkeypatch.setattr(preset, "check_keras_file", lambda path: None)
    with pytest.raises(KzooError, match="cannot be loaded safely"):
        loader.load(str(tiny_preset))


def _rewrite(src, dst, config=None, extra=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "config.json" and config is not None:
                data = json.dumps(config(json.loads(data))).encode()
            zout.writestr(name, data)
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return dst


def test_foreign_modules_and_extra_entries_are_refused(tiny_preset_dir, tmp_path):
    src = tiny_preset_dir / "inference.keras"

    def foreign(cfg):
        cfg["module"] = "os"
        return cfg

    with pytest.raises(KzooError, match="only use Keras and kzoo"):
        check_keras_file(_rewrite(src, tmp_path / "a.keras", config=foreign))
    with pytest.raises(KzooError, match="unexpected entries"):
        check_keras_file(_rewrite(src, tmp_path / "b.keras", extra={"payload.pkl": b"\x80\x04"}))
    check_keras_file(src)  # the genuine file passes


def test_loaded_parts_match_the_run(tiny_run, tiny_preset_dir):
    from kzoo.hub import load

    gen = load(str(tiny_preset_dir))
    run_gen = keras.saving.load_model(tiny_run / "model" / "inference.keras")
    x = [np.ones((2, 4), "float32"), np.array([1, 2], "int32")]
    np.testing.assert_allclose(gen.predict(x, verbose=0), run_gen.predict(x, verbose=0), atol=1e-6)
    full = load(str(tiny_preset_dir), part="full")
    assert type(full).__name__ == "ConditionalGAN" and full.g_optimizer is None
    run_full = keras.saving.load_model(tiny_run / "model" / "model.keras")
    for a, b in zip(full.weights, run_full.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # no optimizer state (the run's file has it), and ready to compile
    assert any("optimizer" in k for k in _h5_keys(tiny_run / "model" / "model.keras"))
    assert not any("optimizer" in k for k in _h5_keys(tiny_preset_dir / "model.keras"))
    full.compile(g_optimizer=keras.optimizers.Adam(1e-4), d_optimizer=keras.optimizers.Adam(1e-4))
    with pytest.raises(KzooError, match="part must be"):
        load(str(tiny_preset_dir), part="weights")


def _h5_keys(keras_file):
    import io
    import zipfile

    import h5py

    keys = []
    with zipfile.ZipFile(keras_file) as zf:
        with h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as f:
            f.visit(keys.append)
    return keys


def test_local_paths_stay_out_of_the_preset():
    from kzoo.hub.preset import LOCAL_PATH, _command, _portable

    cfg = {"argv": ["/x/kzoo/recipes/srgan.py", "--stage", "srgan", "--init-from", "/runs/a",
                    "--out", "/runs/b", "--data=/data/photos", "--preset", "quick"]}
    assert _command("srgan", cfg) == ("python -m kzoo.recipes.srgan --stage srgan --init-from "
                                      f"{LOCAL_PATH} --data={LOCAL_PATH} --preset quick")
    assert _portable({"init_from": "/runs/a", "data": "builtin:photos", "rates": [1, "/x"]}) == \
        {"init_from": LOCAL_PATH, "data": "builtin:photos", "rates": [1, LOCAL_PATH]}


def test_full_model_is_saved_without_training_state(tmp_path):
    """CycleGAN's fake-image pools are emptied like the optimizer slots; the weights stay."""
    from kzoo.hub.preset import _save_uncompiled
    from kzoo.zoo import create_model, tiny_overrides

    model = create_model("cyclegan", **tiny_overrides("cyclegan"))
    fakes = np.ones((3, 16, 16, 3), "float32")
    model.pool_a(fakes, seed_generator=keras.random.SeedGenerator(0))
    assert int(model.pool_a.count.numpy()) == 3
    model.save(tmp_path / "run.keras")
    _save_uncompiled(tmp_path / "run.keras", tmp_path / "preset.keras")
    loaded = keras.saving.load_model(tmp_path / "preset.keras")
    assert int(loaded.pool_a.count.numpy()) == 0 and not loaded.pool_a.images.numpy().any()
    for a, b in zip(model.generator_ba.weights, loaded.generator_ba.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
