import sys

import pytest

from kzoo.errors import KzooError
from kzoo.hub import hf


def test_parse_and_cache_key():
    assert hf.parse("hf://owner/repo") == ("owner/repo", None)
    assert hf.parse("hf://owner/repo@v1.2") == ("owner/repo", "v1.2")
    assert hf.cache_key("hf://owner/repo@refs/pr/1") == "hf/owner/repo/refs_pr_1"
    for bad in ("hf://owner", "hf://../x", "hf://owner/repo@..", "https://owner/repo"):
        with pytest.raises(KzooError, match="hf://owner/repo"):
            hf.parse(bad)


def test_missing_client_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(KzooError, match="pip install huggingface_hub"):
        hf.client()


def test_publishing_to_a_revision_is_refused(tmp_path):
    with pytest.raises(KzooError, match="drop @main"):
        hf.upload(tmp_path, "hf://owner/repo@main", message="m")
