"""Hub test fixtures: an isolated KZOO_HOME, one tiny real cgan run, a local HTTP server."""

import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

@pytest.fixture(autouse=True)
def kzoo_home(tmp_path, monkeypatch):
    home = tmp_path / "kzoo-home"
    monkeypatch.setenv("KZOO_HOME", str(home))
    for var in ("KZOO_OFFLINE", "KZOO_CATALOG", "KZOO_ALLOW_HTTP_LOCALHOST"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run directory as the recipe runner leaves it, for a tiny untrained cgan.

    The files are written by the runner's own `save_trained` (a real recipe run
    takes over a minute on the shared test machine; tests/recipes covers that).
    """
    import dataclasses

    from kzoo.io import save_png, write_json
    from kzoo.recipes.cgan import CGANConfig
    from kzoo.recipes.runner import save_trained
    from kzoo.zoo import create_model
    from tests.helpers import compile_adam

    run = tmp_path_factory.mktemp("run") / "cgan"
    cfg = CGANConfig(preset="quick", image_size=8, epochs=1, steps_per_epoch=1, batch_size=8,
                     model={"width": 4, "latent_dim": 4})
    model = compile_adam(create_model("cgan_digits", image_size=8, width=4, latent_dim=4, seed=0))
    argv = ["/x/kzoo/recipes/cgan.py", "--preset", "quick", "--image-size", "8", "--width", "4", "--latent-dim", "4",
            "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "8", "--out", str(run)]
    write_json(run / "config.json", {
        "recipe": "cgan", "config": dataclasses.asdict(cfg), "argv": argv, "replicas": 1,
        "changed_from_paper": {"width": 4, "latent_dim": 4, "image_size": 8},
        "kzoo_version": "0.1.0", "keras_version": "3", "tensorflow_version": "2"})
    metrics = {"frechet_distance": 123.25, "inception_score": 1.5, "class_consistency": 0.125}
    (run / "metrics.jsonl").write_text(
        '{"epoch": 0, "untrained": {"frechet_distance": 150.5}}\n{"epoch": 1, "d_loss": 1.0}\n'
        '{"final": true, "train_seconds": 3.5, "frechet_distance": 123.25, "inception_score": 1.5, '
        '"class_consistency": 0.125, "untrained": {"frechet_distance": 150.5}}\n')
    for epoch in (1, 2):
        save_png(run / "samples" / f"epoch_00{epoch}.png",
                 np.full((10, 10), 40 * epoch, np.uint8))
    save_trained(run / "model", model, model.generator,
                 {"recipe": "cgan", "data": "builtin:digits", "image_size": 8, "channels": 1,
                  "num_classes": 10, "metrics": metrics, "config": dataclasses.asdict(cfg)})
    return run


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
