"""Preset archives: reproducible `.tar.gz` / `.zip` packing and safe extraction.

A preset archive holds the preset's files at its root (an archive whose files sit
in one top-level folder is accepted too). Extraction refuses anything that could
write outside the destination or smuggle in something that is not a plain file:
absolute paths, `..` components, symbolic and hard links, devices and FIFOs. It
writes only metadata.json and the files that it lists, at the sizes it records,
within a size budget (`max_preset_bytes()`, 2 GiB unless `KZOO_MAX_PRESET_BYTES`
says otherwise): a small archive cannot unpack into a huge file, and an archive
cannot leave an unlisted file (a script, say) in the cache.
Packing is reproducible: sorted entries, fixed timestamps, owners and modes, so
the same files always give the same archive bytes (and sha256).
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from kzoo.errors import KzooError
from kzoo.hub import schema
from kzoo.io import (atomic_path, check_free_space, current_umask, is_output_error, output_error,
                     publish_dir, temp_dir)

SUFFIXES = (".tar.gz", ".tgz", ".zip")
_EPOCH = 315532800  # 1980-01-01, the earliest time a zip entry can hold
DEFAULT_MAX_PRESET_BYTES = 2 << 30
MAX_ENTRIES = 4 * schema.MAX_FILES  # files and folders of one archive


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
    os.chmod(archive, 0o644 & ~current_umask())  # mkstemp made it private; an archive is for sharing
    return archive


def _check_name(archive, name):
    if not name or "\\" in name:
        raise KzooError(f"{archive}: refusing entry {name!r} (empty name or backslash)")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise KzooError(f"{archive}: refusing entry {name!r}: absolute path")
    if ".." in path.parts:
        raise KzooError(f"{archive}: refusing entry {name!r}: '..' points outside the preset")


def max_preset_bytes() -> int:
    """The extraction budget of one preset: `KZOO_MAX_PRESET_BYTES`, default 2 GiB.

    It bounds every file of a preset and all of them together (the shipped
    presets are under 8 MB each).
    """
    value = os.environ.get("KZOO_MAX_PRESET_BYTES", "")
    if not value:
        return DEFAULT_MAX_PRESET_BYTES
    if not value.isdigit() or int(value) < 1:
        raise KzooError(f"KZOO_MAX_PRESET_BYTES={value!r}: give a positive number of bytes")
    return int(value)


@dataclasses.dataclass
class _Member:
    name: str
    size: int
    is_dir: bool
    ref: object  # the TarInfo / ZipInfo


def _tar_members(archive, tf, budget):
    """The entries of a tar, checked one header at a time: a member over the budget
    is refused before the archive's data past it is even decompressed."""
    members, total = [], 0
    for m in tf:
        _check_name(archive, m.name)
        if m.issym() or m.islnk():
            raise KzooError(f"{archive}: refusing entry {m.name!r}: a "
                            f"{'symbolic' if m.issym() else 'hard'} link (to {m.linkname!r}); "
                            "a preset holds plain files only")
        if not (m.isfile() or m.isdir()):
            raise KzooError(f"{archive}: refusing entry {m.name!r}: not a plain file")
        total += m.size if m.isfile() else 0
        _check_budget(archive, m.name, m.size, total, budget, len(members) + 1)
        members.append(_Member(m.name.rstrip("/"), m.size if m.isfile() else 0, m.isdir(), m))
    return members


def _zip_members(archive, zf, budget):
    members, total = [], 0
    for info in zf.infolist():
        _check_name(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise KzooError(f"{archive}: refusing entry {info.filename!r}: a symbolic link; "
                            "a preset holds plain files only")
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: permissions only
            raise KzooError(f"{archive}: refusing entry {info.filename!r}: not a plain file")
        size = 0 if info.is_dir() else info.file_size
        total += size
        _check_budget(archive, info.filename, size, total, budget, len(members) + 1)
        members.append(_Member(info.filename.rstrip("/"), size, info.is_dir(), info))
    return members


def _check_budget(archive, name, size, total, budget, count):
    if count > MAX_ENTRIES:
        raise KzooError(f"{archive}: more than {MAX_ENTRIES} entries; a preset has a few files")
    if size > budget:
        raise KzooError(f"{archive}: refusing entry {name!r}: {size:,} bytes, over the "
                        f"{budget:,}-byte budget of a preset (KZOO_MAX_PRESET_BYTES)")
    if total > budget:
        raise KzooError(f"{archive}: its files add up to more than the {budget:,}-byte budget "
                        "of a preset (KZOO_MAX_PRESET_BYTES)")


def _plan(archive, members, read):
    """[(member, name in the preset)] of the files to extract: the metadata.json and
    exactly the files it lists, with the sizes it records (`read(member)` reads one)."""
    files = [m for m in members if not m.is_dir]
    names = [m.name for m in files]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise KzooError(f"{archive}: refusing entry {dup!r}: it appears twice")
    by_name = dict(zip(names, files))
    tops = {n.split("/")[0] for n in names}
    prefix = "" if "metadata.json" in by_name or len(tops) != 1 else f"{tops.pop()}/"
    meta_member = by_name.get(f"{prefix}metadata.json")
    if meta_member is None:
        raise KzooError(f"{archive}: not a kzoo preset archive (no metadata.json at its root)")
    if meta_member.size > schema.MAX_METADATA_BYTES:
        raise KzooError(f"{archive}: metadata.json has {meta_member.size:,} bytes (at most "
                        f"{schema.MAX_METADATA_BYTES:,})")
    where = f"{archive}: metadata.json"
    listed = schema.check_metadata(schema.parse_json(read(meta_member), where), where)["files"]
    plan = [(meta_member, "metadata.json")]
    for m in files:
        if m is meta_member:
            continue
        rel = m.name[len(prefix):] if m.name.startswith(prefix) else None
        if rel not in listed:
            raise KzooError(f"{archive}: refusing entry {m.name!r}: metadata.json does not list "
                            "it (a preset archive holds exactly the files its metadata lists)")
        if m.size != listed[rel]["size"]:
            raise KzooError(f"{archive}: entry {m.name!r} has {m.size:,} bytes but metadata.json "
                            f"records {listed[rel]['size']:,}")
        plan.append((m, rel))
    return plan


def _copy(src, target, size):
    """Copy exactly `size` bytes of `src` to the new file `target`, never more."""
    left = size
    with open(target, "xb") as out:
        while left > 0:
            block = src.read(min(left, 1 << 20))
            if not block:
                raise EOFError(f"{target.name}: the archive ends {left:,} bytes early")
            out.write(block)
            left -= len(block)
        if src.read(1):
            raise KzooError(f"{target.name}: holds more than the {size:,} bytes recorded")


def extract(archive, dest, *, budget: int | None = None) -> Path:
    """Extract the preset in `archive` into the new directory `dest`, checking every entry.

    Only metadata.json and the files it lists (with the sizes it records) are
    extracted, each and all together within `budget` bytes (default
    `max_preset_bytes()`); an archive holding anything else, a link, a device, an
    absolute or `..` path is refused. Nothing is written unless every entry passed
    the checks, and `dest` appears complete or not at all (extracted beside it, then
    renamed; the partial folder is removed on every failure).

    Args:
        archive: a `.tar.gz` / `.tgz` / `.zip` file.
        dest: the folder to create.
        budget: the most bytes one preset may extract (default `max_preset_bytes()`).

    Returns:
        The folder holding the preset files (`dest`, or its single top-level folder).

    Example::

        root = extract("cgan-digits-2.tar.gz", cache / "cgan-digits")
    """
    archive, dest = Path(archive), Path(dest)
    budget = budget or max_preset_bytes()
    if dest.exists():
        raise KzooError(f"{dest} already exists")
    tmp = temp_dir(dest.parent, dest.name)
    try:
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    members = _zip_members(archive, zf, budget)
                    _write_plan(archive, tmp, members, lambda m: zf.open(m.ref))
            else:
                with tarfile.open(archive, "r:*") as tf:
                    members = _tar_members(archive, tf, budget)
                    _write_plan(archive, tmp, members, lambda m: tf.extractfile(m.ref))
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, gzip.BadGzipFile, zlib.error,
                NotImplementedError, RuntimeError) as e:  # zip: an unknown method, encryption
            raise KzooError(f"{archive}: not a readable preset archive ({_one_line(e)})") from None
        except OSError as e:
            if is_output_error(e):
                raise output_error(dest, e) from None
            raise KzooError(f"{archive}: not a readable preset archive ({_one_line(e)})") from None
        publish_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return preset_root(dest)


def _one_line(error, limit=200):
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _write_plan(archive, tmp, members, open_member):
    def read_small(m):
        with open_member(m) as f:
            return f.read(schema.MAX_METADATA_BYTES + 1)

    plan = _plan(archive, members, read_small)
    check_free_space(tmp, sum(m.size for m, _ in plan))
    for m, rel in plan:
        target = tmp.joinpath(*PurePosixPath(m.name).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open_member(m) as src:
            try:
                _copy(src, target, m.size)
            except KzooError as e:
                raise KzooError(f"{archive}: {e}") from None


def preset_root(folder) -> Path:
    """`folder`, or its only subfolder when the files were archived inside one."""
    folder = Path(folder)
    if (folder / "metadata.json").is_file():
        return folder
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / "metadata.json").is_file():
        return entries[0]
    return folder
