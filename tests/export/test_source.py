import json

import keras
import pytest

from kzoo.errors import KzooError
from kzoo.export.source import export_name, resolve
from tests.export.common import carded, fcn, image_card, image_model, save_preset, save_run, tiny_cgan


def test_run_directory(tmp_path):
    run = save_run(tmp_path / "run", tiny_cgan(), "cgan")
    src = resolve(run)
    assert src.name == "cgan" and list(src.parts) == ["generator"]  # a run: its recipe
    assert src.card.names == ["generator"]
    assert src.metadata["data"] == "builtin:digits" and type(src.model).__name__ == "ConditionalGAN"


def test_run_without_a_trained_model(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "config.json").write_text(json.dumps({"recipe": "dcgan"}))
    with pytest.raises(KzooError, match=r"no trained model .*model\.keras is missing.*--resume"):
        resolve(tmp_path / "run")


def test_preset_and_keras_file(tmp_path):
    preset = save_preset(tmp_path / "fcn-digits", fcn(), {"data": "builtin:digits"})
    src = resolve(preset)
    assert src.name == "fcn-digits" and list(src.parts) == ["model"]
    assert resolve(preset / "model.keras").metadata == {"data": "builtin:digits"}
    tiny_cgan().save(tmp_path / "mine.keras")
    assert resolve(tmp_path / "mine.keras").name == "mine"
    # a kzoo preset exports under its own name, not its recipe's (srresnet-photos vs srgan-photos)
    named = save_preset(tmp_path / "x", fcn(), {"format": "kzoo-preset", "name": "SR ResNet/Photos",
                                                "recipe": "srgan"})
    assert resolve(named).name == "sr-resnet-photos"


def test_export_names():
    assert export_name("srresnet-photos") == "srresnet-photos"
    assert export_name("My Model!") == "my-model" and export_name("__") == "model"


def test_the_card_must_cover_the_endpoints():
    with pytest.raises(KzooError, match="has no model card"):
        resolve(image_model())
    owner = carded({"generator": image_model()}, image_card())  # card says endpoint "model"
    with pytest.raises(KzooError, match=r"declares endpoints \['model'\] but inference_parts\(\) "
                                        r"returns \['generator'\]"):
        resolve(owner)


@pytest.mark.parametrize("make,match", [
    (lambda p: p / "nothing", "does not exist"),
    (lambda p: (p / "notes.txt").write_text("x") and p / "notes.txt", "not a .keras file"),
    (lambda p: p, "neither a run directory"),
    (lambda p: (p / "bad.keras").write_bytes(b"not a zip") and p / "bad.keras", "cannot load"),
])
def test_bad_sources(tmp_path, make, match):
    with pytest.raises(KzooError, match=match):
        resolve(make(tmp_path))


def test_hub_references(tmp_path, monkeypatch):
    from kzoo.hub import archive, fetch

    monkeypatch.setenv("KZOO_HOME", str(tmp_path / "home"))
    src = resolve("dcgan-digits")  # a shipped catalog name, published before cards
    assert list(src.parts) == ["generator"] and src.name == "dcgan-digits"
    assert src.card.task == "unconditional-image-generation"  # from the loaded model
    assert src.metadata["data"] == "builtin:digits" and src.description == "hub preset dcgan-digits"
    packed = archive.pack(fetch("dcgan-digits"), tmp_path / "d.tar.gz")  # an archive file
    assert type(resolve(packed).model).__name__ == "DCGAN"
    with pytest.raises(KzooError, match="unknown preset 'dcgan-digit'; did you mean dcgan-digits"):
        resolve("dcgan-digit")
    with pytest.raises(KzooError, match="does not exist"):
        resolve(str(tmp_path / "no" / "run"))
