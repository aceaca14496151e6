"""Atomic file writes: a crash never leaves a file that looks complete but isn't.

Every write of an output goes through `atomic_path`: the data goes to a temporary
file beside the target (`.NAME.XXXX.SUFFIX`), which is renamed onto the target only
when it is complete and synced. The temporary file is removed on every failure, and
an `OSError` that comes from the output side (a read-only or full disk, a parent
that is a file, no permission) becomes one `KzooError` line naming the path:

    cannot write /data/run/config.json: No space left on device (ENOSPC)

`check_free_space` refuses a write whose size is known before it starts when the
filesystem cannot hold it, and `remove_stale_temps` clears the temporary files that
a process killed mid-write (kill -9, power loss) left behind.

Folders are built the same way: `temp_dir` makes `.NAME.kzoo-PID-XXXXXXXX` beside the
final folder, `publish_dir` renames it into place with the permissions the process
umask gives (`tempfile.mkdtemp` makes it 0700, which would keep a shared export, preset
or cache entry from other users), and `remove_stale_dirs` -- called by `temp_dir`
itself and by the commands that own such folders -- removes the ones whose process
is gone (kill -9 during `kzoo hub convert`, a download or an export).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path

from kzoo.errors import KzooError

# errno values that say "this output cannot be written", not "the data source failed".
OUTPUT_ERRNOS = frozenset(getattr(errno, name) for name in (
    "ENOSPC", "EDQUOT", "EFBIG", "EROFS", "EACCES", "EPERM", "ENOTDIR", "EISDIR", "EEXIST",
    "ENAMETOOLONG", "EIO", "ELOOP", "EINVAL", "EMFILE", "ENFILE") if hasattr(errno, name))
# Writes at least this large check the free space first (smaller ones simply try).
FREE_SPACE_CHECK_BYTES = 1 << 20
# Kept free besides the data itself: a write never fills the disk to its last byte.
FREE_SPACE_MARGIN_BYTES = 16 << 20
# Largest input image (width x height) decoded from a file a user hands in: a
# 15000x15000 PNG of a few MB would take 675 MB to decode (a decompression bomb).
MAX_IMAGE_PIXELS = 1 << 26  # 67 Mpixel, e.g. 8192 x 8192; KZOO_MAX_IMAGE_PIXELS overrides
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}(\.[A-Za-z0-9_]+)*$|.+\.tmp(\.[A-Za-z0-9_.]+)?$")


def output_error(path, error: OSError) -> KzooError:
    """The one-line `KzooError` for an `OSError` met while writing `path`."""
    code = errno.errorcode.get(error.errno or 0)
    reason = error.strerror or str(error) or type(error).__name__
    return KzooError(f"cannot write {path}: {reason}" + (f" ({code})" if code else ""))


def is_output_error(error: BaseException) -> bool:
    """Whether `error` is an `OSError` of the writing side (disk full, read-only, ...),
    as opposed to one of reading a source (a network error, a missing input)."""
    return isinstance(error, OSError) and error.errno in OUTPUT_ERRNOS


def as_output_error(error: BaseException) -> OSError | None:
    """`error` as an output-side `OSError` (see `is_output_error`), or None.

    Besides `OSError`s themselves this recognises the errors of libraries that report
    a failed write in their message only: TensorFlow's file-system errors
    (`ResourceExhaustedError: ...; No space left on device`, "Read-only file system")
    are not `OSError`s.
    """
    if isinstance(error, OSError):
        return error if is_output_error(error) else None
    text = str(error)
    for code in sorted(OUTPUT_ERRNOS):
        reason = os.strerror(code)
        if code not in (errno.EINVAL, errno.EEXIST, errno.EIO) and reason in text:
            return OSError(code, reason)
    return None


def error_line(error: BaseException) -> str | None:
    """The one `error: ...` line a command prints for `error` (a `KzooError`, an
    output-side disk error wherever it was met, or an allocation that failed: see
    `memory_error_line`), or None for anything else (a bug)."""
    if isinstance(error, KzooError):
        return f"error: {error}"
    disk = as_output_error(error)
    if disk is None:
        return memory_error_line(error)
    return f"error: {output_error(getattr(error, 'filename', None) or 'an output file', disk)}"


@contextlib.contextmanager
def writing(path):
    """Turn every `OSError` raised inside the block (which only writes `path`) into
    `output_error(path)`.

    Example:
    >>> with writing("/proc/kzoo-run"):
    ...     os.mkdir("/proc/kzoo-run")
    Traceback (most recent call last):
    kzoo.errors.KzooError: cannot write /proc/kzoo-run: ...
    """
    try:
        yield
    except OSError as e:
        raise output_error(path, e) from None


def make_dirs(path) -> Path:
    """`mkdir -p path`, with a `KzooError` naming `path` when that is impossible."""
    path = Path(path)
    with writing(path):
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        path.mkdir(parents=True, exist_ok=True)
    return path


def check_image_pixels(path, width: int, height: int):
    """Raise `KzooError` if an input image of `width` x `height` is over the pixel budget
    (`MAX_IMAGE_PIXELS`, or the environment's KZOO_MAX_IMAGE_PIXELS), before it is decoded."""
    limit = int(os.environ.get("KZOO_MAX_IMAGE_PIXELS") or MAX_IMAGE_PIXELS)
    if width * height > limit:
        raise KzooError(f"image {path} is {width}x{height} ({width * height / 1e6:.0f} Mpixel), over "
                        f"the {limit / 1e6:.0f} Mpixel limit of input images (KZOO_MAX_IMAGE_PIXELS)")


def check_writable_dir(path) -> Path:
    """Raise `KzooError` unless `path` is a directory this process can write in, or can
    be created as one: checked before any work starts, so that a read-only disk, a
    path through a file, /proc or a missing permission is one line at once instead of
    an error after minutes of work. The check writes (and removes) one empty
    temporary file in `path` or in its closest existing ancestor.

    Example:
    >>> check_writable_dir("/proc/run")
    Traceback (most recent call last):
    kzoo.errors.KzooError: cannot write /proc/run: No such file or directory (ENOENT)
    """
    path = Path(path)
    probe = path.absolute()
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    with writing(path):
        if not probe.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{probe} is not a directory")
        fd, tmp = tempfile.mkstemp(prefix=".kzoo-write-check.", dir=probe)
        os.close(fd)
        os.remove(tmp)
    return path


def check_free_space(path, nbytes: int, *, margin: int = FREE_SPACE_MARGIN_BYTES):
    """Raise `KzooError` if the filesystem of `path` has less than `nbytes` + `margin` free.

    `path` need not exist yet: its closest existing ancestor is measured. Writes
    smaller than `FREE_SPACE_CHECK_BYTES` are not checked.
    """
    if nbytes < FREE_SPACE_CHECK_BYTES:
        return
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return  # cannot measure (e.g. a special filesystem): let the write itself tell
    if free < nbytes + margin:
        raise KzooError(f"cannot write {path}: it needs {nbytes + margin:,} bytes free "
                        f"({nbytes:,} to write + {margin:,} kept free) but only {free:,} bytes "
                        "are free on that disk (ENOSPC)")


@contextlib.contextmanager
def atomic_path(path, suffix="", *, size: int | None = None):
    """Yield a temporary path beside `path`; rename it onto `path` on success.

    The temporary file lives in the same directory (same filesystem), so the final
    `os.replace` is atomic. It is removed on any exception; output-side `OSError`s
    (see `writing`) become a `KzooError` naming `path`.

    Args:
        path: the file to write.
        suffix: the temporary file's suffix (default: `path`'s suffixes, so that
            writers that dispatch on the extension, like Keras, see the right one).
        size: the number of bytes about to be written, if known: checked against
            the free space first.

    Example:
    >>> import tempfile
    >>> run_dir = Path(tempfile.mkdtemp())
    >>> with atomic_path(run_dir / "notes.txt") as tmp:  # model.save(tmp) for a model.keras
    ...     _ = tmp.write_text("done")
    >>> [p.name for p in run_dir.iterdir()], (run_dir / "notes.txt").read_text()
    (['notes.txt'], 'done')
    """
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise KzooError(f"cannot write {path}: it is a directory")
    if size is not None:
        check_free_space(path, size)
    with writing(path):
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=suffix or "".join(path.suffixes), dir=path.parent)
        os.fchmod(fd, 0o666 & ~current_umask())  # as open() would create it (mkstemp makes it 0600)
    os.close(fd)
    try:
        yield Path(tmp)
        with writing(path):
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if is_output_error(e):
            raise output_error(path, e) from None
        raise


def variables_nbytes(*models) -> int:
    """Bytes of the variables of `models` (their optimizers' included, each variable
    once): about what saving or exporting them writes, for `check_free_space`."""
    import numpy as np

    seen = {}
    for model in models:
        optimizer = getattr(model, "optimizer", None)
        for v in [*model.variables, *(getattr(optimizer, "variables", None) or ())]:
            seen[id(v)] = int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
    return sum(seen.values())


def write_bytes(path, data: bytes):
    with atomic_path(path, size=len(data)) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path, text: str):
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_png(path, array):
    """Save a uint8 HxW or HxWxC array as PNG, atomically."""
    from PIL import Image

    import numpy as np

    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    with atomic_path(path, suffix=".png", size=array.nbytes) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def remove_stale_temps(folder, *, older_than: float = 0.0) -> list[Path]:
    """Remove the temporary files of writes that never finished in `folder` (not recursive).

    These are `atomic_path`'s `.NAME.XXXXXXXX[.SUFFIX]` files and `*.tmp*` files, left
    when a process is killed mid-write. Only files last modified more than
    `older_than` seconds ago are removed (a concurrent writer's file is younger).
    Returns the removed paths.

    Example:
    >>> import tempfile
    >>> model_dir = Path(tempfile.mkdtemp())  # before resuming a killed run:
    >>> _ = (model_dir / ".model.keras.k3x9q2ab.keras").write_bytes(b"half a file")
    >>> _ = (model_dir / "model.keras").write_bytes(b"a whole file")
    >>> [p.name for p in remove_stale_temps(model_dir)], [p.name for p in model_dir.iterdir()]
    (['.model.keras.k3x9q2ab.keras'], ['model.keras'])
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for p in folder.iterdir():
        try:
            if not _TEMP_NAME.match(p.name) or not p.is_file() or p.is_symlink() \
                    or now - p.stat().st_mtime < older_than:
                continue
            p.unlink()
            removed.append(p)
        except OSError:
            continue
    return removed


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (the `Umask:`
    line of /proc/self/status, kernel >= 4.7, see proc(5)); elsewhere set and restored
    at once (os.umask has no read-only form)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(root) -> None:
    """Give folder `root` and everything in it the permissions a plain `mkdir`/`open`
    would have given under the process umask: folders (and files executable by their
    owner) 0777 & ~umask, other files 0666 & ~umask. Links are left alone.

    `tempfile.mkdtemp` and `mkstemp` create 0700 / 0600 whatever the umask; a folder
    built in one and published by rename would stay private to its owner.
    """
    mask = current_umask()
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~mask)
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                os.chmod(path, (0o777 if st.st_mode & stat.S_IXUSR else 0o666) & ~mask)


def publish_dir(tmp, final) -> Path:
    """Rename the complete folder `tmp` (from `temp_dir`) onto `final`, with the
    permissions of the process umask (`apply_umask`). As rename(2) does, an empty
    folder `final` is replaced and a non-empty one fails (ENOTEMPTY: one `KzooError`
    line), so two folders are never mixed."""
    final = Path(final)
    with writing(final):
        apply_umask(tmp)
        os.replace(tmp, final)
    return final


# `temp_dir`'s names: `.NAME.kzoo-PID-XXXXXXXX`, the random part being tempfile.mkdtemp's
# 8 characters of "abcdefghijklmnopqrstuvwxyz0123456789_" (CPython Lib/tempfile.py,
# _RandomNameSequence).
TEMP_DIR_NAME = re.compile(r"^\..+\.kzoo-(?P<pid>\d+)-[a-z0-9_]{8}$")
# Folders of a killed process that do not name it (made before temp_dir named its pid)
# are removed once this old: no kzoo write leaves a folder unmodified for a day.
STALE_SECONDS = 24 * 3600


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (one of another user counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


def temp_dir(parent, name: str) -> Path:
    """A new, empty folder `parent/.NAME.kzoo-PID-XXXXXXXX` to build folder
    `parent/NAME` in (same filesystem, so `publish_dir` is one rename). Leftovers of
    killed processes in `parent` are removed first (`remove_stale_dirs`)."""
    parent = make_dirs(parent)
    remove_stale_dirs(parent, legacy=re.compile(rf"^\.{re.escape(name)}\.[a-z0-9_]{{8}}$"))
    with writing(parent / name):
        return Path(tempfile.mkdtemp(prefix=f".{name}.kzoo-{os.getpid()}-", dir=parent))


@contextlib.contextmanager
def scratch_dir(parent, name: str):
    """`temp_dir(parent, name)`, removed with its contents when the block ends."""
    tmp = temp_dir(parent, name)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_dirs(parent, pattern=TEMP_DIR_NAME, *, legacy=None,
                      older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove the temporary folders that killed processes left in `parent` (not recursive).

    A folder whose name matches `pattern` (a regex with a `pid` group) is removed when
    that process no longer runs; one whose pid is alive is a concurrent run's and stays.
    A folder matching `legacy` (a name without a pid) is removed when it was last
    modified more than `older_than` seconds ago. Returns the removed paths.

    Example:
    >>> import tempfile
    >>> parent = Path(tempfile.mkdtemp())
    >>> (parent / ".export.kzoo-999999999-abcdefgh").mkdir()   # no such pid: a killed run's
    >>> [p.name for p in remove_stale_dirs(parent)]
    ['.export.kzoo-999999999-abcdefgh']
    """
    parent = Path(parent)
    removed = []
    try:
        children = list(parent.iterdir())
    except OSError:
        return removed
    now = time.time()
    for p in children:
        try:
            if p.is_symlink() or not p.is_dir():
                continue
            m = pattern.match(p.name)
            if m is not None and m.group("pid") is not None:
                if pid_alive(int(m.group("pid"))):
                    continue
            elif not (m is not None or (legacy is not None and legacy.match(p.name)
                                        and now - p.stat().st_mtime > older_than)):
                continue
        except OSError:
            continue
        shutil.rmtree(p, ignore_errors=True)
        if not p.exists():
            removed.append(p)
    return removed


def memory_bytes() -> int:
    """The memory this process can have at most: the machine's physical memory
    (sysconf SC_PHYS_PAGES x SC_PAGE_SIZE), or its cgroup's limit where that is lower
    (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`; see the Linux kernel's
    Documentation/admin-guide/cgroup-v2.rst). An upper bound: what one step, batch or
    array may need before it certainly cannot run here."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def check_memory(nbytes: int, what: str, hint: str = "") -> None:
    """Raise `KzooError` if `nbytes` (what `what` holds at least) exceed `memory_bytes()`:
    refused in one line before an allocation that cannot succeed (a TensorFlow OOM
    traceback, or the kernel's OOM killer)."""
    limit = memory_bytes()
    if nbytes > limit:
        raise KzooError(f"{what} needs at least {nbytes:,} bytes of memory, more than the "
                        f"{limit:,} bytes this machine has" + (f"; {hint}" if hint else ""))


def memory_error_line(error: BaseException) -> str | None:
    """The one `error: ...` line for an allocation that failed (numpy's MemoryError,
    TensorFlow's `ResourceExhaustedError: OOM when allocating tensor ...`), else None."""
    text = str(error)
    if isinstance(error, MemoryError) or (
            type(error).__name__ == "ResourceExhaustedError" and "OOM when allocating" in text):
        detail = re.search(r"OOM when allocating tensor with shape\[[\d,]*\] and type \w+", text)
        what = detail.group(0) if detail else (text.splitlines() or [type(error).__name__])[0][:200]
        return (f"error: out of memory ({what}); this machine has {memory_bytes():,} bytes: "
                "use smaller sizes or batches")
    return None
