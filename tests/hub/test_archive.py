import hashlib
import io
import json
import os
import shutil
import tarfile
import zipfile

import pytest

from kzoo.errors import KzooError
from kzoo.hub.archive import extract, max_preset_bytes, pack


def _meta(**files):
    """A metadata.json listing `files` ({name: bytes})."""
    return json.dumps({"format": "kzoo-preset", "format_version": 1, "files": {
        name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for name, data in files.items()}}).encode()


def _folder(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    data = os.urandom(100)
    (src / "sub" / "a.bin").write_bytes(data)
    (src / "metadata.json").write_bytes(_meta(**{"sub/a.bin": data}))
    return src


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_pack_is_reproducible_and_round_trips(tmp_path, suffix):
    src = _folder(tmp_path)
    a = pack(src, tmp_path / f"a{suffix}")
    os.utime(src / "metadata.json", (1, 1))  # timestamps do not change the bytes
    b = pack(src, tmp_path / f"b{suffix}")
    assert a.read_bytes() == b.read_bytes()
    out = extract(a, tmp_path / "out")
    assert out == tmp_path / "out"
    assert (out / "sub" / "a.bin").read_bytes() == (src / "sub" / "a.bin").read_bytes()


def test_single_top_level_folder_is_the_preset(tmp_path):
    src = _folder(tmp_path)
    path = tmp_path / "p.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        tf.add(src, arcname="mypreset")
    assert extract(path, tmp_path / "out") == tmp_path / "out" / "mypreset"


def _tar(path, *members):
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name, target, kind):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize("member, message", [
    (_file("/etc/evil"), "absolute path"),
    (_file("../evil"), "'..'"),
    (_file("ok/../../evil"), "'..'"),
    (_link("model.keras", "/etc/passwd", tarfile.SYMTYPE), "symbolic link"),
    (_link("model.keras", "../../outside", tarfile.SYMTYPE), "symbolic link"),
    (_link("model.keras", "/etc/passwd", tarfile.LNKTYPE), "hard link"),
], ids=["absolute", "dotdot", "nested-dotdot", "symlink-abs", "symlink-up", "hardlink"])
def test_tar_escapes_are_refused_and_nothing_is_written(tmp_path, member, message):
    path = _tar(tmp_path / "bad.tar.gz", _file("metadata.json", b"{}"), member)
    with pytest.raises(KzooError, match=message):
        extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.tar.gz"]  # no temp folder left


def test_zip_escapes_are_refused(tmp_path):
    for name, message in (("../evil", "'..'"), ("/abs", "absolute path")):
        path = tmp_path / "bad.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(name, b"x")
        with pytest.raises(KzooError, match=message):
            extract(path, tmp_path / "out")
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("model.keras")
        info.external_attr = (0o120777) << 16  # a symbolic link
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(KzooError, match="symbolic link"):
        extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_not_an_archive(tmp_path):
    path = tmp_path / "junk.tar.gz"
    path.write_bytes(b"not an archive at all")
    with pytest.raises(KzooError, match="not a readable preset archive"):
        extract(path, tmp_path / "out")


def _left(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


def _preset_tar(path, extra=(), **files):
    members = [_file("metadata.json", _meta(**files))] + [_file(n, d) for n, d in files.items()]
    return _tar(path, *members, *extra)


def test_only_listed_files_are_extracted(tmp_path):
    path = _preset_tar(tmp_path / "p.tar.gz", [_file("suid.sh", b"#!/bin/sh\nrm -rf ~\n")],
                       **{"model.keras": b"m" * 10})
    with pytest.raises(KzooError, match="refusing entry 'suid.sh': metadata.json does not list it"):
        extract(path, tmp_path / "out")
    assert _left(tmp_path) == ["p.tar.gz"]
    good = _preset_tar(tmp_path / "good.tar.gz", **{"model.keras": b"m" * 10, "README.md": b"r"})
    out = extract(good, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "metadata.json", "model.keras"]


def test_a_size_other_than_the_recorded_one_is_refused(tmp_path):
    info, _ = _file("model.keras", b"m" * 10)
    meta = _file("metadata.json", _meta(**{"model.keras": b"m" * 3}))
    path = _tar(tmp_path / "p.tar.gz", meta, (info, b"m" * 10))
    with pytest.raises(KzooError, match="'model.keras' has 10 bytes but metadata.json records 3"):
        extract(path, tmp_path / "out")
    assert _left(tmp_path) == ["p.tar.gz"]


def _lying_tar(path, name, size):
    """A small archive whose `name` header announces `size` bytes that are not there."""
    with tarfile.open(path, "w:gz") as tf:
        info, data = _file("metadata.json", _meta(**{"model.keras": b"m"}))
        tf.addfile(info, io.BytesIO(data))
        big = tarfile.TarInfo(name)
        big.size = size
        tf.fileobj.write(big.tobuf(tarfile.PAX_FORMAT))
        tf.fileobj.write(b"\0" * 4096)
    return path


@pytest.mark.parametrize("name", ["model.keras", "unlisted.bin"])
def test_a_2gib_member_is_never_written(tmp_path, name):
    path = _lying_tar(tmp_path / "bomb.tar.gz", name, 2 << 30)
    assert path.stat().st_size < 10_000
    with pytest.raises(KzooError, match=f"'{name}'.*budget|add up to more than the 2,147,483,648"):
        extract(path, tmp_path / "out")
    assert _left(tmp_path) == ["bomb.tar.gz"]


def test_budget_per_member_and_in_total(tmp_path, monkeypatch):
    files = {"model.keras": b"m" * 600, "inference.keras": b"i" * 600}
    path = _preset_tar(tmp_path / "p.tar.gz", **files)
    with pytest.raises(KzooError, match="add up to more than the 1,000-byte budget"):
        extract(path, tmp_path / "out", budget=1000)
    with pytest.raises(KzooError, match="'model.keras': 600 bytes, over the 500-byte budget"):
        extract(path, tmp_path / "out", budget=500)
    monkeypatch.setenv("KZOO_MAX_PRESET_BYTES", "1000")
    assert max_preset_bytes() == 1000
    with pytest.raises(KzooError, match="1,000-byte budget"):
        extract(path, tmp_path / "out")
    monkeypatch.setenv("KZOO_MAX_PRESET_BYTES", "lots")
    with pytest.raises(KzooError, match="KZOO_MAX_PRESET_BYTES='lots'"):
        max_preset_bytes()
    monkeypatch.delenv("KZOO_MAX_PRESET_BYTES")
    assert max_preset_bytes() == 2 << 30
    assert _left(tmp_path) == ["p.tar.gz"]


def test_zip_whose_header_understates_a_member_is_refused(tmp_path):
    data = b"\0" * 100_000
    path = tmp_path / "p.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", _meta(**{"model.keras": b"m" * 10}))
        zf.writestr("model.keras", data)
    with zipfile.ZipFile(path) as zf:
        local, central = zf.getinfo("model.keras").header_offset, zf.start_dir
    raw = bytearray(path.read_bytes())
    raw[local + 22:local + 26] = (10).to_bytes(4, "little")  # local header: uncompressed size
    while True:  # the central directory entry of model.keras
        n, m, k = (int.from_bytes(raw[central + i:central + i + 2], "little") for i in (28, 30, 32))
        if raw[central + 46:central + 46 + n] == b"model.keras":
            break
        central += 46 + n + m + k
    raw[central + 24:central + 28] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(KzooError, match="not a readable preset archive \\(Bad CRC-32"):
        extract(path, tmp_path / "out")
    assert _left(tmp_path) == ["p.zip"]


def test_metadata_must_be_small_valid_and_present(tmp_path):
    for members, message in (
            ([_file("model.keras")], "no metadata.json at its root"),
            ([_file("metadata.json", b" " * (1 << 20) + b"{}")], "metadata.json has 1,048,578 bytes"),
            ([_file("metadata.json", b"[" * 10_000)], "nested deeper"),
            ([_file("metadata.json", b'{"format": "kzoo-preset", "files": {"a": 1}}')],
             "'a' should be an object with sha256"),
            ([_file("metadata.json", _meta()), _file("metadata.json", _meta())], "appears twice"),
            ([_file(f"f{i}") for i in range(300)], "more than 256 entries")):
        path = _tar(tmp_path / "p.tar.gz", *members)
        with pytest.raises(KzooError, match=message):
            extract(path, tmp_path / "out")
        assert _left(tmp_path) == ["p.tar.gz"]


def test_free_space_is_checked_before_extracting(tmp_path, monkeypatch):
    data = os.urandom(2 << 20)
    path = _preset_tar(tmp_path / "p.tar.gz", **{"model.keras": data})
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1 << 20))
    with pytest.raises(KzooError, match=r"needs 18,[\d,]+ bytes free \(2,[\d,]+ to write \+ 16,777,216 "
                                        r"kept free\) but only 1,048,576 bytes are free"):
        extract(path, tmp_path / "out")
    assert _left(tmp_path) == ["p.tar.gz"]
