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
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
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
_UMASK = os.umask(0o022)
os.umask(_UMASK)
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
    """The one `error: ...` line a command prints for `error` (a `KzooError`, or an
    output-side disk error wherever it was met), or None for anything else (a bug)."""
    if isinstance(error, KzooError):
        return f"error: {error}"
    disk = as_output_error(error)
    if disk is None:
        return None
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
        raise KzooError(f"cannot write {path}: it needs {nbytes / 1e6:.1f} MB but only "
                        f"{free / 1e6:.1f} MB are free on that disk (ENOSPC)")


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
        os.fchmod(fd, 0o666 & ~_UMASK)  # as open() would create it (mkstemp makes it 0600)
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
