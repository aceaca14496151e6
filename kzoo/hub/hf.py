"""`hf://owner/repo[@revision]`: presets on the Hugging Face Hub (optional dependency).

`huggingface_hub` is imported only when an hf:// reference is used.
"""

from __future__ import annotations

import importlib
import re
import shutil

from kzoo.errors import KzooError

_REF = re.compile(r"hf://([A-Za-z0-9][A-Za-z0-9._-]*)/([A-Za-z0-9][A-Za-z0-9._-]*)(?:@([A-Za-z0-9._/-]+))?")


def client():
    try:
        return importlib.import_module("huggingface_hub")
    except ImportError:
        raise KzooError("hf:// references need the huggingface_hub package: "
                        "pip install huggingface_hub") from None


def parse(ref: str):
    """`(repo_id, revision or None)` of `hf://owner/repo[@revision]`."""
    m = _REF.fullmatch(ref)
    if not m or ".." in ref:
        raise KzooError(f"{ref!r} is not an hf://owner/repo[@revision] reference")
    return f"{m[1]}/{m[2]}", m[3]


def cache_key(ref: str) -> str:
    repo_id, revision = parse(ref)
    return f"hf/{repo_id}/{(revision or 'main').replace('/', '_')}"


def download(ref: str, dest):
    """Download the repository's files into the new folder `dest`."""
    repo_id, revision = parse(ref)
    hub = client()
    try:
        hub.snapshot_download(repo_id=repo_id, revision=revision, local_dir=str(dest))
    except Exception as e:  # the client raises its own error types (network, 404, auth)
        raise KzooError(f"{ref}: download from the Hugging Face Hub failed: {e}") from None
    shutil.rmtree(dest / ".cache", ignore_errors=True)  # the client's bookkeeping


def upload(folder, ref: str, *, message: str) -> str:
    """Upload the preset `folder` to the repository of `ref`; returns its hf:// reference."""
    repo_id, revision = parse(ref)
    if revision:
        raise KzooError(f"{ref}: publish to a repository, not a revision (drop @{revision})")
    api = client().HfApi()
    try:
        api.create_repo(repo_id=repo_id, repo_type="model", exist_ok=True)
        api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                          commit_message=message)
    except Exception as e:
        raise KzooError(f"{ref}: upload to the Hugging Face Hub failed: {e}") from None
    return f"hf://{repo_id}"
