import io
import os
import tarfile
import zipfile

import pytest

from kzoo.errors import KzooError
from kzoo.hub.archive import extract, pack


def _folder(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "metadata.json").write_text("{}")
    (src / "sub" / "a.bin").write_bytes(os.urandom(100))
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
