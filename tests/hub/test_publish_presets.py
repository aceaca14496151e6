"""scripts/publish_presets.py: publishes runs into a catalog (training itself is the recipes')."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "publish_presets.py"


def _script():
    spec = importlib.util.spec_from_file_location("publish_presets", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_publishes_a_finished_run_into_the_catalog(tiny_run, tmp_path, monkeypatch):
    script = _script()
    from kzoo.recipes.registry import list_recipes

    assert set(script.RECIPES) == set(list_recipes())  # one per family
    catalog = tmp_path / "catalog.json"
    argv = ["cgan", "--run", f"cgan={tiny_run}", "--dest", str(tmp_path / "presets"),
            "--catalog", str(catalog)]
    assert script.main(argv) == 0
    entry = json.loads(catalog.read_text())["presets"][0]
    assert entry["name"] == "cgan-digits" and entry["path"] == "presets/cgan-digits-1.tar.gz"
    assert script.main([*argv, "--max-mb", "0.001"]) == 2  # too big: refused, not cataloged
    assert not (tmp_path / "presets" / "cgan-digits-1.tar.gz").exists()
    trained = []
    monkeypatch.setattr(script, "train",
                        lambda recipe, runs, extra: trained.append(recipe) or [tiny_run])
    assert script.main(["dcgan", "--dest", str(tmp_path / "presets"), "--catalog", str(catalog)]) == 0
    assert trained == ["dcgan"]
    assert script.main(argv) == 0 and trained == ["dcgan"]  # --run alone trains nothing
    assert script.main(["--dest", str(tmp_path / "presets"), "--catalog", str(catalog)]) == 0
    assert trained == ["dcgan", *script.RECIPES]  # no recipe and no --run: all of them


def test_stages_and_hub_flags(tmp_path, monkeypatch):
    script = _script()
    calls = []

    def train_one(recipe, runs, extra):
        calls.append((recipe, extra))
        return tmp_path / f"run{len(calls)}"

    monkeypatch.setattr(script, "train_one", train_one)
    assert script.train("srgan", tmp_path, ["--epochs", "1"]) == [tmp_path / "run1",
                                                                  tmp_path / "run2"]
    hub = script.HUB_ARGS["srgan"]
    assert calls == [("srgan", [*hub, "--stage", "srresnet", "--epochs", "1"]),
                     ("srgan", [*hub, "--stage", "srgan", "--init-from", str(tmp_path / "run1"),
                                "--epochs", "1"])]
    calls.clear()
    script.train("deeplab", tmp_path, [])
    assert calls == [("deeplab", ["--width", "10"])]
    calls.clear()
    script.train("pix2pix", tmp_path, [])  # its quick preset fits the hub as it is
    assert calls == [("pix2pix", [])]


def test_preset_name_follows_recipe_stage_and_data(tmp_path):
    script = _script()
    for recipe, data, config, name in [
            ("wgan_gp", "builtin:digits", {}, "wgan-gp-digits"),
            ("srgan", "builtin:photos", {"stage": "srresnet"}, "srresnet-photos"),
            ("pix2pix", "builtin:photos/gray2color", {}, "pix2pix-gray2color")]:
        (tmp_path / "model").mkdir(exist_ok=True)
        (tmp_path / "model" / "metadata.json").write_text(
            json.dumps({"recipe": recipe, "data": data, "config": config}))
        assert script.preset_name(tmp_path) == name


def test_settings_come_from_recipes_hub_toml(tmp_path):
    from kzoo.recipes.registry import list_recipes

    script = _script()
    assert script.SETTINGS == SCRIPT.parents[1] / "recipes" / "hub.toml"
    assert set(script.RECIPES) <= set(list_recipes()) and script.MAX_MB == 8.0
    assert script.STAGES["srgan"][1] == ["--stage", "srgan", "--init-from", "{previous}"]
    mine = tmp_path / "hub.toml"
    mine.write_text('recipes = ["vae"]\nmax_mb = 2\n[args]\nvae = ["--width", "8"]\n')
    assert script.read_settings(mine) == (("vae",), {"vae": ["--width", "8"]}, {}, 2.0)
    mine.write_text("max_mb = 2\n")
    assert script.read_settings(mine)[0] == tuple(list_recipes())  # no list: every registered recipe


def test_unknown_recipe_is_refused(capsys):
    import pytest

    with pytest.raises(SystemExit):
        _script().main(["segmentation"])
    assert "no recipe named segmentation" in capsys.readouterr().err
