"""The download cache (`KZOO_HOME`, default `~/.cache/kzoo`) and safe downloads.

    $KZOO_HOME/presets/<key>/     extracted, verified presets (one folder per source)
    $KZOO_HOME/locks/<key>.lock   fcntl locks: one process fills an entry at a time

A download streams into a temporary file beside its destination while its sha256
is computed, and is renamed into place only when it is complete and matches: a
truncated or corrupted download never looks like a cached file. A download stops
as soon as it exceeds the size it should have (the catalog's, else the server's
Content-Length, else the `KZOO_MAX_PRESET_BYTES` cap): a server cannot fill the disk.
`KZOO_OFFLINE=1` uses only what is already cached.

An entry is filled in `presets/.../.fill.kzoo-PID-XXXXXXXX/` and renamed into place
(`install`, with the umask's permissions); what a killed process
left there and in `downloads/` is removed by the next load of any entry beside it
(`sweep`, `kzoo.io.remove_stale_dirs`).

Only `https://` URLs are fetched from the network. Plain `http://` is allowed for
127.0.0.1 / localhost only, and only when asked for (`allow_http=True` or
`KZOO_ALLOW_HTTP_LOCALHOST=1`, for tests and local mirrors).

Upstream checkpoints (`kzoo.hub.convert`) have no sha256 to check their first download
against: what that download was is recorded (pinned) in

    $KZOO_HOME/upstream/sha256.json   {url or hf:// file: sha256, hf://owner/repo: commit}

once its conversion succeeded (`record`: trust on first use), and every later download
must match it (`download_upstream`, `kzoo.hub.hf.download`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import io
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from kzoo.errors import KzooError
from kzoo.io import (STALE_SECONDS, atomic_path, publish_dir, remove_stale_dirs, remove_stale_temps,
                     scratch_dir, writing)


def home() -> Path:
    return Path(os.environ.get("KZOO_HOME") or Path.home() / ".cache" / "kzoo").expanduser()


def offline() -> bool:
    return os.environ.get("KZOO_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def entry_dir(key: str) -> Path:
    """The cache folder of one preset source (`key` is a safe relative name)."""
    if not re.fullmatch(r"[A-Za-z0-9._@-]+(/[A-Za-z0-9._@-]+)*", key) or ".." in key.split("/"):
        raise KzooError(f"invalid cache key {key!r}")
    return home() / "presets" / key


@contextlib.contextmanager
def lock(key: str, timeout: float = 600.0):
    """Hold an exclusive inter-process lock on cache entry `key`."""
    path = home() / "locks" / (key.replace("/", "__") + ".lock")
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a")
    with f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise KzooError(f"timed out after {timeout:.0f}s waiting for the cache lock "
                                    f"{path} (another kzoo process is downloading)") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def split_sha256_fragment(url: str):
    """`(url without fragment, sha256 or None)` from `...#sha256=<hex>`."""
    base, _, fragment = url.partition("#")
    if not fragment:
        return base, None
    params = urllib.parse.parse_qs(fragment)
    digest = (params.get("sha256") or [None])[0]
    if digest is None or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
        raise KzooError(f"{url}: the URL fragment must be #sha256=<64 hex digits>")
    return base, digest.lower()


def allow_http_default() -> bool:
    return os.environ.get("KZOO_ALLOW_HTTP_LOCALHOST", "") == "1"


def check_url(url: str, *, allow_http: bool = False):
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https":
        return
    if parsed.scheme == "http":
        if parsed.hostname in ("127.0.0.1", "localhost", "::1") and (allow_http or allow_http_default()):
            return
        raise KzooError(f"{url}: refusing plain http (use https; http is allowed for "
                        "localhost only with KZOO_ALLOW_HTTP_LOCALHOST=1)")
    raise KzooError(f"{url}: unsupported URL scheme {parsed.scheme!r} (https, file or hf)")


class _Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, label, total, stream=None):
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.last = 0.0

    def update(self, n):
        self.done += n
        now = time.monotonic()
        if now - self.last > 0.2 or (self.total and self.done >= self.total):
            self.last = now
            mb = self.done / 1e6
            if self.total:
                pct = self.done / self.total
                bar = "#" * int(pct * 30)
                self.stream.write(f"\r{self.label} [{bar:<30}] {mb:.1f}/{self.total / 1e6:.1f} MB")
            else:
                self.stream.write(f"\r{self.label} {mb:.1f} MB")
            self.stream.flush()

    def close(self):
        self.stream.write("\n")
        self.stream.flush()


def _announced_size(resp, url):
    """The response's Content-Length, or None when it gives none."""
    value = resp.headers.get("Content-Length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise KzooError(f"{url}: the server sent an invalid Content-Length {value[:40]!r}")
    return int(value)


def download(url: str, dest, *, sha256: str | None, size: int | None = None, allow_http: bool = False,
             progress: bool = True, timeout: float = 60.0, record: bool = False,
             upstream_http: bool = False) -> Path:
    """Stream `url` into `dest`; keep it only if complete and its sha256 matches.

    The download stops as soon as it exceeds the size it should have: `size` (the
    catalog's), else the server's Content-Length, else `archive.max_preset_bytes()`.
    A download that fails or is rejected leaves nothing behind.

    Args:
        url: an https:// URL (http:// for localhost only, see `check_url`).
        dest: where the verified file goes.
        sha256: the expected sha256 (hex).
        size: the expected size in bytes, if known (a catalog entry's `size`).
        allow_http: allow plain http to localhost.
        progress: draw a progress bar on stderr.
        timeout: seconds to wait for the server at each step.
        record: accept a download without `sha256` (its first download, whose sha256
            the caller records: `record`, trust on first use).
        upstream_http: allow plain http to any host (upstream checkpoints served only
            so, pinned by sha256 after their first download).

    Example::

        download(entry["url"], tmp, sha256=entry["sha256"], size=entry["size"])
    """
    from kzoo.hub.archive import max_preset_bytes

    if not (upstream_http and url.startswith("http://")):
        check_url(url, allow_http=allow_http)
    if offline():
        raise KzooError(f"KZOO_OFFLINE is set: not downloading {url}")
    if not sha256 and not record:
        raise KzooError(f"{url}: no sha256 to check the download against; add "
                        "#sha256=<hex> to the URL (kzoo hub publish prints it)")
    dest = Path(dest)
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            announced = _announced_size(resp, url)
            if size is not None and announced is not None and announced != size:
                raise KzooError(f"{url}: the server announces {announced:,} bytes, the catalog "
                                f"records {size:,}; nothing was downloaded")
            expected = size if size is not None else announced
            limit = expected if expected is not None else max_preset_bytes()
            bound = "the expected size" if expected is not None else "the cap, KZOO_MAX_PRESET_BYTES"
            with atomic_path(dest, size=expected) as tmp:
                bar = _Progress(f"downloading {dest.name}", expected or 0) if progress else None
                got = 0
                with open(tmp, "wb") as out, contextlib.closing(bar or io.StringIO()):
                    while block := resp.read(min(1 << 16, limit + 1 - got)):
                        got += len(block)
                        if got > limit:
                            raise KzooError(
                                f"{url}: the download exceeds {limit:,} bytes ({bound}); it was "
                                "stopped and discarded")
                        out.write(block)
                        h.update(block)
                        if bar:
                            bar.update(len(block))
                if expected is not None and got != expected:
                    raise KzooError(f"{url}: download truncated ({got} of {expected} bytes); "
                                    "nothing was cached, try again")
                if sha256 and h.hexdigest() != sha256.lower():
                    raise KzooError(f"{url}: sha256 {h.hexdigest()} does not match the expected "
                                    f"{sha256}; the download was discarded")
    except urllib.error.HTTPError as e:
        raise KzooError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise KzooError(f"{url}: download failed ({e}); nothing was cached") from None
    return dest


def install(key, obtain, *, what, how, needs_network=True) -> Path:
    """The verified preset folder of cache entry `key`, filled by `obtain(new_folder)` under
    its lock when absent (`what` and `how` name the source and the command that fetches it
    in the error lines: a corrupted entry is removed; offline, a missing one is refused)."""
    from kzoo.hub.archive import preset_root
    from kzoo.hub.preset import ChecksumError, verify

    entry = entry_dir(key)
    with lock(key):
        sweep(entry)
        if entry.exists():
            root = preset_root(entry)
            try:
                verify(root)
            except ChecksumError as e:
                shutil.rmtree(entry, ignore_errors=True)
                raise KzooError(f"the cached copy of {what} is corrupted and was removed from the "
                                f"cache ({e}); load it again to fetch a fresh copy") from None
            return root
        if needs_network and offline():
            raise KzooError(f"KZOO_OFFLINE=1 and {what} is not in the cache ({home()}); "
                            f"run `{how}` once with network access (or unset KZOO_OFFLINE)")
        with scratch_dir(entry.parent, "fill") as work:
            obtain(work / "preset")
            verify(preset_root(work / "preset"))
            publish_dir(work / "preset", entry)
    return preset_root(entry)


def sweep(entry: Path):
    """Remove what killed fills left: the temporary folders beside cache entry `entry`
    (`.fill.kzoo-PID-*` of dead processes; pid-less `.fill.XXXXXXXX` of older kzoo
    versions after `kzoo.io.STALE_SECONDS`) and unfinished downloads."""
    remove_stale_dirs(entry.parent, legacy=re.compile(r"^\.fill\.[a-z0-9_]{8}$"))
    remove_stale_temps(home() / "downloads", older_than=STALE_SECONDS)


# --- upstream pins: trust on first use ------------------------------------------------

def _pins_path() -> Path:
    return home() / "upstream" / "sha256.json"


def pinned(url: str):
    """What was recorded for `url` on its first download, or None: the sha256 of an
    http(s) URL or of an hf:// file (`hf://owner/repo@commit/FILE`), the commit of an
    hf:// repository referenced without a revision (`hf://owner/repo`, see `kzoo.hub.hf`)."""
    path = _pins_path()
    if not path.is_file():
        return None
    from kzoo.hub import schema

    pins = schema.read_json(path)
    return pins.get(url) if isinstance(pins, dict) else None


def pin(url: str, digest: str):
    """Record `digest` (a sha256, or an hf:// repository's commit) for `url`."""
    from kzoo.hub import schema
    from kzoo.io import write_json

    path = _pins_path()
    with lock("upstream-pins"):
        pins = schema.read_json(path) if path.is_file() else {}
        pins[url] = digest
        write_json(path, pins)


def record(pins: dict):
    """Record what a successful conversion downloaded for the first time (trust on first use)."""
    for key, value in pins.items():
        pin(key, value)
        what = "commit" if len(value) == 40 else "sha256"
        print(f"{key}: {what} {value} recorded (trust on first use; later downloads must "
              "match it)", file=sys.stderr)


def download_upstream(url: str, dest: Path, *, expected=None, progress=True) -> str:
    """Download upstream `url` to `dest`; returns its sha256, checked against `expected`
    or the pin of an earlier download (without either, the caller pins it once the
    conversion succeeded: trust on first use).

    The authors of some checkpoints serve them over plain http only: those URLs are
    fetched as named (a catalog entry or the user's reference), and the pinned sha256
    guards every later download.
    """
    from kzoo.hub.preset import sha256_file

    digest = expected or pinned(url)
    try:
        download(url, dest, sha256=digest, record=digest is None, progress=progress,
                 allow_http=True, upstream_http=True)
    except KzooError as e:
        if digest and "does not match" in str(e) and not expected:
            raise KzooError(f"{url}: the file changed since its first download (sha256 recorded "
                            f"in {_pins_path()} is {digest}); nothing was converted") from None
        raise
    return sha256_file(dest)
