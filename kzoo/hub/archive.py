"""Preset archives: reproducible `.tar.gz` / `.zip` packing and safe extraction.

A preset archive holds the preset's files at its root (an archive whose files sit
in one top-level folder is accepted too). Extraction refuses anything that could
write outside the destination or smuggle in something that is not a plain file:
absolute paths, `..` components, symbolic and hard links, devices and FIFOs.
Packing is reproducible: sorted entries, fixed timestamps, owners and modes, so
the same files always give the same archive bytes (and sha256).
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from kzoo.errors import KzooError
from kzoo.io import atomic_path

SUFFIXES = (".tar.gz", ".tgz", ".zip")
_EPOCH = 315532800  # 1980-01-01, the earliest time a zip entry can hold


def is_archive(path) -> bool:
    return str(path).lower().endswith(SUFFIXES)


def pack(src_dir, archive) -> Path:
    """Pack the plain files of `src_dir` (recursively) into `archive`, atomically."""
    src_dir, archive = Path(src_dir), Path(archive)
    if not is_archive(archive):
        raise KzooError(f"{archive}: an archive name must end in {', '.join(SUFFIXES)}")
    files = sorted(p for p in src_dir.rglob("*") if p.is_file() and not p.is_symlink())
    with atomic_path(archive) as tmp:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for p in files:
                    info = zipfile.ZipInfo(p.relative_to(src_dir).as_posix(), (1980, 1, 1, 0, 0, 0))
                    info.external_attr = (stat.S_IFREG | 0o644) << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, p.read_bytes())
        else:
            with open(tmp, "wb") as raw, \
                    gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=_EPOCH) as gz, \
                    tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf:
                for p in files:
                    info = tarfile.TarInfo(p.relative_to(src_dir).as_posix())
                    info.size, info.mtime, info.mode = p.stat().st_size, _EPOCH, 0o644
                    with open(p, "rb") as f:
                        tf.addfile(info, f)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(archive, 0o644 & ~umask)  # mkstemp made it private; an archive is for sharing
    return archive


def _check_name(archive, name):
    if not name or "\\" in name:
        raise KzooError(f"{archive}: refusing entry {name!r} (empty name or backslash)")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise KzooError(f"{archive}: refusing entry {name!r}: absolute path")
    if ".." in path.parts:
        raise KzooError(f"{archive}: refusing entry {name!r}: '..' points outside the preset")


def _tar_members(archive, tf):
    members = []
    for m in tf.getmembers():
        _check_name(archive, m.name)
        if m.issym() or m.islnk():
            raise KzooError(f"{archive}: refusing entry {m.name!r}: a "
                            f"{'symbolic' if m.issym() else 'hard'} link (to {m.linkname!r}); "
                            "a preset holds plain files only")
        if not (m.isfile() or m.isdir()):
            raise KzooError(f"{archive}: refusing entry {m.name!r}: not a plain file")
        members.append(m)
    return members


def _zip_members(archive, zf):
    members = []
    for info in zf.infolist():
        _check_name(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise KzooError(f"{archive}: refusing entry {info.filename!r}: a symbolic link; "
                            "a preset holds plain files only")
        if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise KzooError(f"{archive}: refusing entry {info.filename!r}: not a plain file")
        members.append(info)
    return members


def extract(archive, dest) -> Path:
    """Extract `archive` into the new directory `dest` after checking every entry.

    Nothing is written unless every entry is safe; `dest` appears complete or not
    at all (extracted beside it, then renamed). Returns the folder holding the
    preset files (`dest`, or its single top-level folder).
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise KzooError(f"{dest} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    for info in _zip_members(archive, zf):
                        target = tmp.joinpath(*PurePosixPath(info.filename).parts)
                        if info.is_dir():
                            target.mkdir(parents=True, exist_ok=True)
                            continue
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(info) as src, open(target, "wb") as out:
                            shutil.copyfileobj(src, out)
            else:
                with tarfile.open(archive, "r:*") as tf:
                    members = _tar_members(archive, tf)
                    tf.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, gzip.BadGzipFile) as e:
            raise KzooError(f"{archive}: not a readable preset archive ({e})") from None
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return preset_root(dest)


def preset_root(folder) -> Path:
    """`folder`, or its only subfolder when the files were archived inside one."""
    folder = Path(folder)
    if (folder / "metadata.json").is_file():
        return folder
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / "metadata.json").is_file():
        return entries[0]
    return folder
