"""pix2pix recipe: scores against baselines; bad input through the CLI entry point."""

import hashlib
import http.server
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from kzoo.recipes.pix2pix import RECIPE
from kzoo.recipes.runner import main

TINY = ["--preset", "quick", *RECIPE.tiny, "--epochs", "1", "--steps-per-epoch", "1", "--no-jit-compile"]


def test_run_scores_against_trivial_baselines(smoke_run):
    out = smoke_run("pix2pix")
    config = json.loads((out / "config.json").read_text())
    assert config["changed_from_paper"]["width"] == 4
    model = config["config"]["model"]  # the quick preset colourises in Lab, L1 weighted 1000
    assert (model["color"], model["upsample"], model["l1_weight"]) == ("lab", "resize", 1000.0)
    grid = np.asarray(Image.open(out / "samples" / "epoch_001.png"))
    assert grid.shape == (4 * 130 + 2, 3 * 130 + 2, 3)  # 4 rows of input | output | target, 16 px x 8
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert "psnr" in lines[0]["untrained"]
    final = lines[-1]
    for key in ("psnr", "ssim", "l1", "input_psnr", "input_ssim", "mean_color_psnr", "colorfulness",
                "target_colorfulness", "checkerboard", "target_checkerboard"):
        assert np.isfinite(final[key]), key
    assert final["input_psnr"] > 10 and final["input_colorfulness"] == 0  # gray vs colour of the same crop
    assert final["target_colorfulness"] > 10
    gen = keras.saving.load_model(out / "model" / "inference.keras")
    assert gen.predict(np.zeros((1, 32, 32, 1), "float32"), verbose=0).shape == (1, 32, 32, 3)


def test_last_line_is_the_held_out_result_beside_the_gray_baseline(tmp_path, capsys):
    assert main(RECIPE, [*TINY, "--eval-samples", "2", "--out", str(tmp_path / "run")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("kzoo: held-out: model PSNR ") and "vs gray input (ab = 0)" in last
    assert last.rsplit(" ", 1)[-1] in ("better", "worse", "mixed")


def test_bad_folder_is_one_line_and_exit_2(tmp_path, capsys):
    Image.fromarray(np.zeros((32, 65, 3), np.uint8)).save(tmp_path / "odd.png")
    code = main(RECIPE, [*TINY, "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "odd.png" in err
    assert not (tmp_path / "run").exists()
    assert main(RECIPE, [*TINY, "--data", "builtin:photos/domains", "--out", str(tmp_path / "r2")]) == 2
    assert "unpaired" in capsys.readouterr().err


# --- the README's fine-tune command, against a stand-in for the authors' host ---------

README_FINE_TUNE = "python -m kzoo.recipes.pix2pix --exact junyanz --init-from pix2pix-facades"
FACADES_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/facades_label2photo.pth"
REPO = Path(__file__).resolve().parents[2]
TINY_UNET_256 = REPO / "tests" / "fixtures" / "reference" / "unet_256_tiny.pth"


class _AuthorsHost(http.server.BaseHTTPRequestHandler):
    """An HTTP proxy on 127.0.0.1 standing in for the authors' host: a client with
    `http_proxy` set asks it for the absolute URL, and only `files` exist."""

    files: dict = {}

    def do_GET(self):
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


def _fine_tune(tmp_path, proxy, *extra):
    """The README's command, word for word, with `python` this interpreter, run through
    `proxy`; returns the finished process."""
    argv = shlex.split(README_FINE_TUNE)
    assert argv[0] == "python"
    env = {**os.environ, "KZOO_HOME": str(tmp_path / "home"), "http_proxy": proxy,
           "HTTP_PROXY": proxy, "no_proxy": "", "NO_PROXY": "", "PYTHONPATH": str(REPO),
           "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    for var in ("KZOO_CATALOG", "KZOO_OFFLINE"):
        env.pop(var, None)
    return subprocess.run([sys.executable, *argv[1:], *extra], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)


def test_readme_fine_tune_command_downloads_converts_and_trains(tmp_path):
    """`python -m kzoo.recipes.pix2pix --exact junyanz --init-from pix2pix-facades` as the
    README writes it: the catalog entry's file comes from the local stand-in (the published
    unet_256 layout at width 1), is pinned and converted, the network is built with the
    preset's options (over the quick preset's resize decoder, Lab colour, width and size),
    the gray builtin inputs are repeated to RGB, and training starts from the weights.
    One step of training, without evaluation, keeps the test short (~1 min)."""
    readme = (REPO / "docs" / "hub.md").read_text()  # where README's hub section points
    assert README_FINE_TUNE in readme
    _AuthorsHost.files = {FACADES_URL: TINY_UNET_256.read_bytes()}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AuthorsHost)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = _fine_tune(tmp_path, f"http://127.0.0.1:{server.server_address[1]}",
                          "--epochs", "1", "--steps-per-epoch", "1", "--num-crops", "2", "--batch-size", "1",
                          "--eval-samples", "0", "--no-jit-compile", "--out", str(tmp_path / "run"))
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--init-from pix2pix-facades: its" in done.stdout and "--upsample transpose" in done.stdout
    pins = json.loads((tmp_path / "home" / "upstream" / "sha256.json").read_text())
    assert pins == {FACADES_URL: hashlib.sha256(TINY_UNET_256.read_bytes()).hexdigest()}
    config = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    model = config["model"]
    assert (model["exact"], model["upsample"], model["color"], model["width"], model["levels"]) == \
        ("junyanz", "transpose", "rgb", 1, 8)
    assert config["image_size"] == 256 and config["preset"] == "quick"
    from kzoo.hub.convert import junyanz
    from kzoo.hub.convert.torchfile import load_state_dict

    start = junyanz.convert_junyanz(load_state_dict(TINY_UNET_256), "unet_256")
    trained = keras.saving.load_model(tmp_path / "run" / "model" / "inference.keras")
    for layer in ("down0_conv", "up0_conv", "out_conv"):  # one Adam step (lr 2e-4) from the weights
        moved = np.abs(trained.get_layer(layer).kernel.numpy() - start.get_layer(layer).kernel.numpy())
        assert moved.max() < 1e-3, layer
    assert trained.input.shape[-1] == 3


def test_readme_fine_tune_command_offline_is_one_line_at_the_download(tmp_path):
    """No network (a proxy that refuses connections): one error line naming the catalog
    entry's file, exit 2, nothing cached, no run directory."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # bound, never listening: connections are refused
        done = _fine_tune(tmp_path, f"http://127.0.0.1:{closed}")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {FACADES_URL}: download failed"), done.stderr
    assert not (tmp_path / "runs").exists()
    assert not list((tmp_path / "home").rglob("*.pth"))
