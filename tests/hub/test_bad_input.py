"""Bad input for the hub and the data folders: one `error:` line, exit 2, nothing left behind.

Each case builds something hostile or broken (a preset folder, an archive, a catalog,
a server answer, an image folder) and runs the real command line on it: in process
through `kzoo.cli.main(argv)` for most cases (TensorFlow is imported once), and as
real `python -m kzoo.cli` subprocesses for a few. Every case asserts exit status 2,
exactly one line on stderr, starting `error:`, no traceback, and that no file was
added to KZOO_HOME (lock files aside) or to the folder the command writes to.
"""

import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kzoo import cli

SHA = "ab" * 32
ROOT = Path(__file__).resolve().parents[2]


# --- builders ----------------------------------------------------------------------

def _meta(files=None, **fields):
    files = {"model.keras": b"m", "inference.keras": b"i"} if files is None else files
    return {"format": "kzoo-preset", "format_version": 1, "name": "bad", "version": "1",
            "task": "t", "files": {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
                                   for n, d in files.items()}, **fields}


def _folder(tmp, metadata, files=None):
    """A preset folder with `metadata` (bytes, or an object written as JSON) and `files`."""
    folder = tmp / "preset"
    folder.mkdir()
    data = metadata if isinstance(metadata, bytes) else json.dumps(metadata).encode()
    (folder / "metadata.json").write_bytes(data)
    for name, content in (files or {}).items():
        (folder / name).write_bytes(content)
    return folder


def _member(name, data=b"", **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def _tar(tmp, *members, lying=None):
    """A .tar.gz of `members`; `lying=(name, size)` appends a header announcing `size`
    bytes that are not there."""
    path = tmp / "preset.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
        if lying:
            info = tarfile.TarInfo(lying[0])
            info.size = lying[1]
            tf.fileobj.write(info.tobuf(tarfile.PAX_FORMAT) + b"\0" * 1024)
    return path


def _preset_members(files=None, **fields):
    files = {"model.keras": b"m", "inference.keras": b"i"} if files is None else files
    return [_member("metadata.json", json.dumps(_meta(files, **fields)).encode()),
            *(_member(n, d) for n, d in files.items())]


def _deep(n):
    return "[" * n + "]" * n


# --- hostile preset folders: `kzoo hub info FOLDER` ----------------------------------

FOLDERS = {
    "not-json": (b"{'format': 1", "not valid JSON"),
    "not-utf8": (b'{"format": "\xff"}', "not UTF-8"),
    "deep-nesting": (_deep(100_000).encode(), "nested deeper than 16"),
    "deep-field": (_meta(config=json.loads(_deep(30))), "nested deeper than 16"),
    "huge-string": (_meta(license="x" * 100_000), "100,000 characters"),
    "huge-file": (b" " * (2 << 20), "more than the 1,048,576 a kzoo JSON file may have"),
    "huge-number": (b'{"format": ' + b"9" * 5000 + b"}", "not valid JSON"),
    "a-list": (b"[1, 2, 3]", "is not kzoo preset metadata"),
    "wrong-format": (_meta(format="other"), "is not kzoo preset metadata"),
    "no-files": ({"format": "kzoo-preset"}, "is not kzoo preset metadata"),
    "files-list": (_meta(files=None) | {"files": ["model.keras"]}, "'files' must be an object"),
    "file-info-string": (_meta() | {"files": {"model.keras": "abc"}}, "should be an object"),
    "no-sha256": (_meta() | {"files": {"model.keras": {"size": 1}}}, "with 'sha256'"),
    "size-string": (_meta() | {"files": {"model.keras": {"sha256": SHA, "size": "1"}}},
                    "'size' is an integer"),
    "file-outside": (_meta() | {"files": {"../../etc/passwd": {"sha256": SHA, "size": 1}}},
                     "relative file name"),
    "format-version-string": (_meta(format_version="1"), "'format_version' must be an integer"),
    "format-version-newer": (_meta(format_version=99), "newer than this kzoo understands"),
    "image-size-string": (_meta(image_size="32"), "'image_size' must be an integer"),
    "name-list": (_meta(name=["x"]), "'name' must be a string"),
    "dataset-object": (_meta(dataset={"path": "/usr"}), "'dataset' must be a string"),
    "inputs-object": (_meta(inputs={"z": 1}), "'inputs' must be a list"),
    "missing-file": (_meta(), "inference.keras is missing"),
}


@pytest.mark.parametrize("case", sorted(FOLDERS))
def test_hostile_preset_folder(case, tmp_path, capsys, kzoo_home):
    metadata, message = FOLDERS[case]
    folder = _folder(tmp_path, metadata)
    _fails(capsys, ["hub", "info", str(folder)], message, tmp_path)


def test_corrupt_files_of_a_preset_folder(tmp_path, capsys, kzoo_home):
    folder = _folder(tmp_path, _meta(), {"model.keras": b"M", "inference.keras": b"i"})
    _fails(capsys, ["hub", "info", str(folder)], "model.keras: sha256 .* does not match", tmp_path)
    (tmp_path / "b").mkdir()
    folder = _folder(tmp_path / "b", _meta(), {"model.keras": b"m", "inference.keras": b"i"})
    _fails(capsys, ["hub", "info", str(folder)], "not a valid .keras model file", tmp_path)


# --- hostile archives: `kzoo hub download ARCHIVE` -------------------------------------

ARCHIVES = {
    "2gib-member": (lambda t: _tar(t, *_preset_members(), lying=("big.bin", 2 << 30)),
                    "budget of a preset"),
    "2gib-listed": (lambda t: _tar(t, _member("metadata.json", json.dumps(
        _meta() | {"files": {"model.keras": {"sha256": SHA, "size": 2 << 30}}}).encode()),
        lying=("model.keras", 2 << 30)), "budget of a preset"),
    "unlisted-script": (lambda t: _tar(t, *_preset_members(), _member("suid.sh", b"#!/bin/sh\n",
                                                                      mode=0o4755)),
                        "'suid.sh': metadata.json does not list it"),
    "symlink": (lambda t: _tar(t, *_preset_members(), _member(
        "evil", type=tarfile.SYMTYPE, linkname="/etc/passwd")), "symbolic link"),
    "hardlink": (lambda t: _tar(t, *_preset_members(), _member(
        "evil", type=tarfile.LNKTYPE, linkname="metadata.json")), "hard link"),
    "device": (lambda t: _tar(t, *_preset_members(), _member("dev", type=tarfile.CHRTYPE)),
               "not a plain file"),
    "absolute": (lambda t: _tar(t, _member("/tmp/kzoo-evil", b"x")), "absolute path"),
    "dotdot": (lambda t: _tar(t, _member("a/../../kzoo-evil", b"x")), "'..'"),
    "no-metadata": (lambda t: _tar(t, _member("model.keras", b"m")), "no metadata.json"),
    "metadata-too-big": (lambda t: _tar(t, _member("metadata.json", b" " * (2 << 20))),
                         "metadata.json has 2,097,152 bytes"),
    "metadata-hostile": (lambda t: _tar(t, _member("metadata.json", _deep(50_000).encode())),
                         "nested deeper"),
    "size-mismatch": (lambda t: _tar(t, _member("metadata.json", json.dumps(_meta()).encode()),
                                     _member("model.keras", b"mmmm")),
                      "has 4 bytes but metadata.json records 1"),
    "duplicate": (lambda t: _tar(t, *_preset_members(), _member("model.keras", b"m")),
                  "appears twice"),
    "many-entries": (lambda t: _tar(t, *(_member(f"f{i}") for i in range(300))),
                     "more than 256 entries"),
    "junk": (lambda t: (t / "junk.tar.gz").write_bytes(b"junk" * 100) and t / "junk.tar.gz",
             "not a readable preset archive"),
    "empty-zip": (lambda t: (t / "e.zip").write_bytes(b"") or t / "e.zip",
                  "not a readable preset archive"),
    "wrong-content": (lambda t: _tar(t, _member("metadata.json", json.dumps(_meta()).encode()),
                                     _member("model.keras", b"M"), _member("inference.keras", b"i")),
                      "sha256 .* does not match"),
    "zip-escape": (lambda t: _zip(t, "../kzoo-evil"), "'..'"),
}


def _zip(tmp, name):
    path = tmp / "preset.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps(_meta()))
        zf.writestr(name, b"x")
    return path


@pytest.mark.parametrize("case", sorted(ARCHIVES))
def test_hostile_archive(case, tmp_path, capsys, kzoo_home):
    make, message = ARCHIVES[case]
    src = tmp_path / "src"
    src.mkdir()
    path = make(src)
    _fails(capsys, ["hub", "download", str(path)], message, tmp_path)
    assert not Path("/tmp/kzoo-evil").exists()


# --- catalogs, references, URLs: `kzoo hub info|download REF` -------------------------

def _catalog(tmp, monkeypatch, content):
    path = tmp / "catalog.json"
    path.write_text(content if isinstance(content, str) else json.dumps({"presets": [content]}))
    monkeypatch.setenv("KZOO_CATALOG", str(path))


_ENTRY = {"name": "x", "version": "1", "task": "t", "sha256": SHA, "size": 10,
          "url": "https://example.org/x.tar.gz"}
REFERENCES = {
    "catalog-not-json": ("{", ["hub", "list"], "not valid JSON"),
    "catalog-no-list": ('{"presets": {}}', ["hub", "list"], "has no 'presets' list"),
    "catalog-deep": ('{"presets": ' + _deep(10_000) + "}", ["hub", "list"], "nested deeper"),
    "catalog-entry-string": ('{"presets": ["x"]}', ["hub", "list"], "must be a JSON object"),
    "catalog-size-string": (_ENTRY | {"size": "10"}, ["hub", "list"], "'size' must be an integer"),
    "catalog-no-sha": ({k: v for k, v in _ENTRY.items() if k != "sha256"}, ["hub", "list"],
                       "no 'sha256' field"),
    "catalog-bad-name": (_ENTRY | {"name": "../x"}, ["hub", "list"], "'name' must be a string"),
    "catalog-two-locations": (_ENTRY | {"path": "x.tar.gz"}, ["hub", "list"], "exactly one of"),
    "catalog-plain-http": (_ENTRY | {"url": "http://example.org/x.tar.gz"},
                           ["hub", "download", "x"], "refusing plain http"),
    "catalog-missing-file": (_ENTRY | {"path": "nowhere.tar.gz", "url": None},
                             ["hub", "download", "x"], "no such preset archive"),
    "unknown-name": (None, ["hub", "info", "cgan-digit"], "did you mean cgan-digits"),
    "unknown-version": (None, ["hub", "download", "cgan-digits@99"], "has no version '99'"),
    "missing-path": (None, ["hub", "download", "./no/such.tar.gz"], "no such preset"),
    "url-without-sha": (None, ["hub", "download", "https://example.org/p.tar.gz"],
                        "add #sha256"),
    "url-bad-fragment": (None, ["hub", "download", "https://example.org/p.tar.gz#sha256=xyz"],
                         "64 hex digits"),
    "url-scheme": (None, ["hub", "download", "ftp://example.org/p.tar.gz"], "unsupported"),
    "hf-malformed": (None, ["hub", "download", "hf://../x"], "is not an hf://owner/repo"),
    "hub-no-command": (None, ["hub"], "kzoo hub: "),
    "hub-unknown-command": (None, ["hub", "frobnicate"], "invalid choice"),
    "hub-info-no-ref": (None, ["hub", "info"], "the following arguments are required: ref"),
    "hub-extra-argument": (None, ["hub", "list", "--bogus"], "unexpected arguments --bogus"),
}


@pytest.mark.parametrize("case", sorted(REFERENCES))
def test_bad_reference_or_catalog(case, tmp_path, capsys, monkeypatch, kzoo_home):
    catalog, argv, message = REFERENCES[case]
    if catalog is not None:
        if isinstance(catalog, dict):
            catalog = {k: v for k, v in catalog.items() if v is not None}
        _catalog(tmp_path, monkeypatch, catalog)
    monkeypatch.chdir(tmp_path)
    _fails(capsys, argv, message, tmp_path)


def test_offline_and_not_cached(tmp_path, capsys, monkeypatch, kzoo_home):
    _catalog(tmp_path, monkeypatch, _ENTRY)
    monkeypatch.setenv("KZOO_OFFLINE", "1")
    _fails(capsys, ["hub", "download", "x"], "KZOO_OFFLINE=1 and .* is not in the cache", tmp_path)


def test_bad_budget_setting(tmp_path, capsys, monkeypatch, kzoo_home):
    monkeypatch.setenv("KZOO_MAX_PRESET_BYTES", "2GB")
    path = _tar(tmp_path, *_preset_members())
    _fails(capsys, ["hub", "download", str(path)], "KZOO_MAX_PRESET_BYTES='2GB'", tmp_path)


# --- servers that misbehave -----------------------------------------------------------

def test_server_sends_more_than_the_catalog_size(http_server, tmp_path, capsys, monkeypatch,
                                                 kzoo_home):
    root, base = http_server
    (root / "x.tar.gz").write_bytes(b"\0" * 50_000)
    _catalog(tmp_path, monkeypatch, _ENTRY | {"url": f"{base}/x.tar.gz", "size": 1000})
    monkeypatch.setenv("KZOO_ALLOW_HTTP_LOCALHOST", "1")
    _fails(capsys, ["hub", "download", "x"], "announces 50,000 bytes, the catalog records 1,000",
           tmp_path)


@pytest.mark.parametrize("path, message", [
    ("missing.tar.gz", "HTTP 404"),
    ("truncated/x.tar.gz", "truncated|download failed"),
    ("x.tar.gz", "does not match"),
])
def test_server_errors(http_server, tmp_path, capsys, kzoo_home, monkeypatch, path, message):
    root, base = http_server
    (root / "x.tar.gz").write_bytes(b"x" * 1000)
    monkeypatch.setenv("KZOO_ALLOW_HTTP_LOCALHOST", "1")
    _fails(capsys, ["hub", "download", f"{base}/{path}#sha256={SHA}"], message, tmp_path)


# --- unwritable outputs ---------------------------------------------------------------

def test_download_to_a_path_under_a_file(tiny_preset_dir, tmp_path, capsys, kzoo_home):
    from kzoo.hub import archive

    packed = archive.pack(tiny_preset_dir, tmp_path / "src" / "tiny.tar.gz")
    assert cli.main(["hub", "download", str(packed)]) == 0  # cached: only --to can fail now
    capsys.readouterr()
    (tmp_path / "plain").write_text("x")
    _fails(capsys, ["hub", "download", str(packed), "--to", str(tmp_path / "plain" / "p")],
           "cannot write .*plain", tmp_path)


def test_kzoo_home_under_a_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "plain").write_text("x")
    monkeypatch.setenv("KZOO_HOME", str(tmp_path / "plain" / "home"))
    path = _tar(tmp_path, *_preset_members())
    _fails(capsys, ["hub", "download", str(path)], "cannot write .*plain", tmp_path)


# --- data folders: a preset's dataset is never scanned, undecodable images are skipped --

def test_a_preset_dataset_path_is_never_scanned(tiny_preset, monkeypatch):
    from kzoo.data import images
    from kzoo.export.source import resolve

    meta = json.loads((tiny_preset / "metadata.json").read_text())
    (tiny_preset / "metadata.json").write_text(json.dumps(meta | {"dataset": "/usr"}))
    scanned = []
    monkeypatch.setattr(images, "list_images", lambda folder: scanned.append(folder) or [])
    source = resolve(str(tiny_preset))
    assert "data" not in source.metadata and scanned == []
    (tiny_preset / "metadata.json").write_text(json.dumps(meta | {"dataset": "builtin:digits"}))
    assert resolve(str(tiny_preset)).metadata["data"] == "builtin:digits"


def _images(folder, bad):
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(folder / f"{i}.png")
    if bad == "tiff":
        Image.new("RGB", (8, 8)).save(folder / "x.png", format="TIFF")
    elif bad == "truncated":
        buf = io.BytesIO()
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(buf, "JPEG")
        (folder / "x.jpg").write_bytes(buf.getvalue()[:200])
    return folder


@pytest.mark.parametrize("bad", ["tiff", "truncated"])
def test_undecodable_images_are_skipped_and_counted(tmp_path, bad, caplog):
    from kzoo.data import batch_pipeline, load

    data = load(str(_images(tmp_path / "imgs", bad)), image_size=8)
    assert (data.num_examples, data.skipped) == (3, 1)
    assert "skipped 1 unreadable image" in caplog.text
    assert len(list(batch_pipeline(data, 3, repeat=False))) == 1


@pytest.mark.parametrize("spec, message", [
    ("{tmp}/missing", "does not exist"),
    ("{tmp}/file.txt", "is not a folder"),
    ("{tmp}/undecodable", "holds no readable images .*2 file"),
    ("builtin:nope", "unknown builtin dataset"),
])
def test_bad_data_folders(tmp_path, spec, message):
    from kzoo.data import load
    from kzoo.errors import KzooError

    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "undecodable").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "undecodable" / "a.png", format="TIFF")
    (tmp_path / "undecodable" / "b.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(KzooError, match=message):
        load(spec.format(tmp=tmp_path), image_size=8)


# --- a few real subprocesses ------------------------------------------------------------

SUBPROCESSES = {
    "hub-info-deep-metadata": (lambda t: ["hub", "info", str(_folder(t, _deep(100_000).encode()))],
                               "nested deeper"),
    "hub-download-bomb": (lambda t: ["hub", "download", str(_tar(
        t, *_preset_members(), lying=("big.bin", 2 << 30)))], "budget of a preset"),
    "predict-bomb": (lambda t: ["predict", str(_tar(t, *_preset_members(), lying=(
        "big.bin", 2 << 30))), "--out", str(t / "predictions")], "budget of a preset"),
    "export-hostile-metadata": (lambda t: ["export", str(_folder(
        t, _deep(100_000).encode(), {"model.keras": b"m"})), "--out", str(t / "export")],
        "nested deeper"),
}


@pytest.mark.parametrize("case", sorted(SUBPROCESSES))
def test_real_command_line(case, tmp_path):
    make, message = SUBPROCESSES[case]
    home = tmp_path / "home"
    src = tmp_path / "src"
    src.mkdir()
    argv = make(src)
    before = _snapshot(tmp_path)
    env = dict(os.environ, KZOO_HOME=str(home), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "kzoo.cli", *argv], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    _check(proc.returncode, proc.stderr, message)
    assert _snapshot(tmp_path) == before


# --- checks -----------------------------------------------------------------------------

def _snapshot(*roots):
    """Every file under `roots` (cache lock files aside) with its size."""
    return {(str(p), p.stat().st_size) for root in roots if root.exists()
            for p in root.rglob("*") if p.is_file() and p.parent.name != "locks"}


def _check(rc, stderr, message):
    import re

    lines = [line for line in stderr.splitlines() if line.strip()]
    error_lines = [line for line in lines if line.startswith("error:")]
    assert "Traceback" not in stderr, stderr
    assert rc == 2, stderr
    assert len(error_lines) == 1, stderr
    assert re.search(message, error_lines[0]), error_lines[0]
    assert len(error_lines[0]) < 600, error_lines[0]


def _fails(capsys, argv, message, *roots):
    """Run `kzoo ARGV` in process; it must fail with one error line, writing nothing."""
    roots = roots + (Path(os.environ["KZOO_HOME"]),)
    before = _snapshot(*roots)
    capsys.readouterr()
    rc = cli.main(argv)
    out = capsys.readouterr()
    _check(rc, out.err, message)
    others = [line for line in out.err.splitlines() if line.strip() and not line.startswith("error:")]
    assert all(line.startswith("downloading ") for line in others), out.err  # a progress bar
    assert _snapshot(*roots) == before


# --- what killed runs leave, a full disk under --to, permissions --------------------------

def _packed(tiny_preset_dir, tmp_path):
    from kzoo.hub import archive

    return archive.pack(tiny_preset_dir, tmp_path / "src" / "tiny.tar.gz")


def test_leftovers_of_killed_downloads_are_swept_by_the_next_one(tiny_preset_dir, tmp_path, capsys,
                                                                 kzoo_home):
    """kill -9 during a fill leaves `.fill.*` folders beside the entry and a partial file
    in downloads/: the next download of any entry there removes those of dead processes
    (and pid-less ones of older kzoo versions after a day), never a live one's."""
    from kzoo.hub.preset import sha256_file
    from kzoo.io import STALE_SECONDS

    from tests.helpers import dead_pid, leftovers

    packed = _packed(tiny_preset_dir, tmp_path)
    parent = kzoo_home / "presets" / "sha256"
    dead, live = dead_pid(), os.getpid()
    gone = leftovers(parent, f".fill.kzoo-{dead}-abcd1234", f".fill.kzoo-{dead}-efgh5678")
    gone += leftovers(parent, ".fill.k2j3h4g5", age=STALE_SECONDS + 60)
    kept = leftovers(parent, f".fill.kzoo-{live}-abcd1234", ".fill.a1b2c3d4")
    partial = kzoo_home / "downloads" / ".0123456789abcdef.tar.gz.q1w2e3r4.tar.gz"
    partial.parent.mkdir()
    partial.write_bytes(b"half")
    os.utime(partial, (0, 0))
    assert cli.main(["hub", "download", str(packed)]) == 0
    entry = Path(capsys.readouterr().out.strip())
    assert entry == parent / sha256_file(packed)[:16]
    assert not any(p.exists() for p in gone) and not partial.exists()
    assert all(p.exists() for p in kept)
    assert sorted(p.name for p in parent.iterdir()) == sorted([entry.name, *(p.name for p in kept)])
    shutil.rmtree(kept[0])
    gone = leftovers(parent, f".fill.kzoo-{dead}-zzzz9999")  # a cached entry sweeps too
    assert cli.main(["hub", "download", str(packed)]) == 0
    assert not gone[0].exists()


@pytest.mark.parametrize("umask, folder, file", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_cache_entries_and_copies_take_the_umask(tiny_preset_dir, tmp_path, capsys, kzoo_home, umask,
                                                 folder, file):
    from tests.helpers import modes

    packed = _packed(tiny_preset_dir, tmp_path)
    old = os.umask(umask)
    try:
        assert cli.main(["hub", "download", str(packed), "--to", str(tmp_path / "copy")]) == 0
    finally:
        os.umask(old)
    entry = next((kzoo_home / "presets" / "sha256").iterdir())
    for root in (entry, tmp_path / "copy"):
        got = modes(root)
        assert got.pop(".") == folder, root
        assert set(got.values()) == {file}, (root, got)


def test_download_to_a_full_disk_is_one_line_with_the_bytes_it_needs(tiny_preset_dir, tmp_path, capsys,
                                                                      kzoo_home, monkeypatch):
    from kzoo.io import FREE_SPACE_MARGIN_BYTES

    packed = _packed(tiny_preset_dir, tmp_path)
    assert cli.main(["hub", "download", str(packed)]) == 0  # cached: only --to can fail now
    size = sum(p.stat().st_size for p in Path(capsys.readouterr().out.strip()).iterdir())
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=9_400_000))
    monkeypatch.setattr("kzoo.io.FREE_SPACE_CHECK_BYTES", 0)  # the tiny preset is 0.1 MB
    _fails(capsys, ["hub", "download", str(packed), "--to", str(tmp_path / "copy")],
           rf"cannot write .*copy: it needs {size + FREE_SPACE_MARGIN_BYTES:,} bytes free \({size:,} to "
           rf"write \+ {FREE_SPACE_MARGIN_BYTES:,} kept free\) but only 9,400,000 bytes are free on that "
           r"disk \(ENOSPC\)$", tmp_path)
    monkeypatch.undo()
    monkeypatch.setenv("KZOO_HOME", str(kzoo_home))
    real = shutil.copyfile
    calls = []

    def full_after_one(src, dst, **kwargs):  # the disk fills up during the copy
        calls.append(dst)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", full_after_one)
    _fails(capsys, ["hub", "download", str(packed), "--to", str(tmp_path / "copy")],
           r"^error: cannot write .*copy/[a-z_.]+: No space left on device \(ENOSPC\)$", tmp_path)
    assert len(calls) == 2 and not (tmp_path / "copy").exists()
