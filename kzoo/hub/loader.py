"""`kzoo.hub.load(ref)`: a preset from the catalog, a path, a URL or hf://, via the cache.

References:

- `NAME` or `NAME@VERSION`: a catalog entry (a packaged archive or an https URL),
  checked against the catalog's sha256;
- a local preset folder, or a `.tar.gz` / `.zip` archive of one;
- `file:///path[#sha256=HEX]`, `https://host/preset.tar.gz#sha256=HEX`;
- `hf://owner/repo[@revision]` (over HTTPS at a pinned commit, see `kzoo.hub.hf`);
- published upstream weights, converted on first use (`kzoo.hub.convert`): a
  junyanz `*.pth` file or its http(s) URL (`#arch=NAME` picks the architecture), a
  diffusers model folder or `hf://` repository, a catalog entry marked `upstream`.

Archives are extracted (after checking every entry) into the cache; every file is
checked against the sha256 recorded in the preset's metadata.json each time it is
loaded, and the models are loaded in Keras safe mode.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from kzoo.errors import KzooError
from kzoo.hub import archive, cache, catalog, hf
from kzoo.hub.preset import MODEL_FILES, ChecksumError, read_metadata, sha256_file, verify


def fetch(ref, *, allow_http: bool = False, progress: bool = True, arch=None) -> Path:
    """The local, verified folder of preset `ref` (downloading it into the cache if needed;
    upstream weights are converted, see `kzoo.hub.convert`; `arch`: their architecture)."""
    from kzoo.hub import convert

    ref = str(ref)
    if ref.startswith("hf://"):
        key = hf.cache_key(ref)
        return cache.install(key, lambda dest: _hf_preset(ref, dest, progress),
                             what=ref, how=f"kzoo hub download {ref}")
    if convert.is_upstream(ref):
        return convert.fetch(ref, arch=arch, progress=progress)
    if ref.startswith("file://"):
        url, digest = cache.split_sha256_fragment(ref)
        return _local(Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path)), digest)
    if ref.startswith(("https://", "http://")):
        url, digest = cache.split_sha256_fragment(ref)
        cache.check_url(url, allow_http=allow_http)
        if not digest:
            raise KzooError(f"{url}: add #sha256=<hex> so the download can be checked "
                            "(kzoo hub publish prints it)")
        return _from_url(f"sha256/{digest[:16]}", url, digest, allow_http, progress,
                         how=f"kzoo hub download '{ref}'")
    if "://" in ref:
        raise KzooError(f"{ref}: unsupported reference (a catalog name, a path, file://, "
                        "https:// or hf://)")
    path = Path(ref).expanduser()
    if path.exists():
        return _local(path, None)
    if os.sep in ref or ref.startswith(".") or archive.is_archive(ref):
        raise KzooError(f"{ref}: no such preset folder or archive")
    entry = catalog.lookup(ref)
    if "upstream" in entry:
        return convert.fetch(ref, arch=arch, progress=progress)
    key = f"{entry['name']}/{entry['version']}-{entry['sha256'][:12]}"
    how = f"kzoo hub download {entry['name']}@{entry['version']}"
    if "path" in entry:
        return cache.install(key, lambda dest: _extract_checked(Path(entry["path"]), entry["sha256"], dest),
                             what=ref, how=how, needs_network=False)
    return _from_url(key, entry["url"], entry["sha256"], allow_http, progress, how=how,
                     size=entry["size"])


def hub_folder(source):
    """The verified local preset folder if `source` is a hub reference that is not a plain
    local folder or `.keras` file (a catalog name, an archive, a URL, hf://); else None.

    `kzoo export` and `kzoo predict` take their sources through this, so every hub
    reference works there as in `kzoo.hub.load`.
    """
    from kzoo.hub import convert

    ref = str(source)
    path = Path(ref).expanduser()
    if "://" in ref or convert.is_upstream(ref):
        return fetch(ref)
    if path.is_dir() or path.suffix == ".keras":
        return None
    if path.is_file():
        return fetch(ref) if archive.is_archive(ref) else None
    if os.sep in ref or ref.startswith(".") or archive.is_archive(ref):
        return None  # a path that does not exist: the caller says so
    return fetch(ref)  # a catalog name (an unknown one: error with the closest names)


def _hf_preset(ref, dest, progress=True):
    """Download hf:// `ref` into `dest`: a kzoo preset as is, a diffusers repository
    converted (its files pinned once the conversion succeeded, see `kzoo.hub.hf`)."""
    from kzoo.hub import convert

    with tempfile.TemporaryDirectory(prefix="kzoo-hf-", dir=Path(dest).parent) as tmp:
        repo = Path(tmp) / "repo"
        source, new = hf.download(ref, repo, pinned=cache.pinned, progress=progress)
        if (repo / "metadata.json").is_file():
            os.replace(repo, dest)
        else:
            convert.convert_local(repo, dest, source=source, name=convert.hf_name(ref),
                                  tofu=bool(new), load_as=ref)
    cache.record(new)


def _extract_checked(path, digest, dest):
    if not path.is_file():
        raise KzooError(f"{path}: no such preset archive")
    if digest and sha256_file(path) != digest:
        raise ChecksumError(f"{path}: sha256 does not match the expected {digest}")
    archive.extract(path, dest)


def _local(path: Path, digest):
    if path.is_dir():
        if digest:
            raise KzooError(f"{path}: #sha256= checks an archive, not a folder")
        root = archive.preset_root(path)
        verify(root)
        return root
    if not path.is_file():
        raise KzooError(f"{path}: no such preset folder or archive")
    digest = digest or sha256_file(path)
    return cache.install(f"sha256/{digest[:16]}", lambda dest: _extract_checked(path, digest, dest),
                         what=str(path), how="", needs_network=False)


def _from_url(key, url, digest, allow_http, progress, *, how, size=None):
    def obtain(dest):
        downloads = cache.home() / "downloads"
        suffix = ".zip" if url.lower().endswith(".zip") else ".tar.gz"
        tmp = downloads / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}{suffix}"
        cache.download(url, tmp, sha256=digest, size=size, allow_http=allow_http,
                       progress=progress)
        try:
            archive.extract(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    return cache.install(key, obtain, what=url, how=how)


def metadata(ref, **kwargs) -> dict:
    """The metadata.json of preset `ref`."""
    return read_metadata(fetch(ref, **kwargs))


def card(ref, **kwargs):
    """The `kzoo.card.ModelCard` of preset `ref`: from its metadata.json, or -- a preset
    published before cards were recorded -- from its full model's `card()`."""
    from kzoo.card import ModelCard, card_of

    meta = metadata(ref, **kwargs)
    if meta.get("card"):
        return ModelCard.from_dict(meta["card"])
    return card_of(load(ref, part="full", compile=False, **kwargs))


def load(ref, *, part: str = "inference", compile: bool = True, **kwargs):
    """Load preset `ref` as a Keras model, in Keras safe mode.

    Args:
        ref: a catalog name (`NAME` or `NAME@VERSION`), a preset folder or archive,
            a `file://` / `https://` URL (`#sha256=HEX`), or `hf://owner/repo`.
        part: `"inference"` (the deployable network, e.g. a GAN's generator) or
            `"full"` (the trainable model with every network, for fine-tuning).
            Presets built by kzoo store the full model uncompiled (no optimizer
            state): compile it with your optimizers (a GAN: `g_optimizer=`,
            `d_optimizer=`) or use a recipe's `--init-from`.
        compile: restore a compile state if the model file holds one.
        **kwargs: `allow_http`, `progress`, `arch` (see `fetch`).

    Returns:
        A `keras.Model`.

    Example::

        generator = kzoo.hub.load("cgan-digits")
        images = generator.predict([z, labels])  # in [-1, 1]
    """
    if part not in MODEL_FILES:
        raise KzooError(f"part must be one of {', '.join(MODEL_FILES)}, got {part!r}")
    root = fetch(ref, **kwargs)
    import keras

    from kzoo import zoo

    zoo._load_all()  # registers kzoo's serializable classes
    path = root / MODEL_FILES[part]
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=compile)
    except (ValueError, TypeError) as e:
        raise KzooError(f"{path}: cannot be loaded safely: {e}") from None


def model_config(ref) -> tuple[str, dict]:
    """`(class name, constructor config)` of preset `ref`'s full model, read from its
    `model.keras` (the archive's `config.json`) without building or loading anything."""
    import zipfile

    from kzoo.hub import schema

    root = fetch(ref)
    path = root / MODEL_FILES["full"]
    try:
        with zipfile.ZipFile(path) as z, z.open("config.json") as f:
            text = f.read(schema.MAX_METADATA_BYTES + 1)
        if len(text) > schema.MAX_METADATA_BYTES:
            raise KzooError(f"{path}: config.json is over {schema.MAX_METADATA_BYTES} bytes")
        record = json.loads(text)
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise KzooError(f"{path}: cannot read the model's config ({e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise KzooError(f"{path}: config.json holds no model config")
    return str(record.get("class_name", "")), record["config"]


def init_weights(model, ref):
    """Copy the weights of preset `ref`'s full model into `model` (fine-tuning start)."""
    src = load(ref, part="full", compile=False)
    if type(src).__name__ != type(model).__name__:
        raise KzooError(f"--init-from {ref}: the preset holds a {type(src).__name__}, this "
                        f"recipe builds a {type(model).__name__}")
    ours, theirs = model.weights, src.weights
    if len(ours) != len(theirs):
        raise KzooError(f"--init-from {ref}: the preset has {len(theirs)} weights, this model "
                        f"{len(ours)} (different architecture options?)")
    for a, b in zip(ours, theirs):
        if tuple(a.shape) != tuple(b.shape):
            raise KzooError(f"--init-from {ref}: weight {a.path} is {tuple(a.shape)} here but "
                            f"{tuple(b.shape)} in the preset (image size, width or latent size "
                            "differ from the preset's config)")
    model.set_weights(src.get_weights())
    return model
