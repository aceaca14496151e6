import hashlib
import http.server
import json
import subprocess
import sys
import threading
import time

import pytest

from kzoo.errors import KzooError
from kzoo.hub import cache, loader


def test_home_and_offline(monkeypatch, kzoo_home):
    assert cache.home() == kzoo_home
    monkeypatch.delenv("KZOO_HOME")
    assert str(cache.home()).endswith(".cache/kzoo")
    assert not cache.offline()
    monkeypatch.setenv("KZOO_OFFLINE", "1")
    assert cache.offline()


def test_lock_excludes_another_process(kzoo_home):
    """A second process cannot take the lock while this one holds it, then can."""
    code = ("import sys, time; from kzoo.hub import cache\n"
            "t = time.monotonic()\n"
            "with cache.lock('k'):\n"
            "    print(round(time.monotonic() - t, 2))\n")
    with cache.lock("k"):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        time.sleep(3.0)
        assert proc.poll() is None, "the other process got the lock while it was held"
    waited = float(proc.communicate(timeout=60)[0])
    assert proc.returncode == 0 and waited >= 2.0


def test_lock_timeout(kzoo_home):
    code = "import time; from kzoo.hub import cache\nwith cache.lock('k'): time.sleep(30)\n"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.time() + 30
        while not (kzoo_home / "locks" / "k.lock").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        with pytest.raises(KzooError, match="waiting for the cache lock"):
            with cache.lock("k", timeout=0.3):
                pass
    finally:
        proc.kill()
        proc.wait()


def test_sha256_fragment():
    digest = "ab" * 32
    assert cache.split_sha256_fragment(f"https://h/p.tar.gz#sha256={digest}") == ("https://h/p.tar.gz", digest)
    assert cache.split_sha256_fragment("https://h/p.tar.gz") == ("https://h/p.tar.gz", None)
    with pytest.raises(KzooError, match="64 hex"):
        cache.split_sha256_fragment("https://h/p.tar.gz#sha256=123")


def test_url_schemes(monkeypatch):
    cache.check_url("https://example.org/p.tar.gz")
    with pytest.raises(KzooError, match="refusing plain http"):
        cache.check_url("http://example.org/p.tar.gz", allow_http=True)  # never off localhost
    with pytest.raises(KzooError, match="refusing plain http"):
        cache.check_url("http://127.0.0.1:8000/p.tar.gz")  # not by default
    cache.check_url("http://127.0.0.1:8000/p.tar.gz", allow_http=True)
    monkeypatch.setenv("KZOO_ALLOW_HTTP_LOCALHOST", "1")
    cache.check_url("http://localhost:8000/p.tar.gz")
    with pytest.raises(KzooError, match="unsupported URL scheme"):
        cache.check_url("ftp://example.org/p.tar.gz")


def test_download_checks_and_shows_progress(http_server, tmp_path, capsys):
    root, base = http_server
    data = b"preset bytes" * 1000
    (root / "p.tar.gz").write_bytes(data)
    good = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "cache" / "p.tar.gz"
    cache.download(f"{base}/p.tar.gz", dest, sha256=good, allow_http=True)
    assert dest.read_bytes() == data
    assert "downloading p.tar.gz" in capsys.readouterr().err


def test_sha256_mismatch_leaves_nothing(http_server, tmp_path):
    root, base = http_server
    (root / "p.tar.gz").write_bytes(b"x" * 100)
    with pytest.raises(KzooError, match="does not match"):
        cache.download(f"{base}/p.tar.gz", tmp_path / "c" / "p.tar.gz", sha256="0" * 64,
                       allow_http=True, progress=False)
    assert list((tmp_path / "c").iterdir()) == []


def test_truncated_download_leaves_nothing(http_server, tmp_path):
    root, base = http_server
    data = b"y" * 100_000
    (root / "p.tar.gz").write_bytes(data)
    with pytest.raises(KzooError, match="truncated|download failed"):
        cache.download(f"{base}/truncated/p.tar.gz", tmp_path / "c" / "p.tar.gz",
                       sha256=hashlib.sha256(data).hexdigest(), allow_http=True, progress=False)
    assert list((tmp_path / "c").iterdir()) == []


def test_offline_and_missing_sha(monkeypatch, tmp_path):
    with pytest.raises(KzooError, match="no sha256"):
        cache.download("https://example.org/p.tar.gz", tmp_path / "p.tar.gz", sha256=None)
    monkeypatch.setenv("KZOO_OFFLINE", "1")
    with pytest.raises(KzooError, match="KZOO_OFFLINE"):
        cache.download("https://example.org/p.tar.gz", tmp_path / "p.tar.gz", sha256="0" * 64)


class _StreamHandler(http.server.BaseHTTPRequestHandler):
    """/endless: zeros with no Content-Length (up to 64 MB); /lying/N: Content-Length N;
    /plain/N: N bytes with no Content-Length."""

    def do_GET(self):
        kind, _, n = self.path.strip("/").partition("/")
        self.send_response(200)
        if kind == "lying":
            self.send_header("Content-Length", n)
        self.end_headers()
        total = 64 << 20 if kind == "endless" else int(n) if n.isdigit() else 0
        try:
            while total > 0:
                block = b"\0" * min(total, 1 << 16)
                self.wfile.write(block)
                total -= len(block)
        except OSError:
            pass  # the client stopped reading

    def log_message(self, *args):
        pass


@pytest.fixture
def stream_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StreamHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_stream_without_length_is_cut_at_the_cap(stream_server, tmp_path, monkeypatch):
    monkeypatch.setenv("KZOO_MAX_PRESET_BYTES", str(1 << 20))
    with pytest.raises(KzooError, match=r"exceeds 1,048,576 bytes \(the cap, KZOO_MAX_PRESET_BYTES\)"):
        cache.download(f"{stream_server}/endless", tmp_path / "c" / "p.tar.gz", sha256="0" * 64,
                       allow_http=True, progress=False)
    assert list((tmp_path / "c").iterdir()) == []


def test_a_stream_is_cut_at_the_catalog_size(stream_server, tmp_path):
    with pytest.raises(KzooError, match=r"exceeds 5,000 bytes \(the expected size\)"):
        cache.download(f"{stream_server}/plain/9000", tmp_path / "c" / "p.tar.gz", sha256="0" * 64,
                       size=5000, allow_http=True, progress=False)
    data = b"\0" * 5000
    cache.download(f"{stream_server}/plain/5000", tmp_path / "c" / "p.tar.gz",
                   sha256=hashlib.sha256(data).hexdigest(), size=5000, allow_http=True,
                   progress=False)
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["p.tar.gz"]


def test_a_content_length_other_than_the_catalog_size_is_refused(stream_server, tmp_path):
    with pytest.raises(KzooError, match="announces 3,000,000,000 bytes, the catalog records 5,000"):
        cache.download(f"{stream_server}/lying/3000000000", tmp_path / "c" / "p.tar.gz",
                       sha256="0" * 64, size=5000, allow_http=True, progress=False)
    assert not (tmp_path / "c").exists()
    with pytest.raises(KzooError, match="invalid Content-Length"):
        cache.download(f"{stream_server}/lying/lots", tmp_path / "c" / "p.tar.gz",
                       sha256="0" * 64, allow_http=True, progress=False)


def test_a_huge_announced_download_checks_the_free_space_first(stream_server, tmp_path):
    with pytest.raises(KzooError, match="needs 1,000,000,016,777,216 bytes free "
                       r"\(1,000,000,000,000,000 to write \+ 16,777,216 kept free\) but only"):  # a petabyte
        cache.download(f"{stream_server}/lying/{10 ** 15}", tmp_path / "c" / "p.tar.gz",
                       sha256="0" * 64, allow_http=True, progress=False)
    assert list((tmp_path / "c").iterdir()) == []


def test_the_catalog_size_travels_to_the_download(stream_server, tmp_path, monkeypatch):
    data = b"\0" * 5000
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"presets": [{
        "name": "big", "version": "1", "task": "t", "size": 100,
        "sha256": hashlib.sha256(data).hexdigest(), "url": f"{stream_server}/plain/5000"}]}))
    monkeypatch.setenv("KZOO_CATALOG", str(catalog))
    monkeypatch.setenv("KZOO_ALLOW_HTTP_LOCALHOST", "1")
    with pytest.raises(KzooError, match=r"exceeds 100 bytes \(the expected size\)"):
        loader.fetch("big", progress=False)
    home = cache.home()
    assert [p for p in home.rglob("*") if p.is_file() and p.parent.name != "locks"] == []
