import json
import sys
import types
from pathlib import Path

import pytest

from kzoo.errors import KzooError
from kzoo.hub import catalog, loader
from kzoo.hub.publish import publish
from kzoo.hub.preset import sha256_file


def test_publish_to_a_folder_is_reproducible_and_loadable(tiny_run, tmp_path, monkeypatch):
    entry = publish(tiny_run, name="tiny-cgan", to=tmp_path / "out")
    path = Path(entry["path"])
    assert path.name == "tiny-cgan-1.tar.gz" and entry["sha256"] == sha256_file(path)
    assert entry["size"] == path.stat().st_size and entry["metrics"]["frechet_distance"] == 123.25
    first = path.read_bytes()
    with pytest.raises(KzooError, match="already exists"):
        publish(tiny_run, name="tiny-cgan", to=tmp_path / "out")
    publish(tiny_run, name="tiny-cgan", to=tmp_path / "out", overwrite=True)
    assert path.read_bytes() == first  # same run, same bytes
    catalog.add_entry(tmp_path / "catalog.json", entry)
    monkeypatch.setenv("KZOO_CATALOG", str(tmp_path / "catalog.json"))
    assert loader.load("tiny-cgan").output_shape == (None, 8, 8, 1)


def test_publish_to_hf_with_a_fake_client(tiny_run, monkeypatch):
    uploads = {}

    class HfApi:
        def create_repo(self, repo_id, repo_type=None, exist_ok=False):
            assert exist_ok
            uploads[repo_id] = []

        def upload_folder(self, repo_id, folder_path, repo_type=None, commit_message=None):
            uploads[repo_id] = sorted(p.name for p in Path(folder_path).iterdir())
            assert json.loads((Path(folder_path) / "metadata.json").read_text())["name"] == "tiny"

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(HfApi=HfApi))
    entry = publish(tiny_run, name="tiny", to="hf://someone/tiny")
    assert entry["url"] == "hf://someone/tiny"
    assert uploads["someone/tiny"] == ["README.md", "inference.keras", "metadata.json",
                                       "model.keras", "samples.png"]
    with pytest.raises(KzooError, match="not a revision"):
        publish(tiny_run, name="tiny", to="hf://someone/tiny@main")
