import hashlib
import subprocess
import sys
import time

import pytest

from kzoo.errors import KzooError
from kzoo.hub import cache


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
