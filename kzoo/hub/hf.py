"""`hf://owner/repo[@revision]`: repositories on the Hugging Face Hub.

Downloads need no Hugging Face client: kzoo fetches the files over HTTPS with its own
download code (`kzoo.hub.cache.download`: atomic, size-bounded, sha256-checked) using
the Hub's HTTP layout as `huggingface_hub` itself uses it (read in huggingface_hub 2.4.0):

- the endpoint: `constants.py`, `ENDPOINT = os.getenv("HF_ENDPOINT",
  "https://huggingface.co").rstrip("/")` -- `HF_ENDPOINT` points kzoo at a mirror (or,
  in the tests, at 127.0.0.1) exactly as it does huggingface_hub;
- the revision and file list: `hf_api.py`, `HfApi.model_info`: GET
  `{ENDPOINT}/api/models/{repo_id}/revision/{quote(revision, safe='')}` with `blobs=True`
  (its `files_metadata`); `ModelInfo` reads `sha` (the commit the revision resolves to)
  and `siblings`, each `{"rfilename", "size", "blobId", "lfs": {"size", "sha256",
  "pointerSize"}}` (`lfs` only for files stored with Git LFS);
- a file: `constants.py`, `HUGGINGFACE_CO_URL_TEMPLATE = ENDPOINT +
  "/{repo_id}/resolve/{revision}/{filename}"`, filled by `file_download.py` `hf_hub_url`
  with `quote(revision, safe="")` and `quote(filename)`.

Every download is pinned: the revision is resolved to a commit first and the files are
read at that commit; each file's sha256 is checked against the one the Hub lists (LFS
files) and against its pin from an earlier download (`kzoo.hub.cache.pinned`, trust on
first use). A reference without a revision uses the commit its main branch resolved to
on the first download.

`upload` (`kzoo hub publish hf://...`) does use `huggingface_hub` (authentication,
commits); it is imported only there.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import urllib.parse
from pathlib import Path

from kzoo.errors import KzooError

_REF = re.compile(r"hf://([A-Za-z0-9][A-Za-z0-9._-]*)/([A-Za-z0-9][A-Za-z0-9._-]*)(?:@([A-Za-z0-9._/-]+))?")
COMMIT = re.compile(r"[0-9a-f]{40}")
DEFAULT_ENDPOINT = "https://huggingface.co"  # huggingface_hub constants.py _HF_DEFAULT_ENDPOINT
DEFAULT_REVISION = "main"  # huggingface_hub constants.py DEFAULT_REVISION
MAX_INFO_BYTES = 16 << 20
WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def client():
    """The `huggingface_hub` module (for `upload` only)."""
    try:
        return importlib.import_module("huggingface_hub")
    except ImportError:
        raise KzooError("publishing to hf:// needs the huggingface_hub package: "
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


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def file_url(repo_id: str, revision: str, filename: str) -> str:
    return (f"{endpoint()}/{repo_id}/resolve/{urllib.parse.quote(revision, safe='')}/"
            f"{urllib.parse.quote(filename)}")


def file_key(repo_id: str, commit: str, filename: str) -> str:
    """The pin of one file: endpoint-independent (a mirror serves the same commit)."""
    return f"hf://{repo_id}@{commit}/{filename}"


def revision_info(repo_id: str, revision: str, tmp: Path) -> dict:
    """The Hub's answer for `repo_id` at `revision`: `{"sha": commit, "siblings": [...]}`."""
    from kzoo.hub import cache, schema

    url = (f"{endpoint()}/api/models/{repo_id}/revision/"
           f"{urllib.parse.quote(revision, safe='')}?blobs=true")
    path = tmp / "model_info.json"
    cache.download(url, path, sha256=None, record=True, progress=False, allow_http=True)
    info = schema.read_json(path, max_bytes=MAX_INFO_BYTES)
    path.unlink()
    sha = info.get("sha") if isinstance(info, dict) else None
    siblings = info.get("siblings") if isinstance(info, dict) else None
    if not isinstance(sha, str) or not COMMIT.fullmatch(sha) or not isinstance(siblings, list) \
            or not all(isinstance(s, dict) and isinstance(s.get("rfilename"), str) for s in siblings):
        raise KzooError(f"{url}: not a Hugging Face model info answer (no commit sha / siblings)")
    if COMMIT.fullmatch(revision) and sha != revision:
        raise KzooError(f"{url}: asked for commit {revision}, the Hub answered {sha}")
    return info


def diffusers_files(siblings, where) -> list[str]:
    """The files the diffusers converter reads (`kzoo.hub.convert.diffusers_folder.read`): the
    UNet's config.json and weights (.safetensors preferred over .bin) and the scheduler's
    scheduler_config.json, in the flat or the pipeline (`unet/`, `scheduler/`) layout."""
    names = {s["rfilename"] for s in siblings}
    unet = "unet/" if "unet/config.json" in names else ""
    weights = next((unet + w for w in WEIGHTS if unet + w in names), None)
    if f"{unet}config.json" not in names or weights is None:
        raise KzooError(f"{where} is not a diffusers model repository: it holds no "
                        f"config.json with {' or '.join(WEIGHTS)} (files: "
                        f"{', '.join(sorted(names)[:12]) or 'none'})")
    files = [f"{unet}config.json", weights]
    scheduler = "scheduler/scheduler_config.json" if unet else "scheduler_config.json"
    return files + ([scheduler] if scheduler in names else [])


def _git_blob_sha1(path: Path) -> str:
    """The git object id of a file (what the Hub lists as `blobId` for non-LFS files)."""
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def catalog_revision(repo_id: str):
    """The commit a catalog entry names for `hf://repo_id` (`upstream.revision`), or None."""
    from kzoo.hub import catalog

    for e in catalog.entries():
        up = e.get("upstream") or {}
        if up.get("source") == f"hf://{repo_id}" and COMMIT.fullmatch(str(up.get("revision"))):
            return up["revision"]
    return None


def download(ref: str, dest: Path, *, pinned=lambda key: None, progress=True):
    """Download `ref` into the new folder `dest`: a kzoo preset (`kzoo hub publish`, a
    repository with metadata.json) whole, a diffusers repository the files its conversion
    reads (`diffusers_files`).

    The revision is `ref`'s own, else the commit a catalog entry names for the repository,
    else the commit recorded on its first download, else `main`.

    Args:
        ref: `hf://owner/repo[@revision]`.
        pinned: `key -> recorded value or None` (`kzoo.hub.cache.pinned`).
        progress: draw progress bars.

    Returns:
        `(source, new pins)`: the source as `hf://owner/repo@commit`, and the pins to record
        once the conversion succeeded (trust on first use, `kzoo.hub.cache.record`):
        `hf://owner/repo@commit/FILE` -> sha256 for files read for the first time, and
        `hf://owner/repo` -> commit when a diffusers repository was resolved without a
        revision for the first time.
    """
    from kzoo.hub import cache
    from kzoo.hub.preset import sha256_file

    repo_id, revision = parse(ref)
    revision = revision or catalog_revision(repo_id) or pinned(f"hf://{repo_id}")
    first_use = revision is None
    dest = Path(dest)
    dest.mkdir(parents=True)
    info = revision_info(repo_id, revision or DEFAULT_REVISION, dest)
    commit, new = info["sha"], {}
    siblings = {s["rfilename"]: s for s in info["siblings"]}
    if "metadata.json" in siblings:  # a kzoo preset: every file (metadata.json checks them)
        wanted = sorted(n for n in siblings if not n.startswith(".") and "/." not in n)
    else:
        wanted = diffusers_files(info["siblings"], f"hf://{repo_id}@{commit}")
        if first_use:
            new[f"hf://{repo_id}"] = commit
    for name in wanted:
        sibling, key = siblings[name], file_key(repo_id, commit, name)
        lfs = sibling.get("lfs") if isinstance(sibling.get("lfs"), dict) else {}
        listed, pin = lfs.get("sha256"), pinned(key)
        if pin and listed and pin != listed:
            raise KzooError(f"{key}: the Hub lists sha256 {listed}, the one recorded on its first "
                            f"download is {pin}; nothing was downloaded")
        size = lfs.get("size", sibling.get("size"))
        url = file_url(repo_id, commit, name)
        local = dest / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise KzooError(f"{url}: unsafe file name {name!r} in the repository listing")
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            cache.download(url, local, sha256=pin or listed, record=not (pin or listed),
                           size=size if isinstance(size, int) else None, progress=progress,
                           allow_http=True)
        except KzooError as e:
            if pin and "does not match" in str(e):
                raise KzooError(f"{key}: the file changed since its first download (its sha256 "
                                f"was recorded as {pin}); nothing was converted") from None
            raise
        blob = sibling.get("blobId")
        if not lfs and isinstance(blob, str) and _git_blob_sha1(local) != blob:
            raise KzooError(f"{url}: the file is not the one commit {commit} holds (git blob "
                            f"{blob}); the download was discarded")
        if pin is None:
            new[key] = sha256_file(local)
    return f"hf://{repo_id}@{commit}", new


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
