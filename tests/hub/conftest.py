"""Hub test fixtures: an isolated KZOO_HOME, one tiny real cgan run, a local HTTP server."""

import http.server
import shutil
import threading
from pathlib import Path

import pytest

TINY_CGAN = ["--preset", "quick", "--image-size", "8", "--width", "4", "--latent-dim", "4",
             "--batch-size", "8", "--epochs", "1", "--steps-per-epoch", "1",
             "--eval-samples", "40", "--no-jit-compile"]


@pytest.fixture(autouse=True)
def kzoo_home(tmp_path, monkeypatch):
    home = tmp_path / "kzoo-home"
    monkeypatch.setenv("KZOO_HOME", str(home))
    for var in ("KZOO_OFFLINE", "KZOO_CATALOG", "KZOO_ALLOW_HTTP_LOCALHOST"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished run directory of the real cgan recipe (tiny: one step)."""
    from kzoo.recipes import cgan
    from kzoo.recipes.runner import run

    return run(cgan.RECIPE, [*TINY_CGAN, "--out", str(tmp_path_factory.mktemp("run") / "cgan")])


@pytest.fixture(scope="session")
def tiny_preset_dir(tiny_run, tmp_path_factory):
    from kzoo.hub.preset import build_preset

    return build_preset(tiny_run, tmp_path_factory.mktemp("preset") / "tiny-cgan", name="tiny-cgan")


@pytest.fixture
def tiny_preset(tiny_preset_dir, tmp_path):
    """A private copy of the tiny preset folder (tests may damage it)."""
    return Path(shutil.copytree(tiny_preset_dir, tmp_path / "tiny-cgan"))


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves `directory`; paths under /truncated/ announce more bytes than they send."""

    def do_GET(self):
        if self.path.startswith("/truncated/"):
            body = (Path(self.directory) / self.path[len("/truncated/"):]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(tmp_path):
    """(root folder, base URL) of an HTTP server on 127.0.0.1 serving the folder."""
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: _Handler(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
