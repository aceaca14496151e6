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
    assert set(script.RECIPES) >= {"dcgan", "wgan_gp", "cgan"}
    catalog = tmp_path / "catalog.json"
    argv = ["cgan", "--run", f"cgan={tiny_run}", "--dest", str(tmp_path / "presets"),
            "--catalog", str(catalog)]
    assert script.main(argv) == 0
    entry = json.loads(catalog.read_text())["presets"][0]
    assert entry["name"] == "cgan-digits" and entry["path"] == "presets/cgan-digits-1.tar.gz"
    assert script.main([*argv, "--max-mb", "0.001"]) == 2  # too big: refused, not cataloged
    assert not (tmp_path / "presets" / "cgan-digits-1.tar.gz").exists()
    trained = []
    monkeypatch.setattr(script, "train", lambda recipe, runs, extra: trained.append(recipe) or tiny_run)
    assert script.main(["dcgan", "--dest", str(tmp_path / "presets"), "--catalog", str(catalog)]) == 0
    assert trained == ["dcgan"]
