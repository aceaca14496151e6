"""hf:// through the real code path, against a 127.0.0.1 server that answers like the Hub.

The server mimics the two endpoints `kzoo.hub.hf` reads (the layout huggingface_hub uses,
cited there): `/api/models/{repo_id}/revision/{revision}?blobs=true` -> `{"sha", "siblings"}`
(LFS files with their sha256), and `/{repo_id}/resolve/{revision}/{filename}`, which
redirects LFS files elsewhere as the Hub redirects them to its CDN. `HF_ENDPOINT` points
kzoo at it, as it points huggingface_hub.
"""

import hashlib
import http.server
import json
import sys
import threading
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

import kzoo.hub
from kzoo import cli
from kzoo.errors import KzooError
from kzoo.hub import cache, catalog, convert, hf, loader

FIXTURE = Path(__file__).parents[1] / "fixtures" / "reference" / "diffusers" / "no_attention_centered"
CIFAR = "google/ddpm-cifar10-32"
CIFAR_COMMIT = next(e["upstream"]["revision"] for e in catalog.entries() if e["name"] == "ddpm-cifar10-32")
LFS_SUFFIXES = (".safetensors", ".bin")


def _commit(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


class Hub:
    """The repositories the server holds: {repo_id: {"refs": {name: commit},
    "commits": {commit: {filename: bytes}}}}; `tamper` replaces what is served for a
    filename without changing the listing (a corrupted mirror); `log` records requests."""

    def __init__(self):
        self.repos, self.tamper, self.log = {}, {}, []

    def add(self, repo_id, files, *, commit=None, ref="main"):
        commit = commit or _commit(f"{repo_id}{len(self.log)}{sorted(files)}{len(self.repos)}")
        repo = self.repos.setdefault(repo_id, {"refs": {}, "commits": {}})
        repo["commits"][commit] = dict(files)
        if ref:
            repo["refs"][ref] = commit
        return commit

    def resolve(self, repo_id, revision):
        repo = self.repos.get(repo_id)
        if repo is None:
            return None
        commit = repo["refs"].get(revision, revision)
        return commit if commit in repo["commits"] else None

    def info(self, repo_id, commit):
        siblings = []
        for name, body in sorted(self.repos[repo_id]["commits"][commit].items()):
            s = {"rfilename": name, "size": len(body),
                 "blobId": hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()}
            if name.endswith(LFS_SUFFIXES):
                s["lfs"] = {"size": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                            "pointerSize": 134}
            siblings.append(s)
        return {"id": repo_id, "sha": commit, "siblings": siblings}


def _handler(hub):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code, body=b"", headers=()):
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
            hub.log.append(self.path)
            if parts[:2] == ["api", "models"] and len(parts) == 6 and parts[4] == "revision":
                repo_id = f"{parts[2]}/{parts[3]}"
                commit = hub.resolve(repo_id, parts[5])
                if commit is None:
                    return self._send(404, b'{"error": "Repository Not Found"}')
                assert urllib.parse.parse_qs(url.query) == {"blobs": ["true"]}
                return self._send(200, json.dumps(hub.info(repo_id, commit)).encode())
            if len(parts) >= 5 and parts[2] in ("resolve", "cdn"):
                repo_id, revision, name = f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
                commit = hub.resolve(repo_id, revision)
                files = hub.repos[repo_id]["commits"].get(commit, {}) if commit else {}
                if name not in files:
                    return self._send(404, b"Entry not found")
                if parts[2] == "resolve" and name.endswith(LFS_SUFFIXES):  # the Hub's CDN redirect
                    return self._send(302, headers=[("Location", self.path.replace("/resolve/", "/cdn/", 1))])
                return self._send(200, hub.tamper.get(name, files[name]))
            return self._send(404, b"not found")

    return Handler


@pytest.fixture
def hub(monkeypatch):
    """A Hub on 127.0.0.1, reached through HF_ENDPOINT; huggingface_hub made unimportable
    (downloads must not need it)."""
    state = Hub()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    yield state
    server.shutdown()
    server.server_close()


def _fixture_files(prefix=""):
    files = {p.name: p.read_bytes() for p in FIXTURE.iterdir()}
    if not prefix:
        return files
    return {"unet/config.json": files["config.json"],
            "unet/diffusion_pytorch_model.safetensors": files["diffusion_pytorch_model.safetensors"],
            "scheduler/scheduler_config.json": files["scheduler_config.json"],
            "model_index.json": b'{"_class_name": "DDPMPipeline"}'}


def _pins(kzoo_home):
    path = kzoo_home / "upstream" / "sha256.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _cached_files(kzoo_home):
    return [p for p in (kzoo_home / "presets").rglob("*") if p.is_file()] \
        if (kzoo_home / "presets").exists() else []


def _convert_cli(capsys, *argv):
    code = cli.main(["hub", "convert", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_parse_and_cache_key():
    assert hf.parse("hf://owner/repo") == ("owner/repo", None)
    assert hf.parse("hf://owner/repo@v1.2") == ("owner/repo", "v1.2")
    assert hf.cache_key("hf://owner/repo@refs/pr/1") == "hf/owner/repo/refs_pr_1"
    for bad in ("hf://owner", "hf://../x", "hf://owner/repo@..", "https://owner/repo"):
        with pytest.raises(KzooError, match="hf://owner/repo"):
            hf.parse(bad)


def test_urls_follow_huggingface_hubs_layout(monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert hf.file_url("google/ddpm-cifar10-32", "refs/pr/1", "unet/config.json") == \
        "https://huggingface.co/google/ddpm-cifar10-32/resolve/refs%2Fpr%2F1/unet/config.json"
    monkeypatch.setenv("HF_ENDPOINT", "https://mirror.example/")
    assert hf.endpoint() == "https://mirror.example"


def test_the_catalog_commit_is_resolved_downloaded_pinned_converted_and_checked(hub, kzoo_home, tmp_path,
                                                                               capsys):
    """`kzoo hub convert hf://google/ddpm-cifar10-32` without huggingface_hub: the catalog's
    commit (not main), only the files the converter reads, every sha256 pinned; a second run
    is checked against the pins; a changed file is refused with nothing cached."""
    files = _fixture_files()
    files["README.md"] = b"# model card\n"
    files["diffusion_pytorch_model.bin"] = b"not read: the .safetensors file is preferred"
    hub.add(CIFAR, files, commit=CIFAR_COMMIT, ref=None)
    hub.add(CIFAR, {"README.md": b"a newer main"})  # main has moved on: the catalog's commit is read
    code, out, err = _convert_cli(capsys, f"hf://{CIFAR}", "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert sorted(p.split("?")[0] for p in hub.log) == sorted([
        f"/api/models/{CIFAR}/revision/{CIFAR_COMMIT}",
        f"/{CIFAR}/resolve/{CIFAR_COMMIT}/config.json",
        f"/{CIFAR}/resolve/{CIFAR_COMMIT}/diffusion_pytorch_model.safetensors",
        f"/{CIFAR}/cdn/{CIFAR_COMMIT}/diffusion_pytorch_model.safetensors",
        f"/{CIFAR}/resolve/{CIFAR_COMMIT}/scheduler_config.json"])
    pins = _pins(kzoo_home)
    names = ("config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json")
    assert pins == {f"hf://{CIFAR}@{CIFAR_COMMIT}/{n}": hashlib.sha256(files[n]).hexdigest() for n in names}
    assert err.count("recorded (trust on first use") == 3
    meta = json.loads((tmp_path / "a" / "metadata.json").read_text())
    assert meta["upstream"]["source"] == f"hf://{CIFAR}@{CIFAR_COMMIT}"
    assert meta["upstream"]["trust_on_first_use"] and meta["model_class"] == "DDPM"
    # the converted network is the fixture's, as a conversion of the local folder gives it
    local = convert.convert(FIXTURE, out=tmp_path / "local")
    a, b = (kzoo.hub.load(str(p), part="full") for p in (tmp_path / "a", local))
    assert len(a.weights) == len(b.weights) > 10
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

    # a second run: checked against the pins, nothing new recorded
    hub.log.clear()
    code, _, err = _convert_cli(capsys, f"hf://{CIFAR}", "--out", str(tmp_path / "b"))
    assert code == 0 and "recorded" not in err and _pins(kzoo_home) == pins

    # the file served changes (the listing does not): refused in one line, nothing cached
    hub.tamper["scheduler_config.json"] = files["scheduler_config.json"].replace(b"100", b"200")
    code, out, err = _convert_cli(capsys, f"hf://{CIFAR}", "--out", str(tmp_path / "c"))
    errors = [line for line in err.splitlines() if "error" in line.lower() or "Trace" in line]
    assert code == 2 and len(errors) == 1 and err.rstrip().endswith(errors[0]), err  # (and progress bars)
    assert "scheduler_config.json: the file changed since its first download" in err
    assert not (tmp_path / "c").exists() and _pins(kzoo_home) == pins
    with pytest.raises(KzooError, match="changed since its first download"):
        kzoo.hub.load("ddpm-cifar10-32", progress=False)
    assert _cached_files(kzoo_home) == []
    # the LFS weights: their listed sha256 is checked even on a first download
    hub.tamper = {"diffusion_pytorch_model.safetensors": b"x" * len(files["diffusion_pytorch_model.safetensors"])}
    (kzoo_home / "upstream" / "sha256.json").unlink()
    with pytest.raises(KzooError, match="does not match the expected"):
        kzoo.hub.load(f"hf://{CIFAR}", progress=False)
    assert _cached_files(kzoo_home) == [] and _pins(kzoo_home) == {}


def test_a_repository_without_a_commit_pins_the_one_main_resolves_to_first(hub, kzoo_home, tmp_path):
    """A catalog entry "pinned on first download" (and a bare hf:// reference): the first
    download records the commit main resolves to, later ones read that commit."""
    repo = "google/ddpm-cat-256"
    assert catalog.lookup("ddpm-cat-256")["upstream"]["revision"] == catalog.PIN_ON_FIRST_DOWNLOAD
    first = hub.add(repo, _fixture_files(prefix="unet/"))  # the pipeline layout
    model = kzoo.hub.load("ddpm-cat-256", progress=False)
    assert model is not None
    pins = _pins(kzoo_home)
    assert pins[f"hf://{repo}"] == first
    assert set(pins) == {f"hf://{repo}"} | {f"hf://{repo}@{first}/{n}" for n in (
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json")}
    meta = kzoo.hub.metadata("ddpm-cat-256")
    assert meta["name"] == "ddpm-cat-256" and meta["upstream"]["source"] == f"hf://{repo}@{first}"
    assert meta["upstream"]["load"] == "ddpm-cat-256"
    hub.add(repo, {"README.md": b"main moved"})
    hub.log.clear()
    convert.convert(f"hf://{repo}", out=tmp_path / "again", progress=False)
    assert hub.log[0].split("?")[0] == f"/api/models/{repo}/revision/{first}"
    # an explicit revision is the user's: resolved as asked
    with pytest.raises(KzooError, match="not a diffusers model repository"):
        convert.convert(f"hf://{repo}@main", out=tmp_path / "main", progress=False)


def test_a_kzoo_preset_published_on_the_hub_is_installed_whole(hub, tiny_preset_dir, kzoo_home):
    files = {str(p.relative_to(tiny_preset_dir)): p.read_bytes()
             for p in tiny_preset_dir.rglob("*") if p.is_file()}
    files[".gitattributes"] = b"*.keras filter=lfs\n"
    hub.add("someone/tiny", files, ref="v1")
    folder = loader.fetch("hf://someone/tiny@v1")
    assert folder.parts[-3:] == ("someone", "tiny", "v1") and not (folder / ".gitattributes").exists()
    assert kzoo.hub.load("hf://someone/tiny@v1").output_shape == (None, 8, 8, 1)
    assert "hf://someone/tiny" not in _pins(kzoo_home)  # a preset's revision is not pinned
    with pytest.raises(KzooError, match="HTTP 404"):
        loader.fetch("hf://someone/missing")
    with pytest.raises(KzooError, match="not an hf://owner/repo"):
        loader.fetch("hf://../etc")


def test_bad_answers_are_one_line(hub, kzoo_home, tmp_path):
    hub.add("someone/empty", {"README.md": b"x"})
    with pytest.raises(KzooError, match=r"not a diffusers model repository.*files: README.md"):
        convert.convert("hf://someone/empty", out=tmp_path / "x", progress=False)
    # a pin that the Hub's listing contradicts is refused before anything is downloaded
    files = _fixture_files()
    commit = hub.add("someone/ddpm", files)
    cache.pin(f"hf://someone/ddpm@{commit}/diffusion_pytorch_model.safetensors", "0" * 64)
    hub.log.clear()
    with pytest.raises(KzooError, match="the Hub lists sha256 .* recorded on its first download is 0+;"):
        convert.convert(f"hf://someone/ddpm@{commit}", out=tmp_path / "y", progress=False)
    assert not any("safetensors" in p for p in hub.log)
    # a non-LFS file that is not the commit's blob
    body = files["config.json"]
    hub.tamper["config.json"] = body[:-1] + (b" " if body[-1:] != b" " else b"\n")  # same size
    with pytest.raises(KzooError, match="not the one commit .* holds"):
        kzoo.hub.load(f"hf://someone/ddpm@{commit}", progress=False)
    assert _cached_files(kzoo_home) == []


def test_offline_the_convert_command_ends_in_one_line_at_the_download(monkeypatch, capsys, tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    code, out, err = _convert_cli(capsys, f"hf://{CIFAR}", "--out", str(tmp_path / "x"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: http://127.0.0.1:{port}/api/models/{CIFAR}/revision/{CIFAR_COMMIT}")
    assert "download failed" in err and not (tmp_path / "x").exists()


def test_publishing_needs_the_client_and_says_so(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(KzooError, match="pip install huggingface_hub"):
        hf.upload(tmp_path, "hf://owner/repo", message="m")


def test_publishing_to_a_revision_is_refused(tmp_path):
    with pytest.raises(KzooError, match="drop @main"):
        hf.upload(tmp_path, "hf://owner/repo@main", message="m")
