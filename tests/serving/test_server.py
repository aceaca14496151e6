"""ModelServer under load, with batching, and `kzoo serve` from the command line."""

import os
import re
import signal
import socket
import subprocess
import sys
import numpy as np
import requests

from kzoo.infer import OnnxModel
from kzoo.serving.loadtest import run_load


def test_load_32_clients_no_errors_and_batching(server, export_tree, cgan_inputs):
    import json

    body = json.dumps({"inputs": {k: v.tolist() for k, v in cgan_inputs.items()}}).encode()
    expected = OnnxModel(export_tree / "cgan").run(**cgan_inputs)["image"]
    stats = run_load(server.rest_url + "/v1/models/cgan:predict", body, requests=500, clients=32, deadline_s=90)
    assert stats["ok"] == 500 and stats["errors"] == 0, stats
    assert stats["p50_ms"] <= stats["p99_ms"] and stats["throughput_rps"] > 0
    r = requests.post(server.rest_url + "/v1/models/cgan:predict", data=body, timeout=10)
    np.testing.assert_allclose(np.asarray(r.json()["outputs"], np.float32), expected, atol=1e-4)
    metrics = requests.get(server.rest_url + "/monitoring/prometheus/metrics", timeout=10).text
    count = float(re.search(r'kzoo_serving_batch_size_count\{model_name="cgan"\} (\S+)', metrics)[1])
    rows = float(re.search(r'kzoo_serving_batch_size_sum\{model_name="cgan"\} (\S+)', metrics)[1])
    assert rows >= 1500 and rows / count > 1.5, (rows, count)  # requests were batched together


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serve_starts_answers_and_stops(export_tree):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "kzoo.cli", "serve", str(export_tree), "--port", str(port),
                             "--grpc-port", "0", "--max-batch", "4"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()  # printed once listening
        assert line.startswith(f"REST http://127.0.0.1:{port}"), (line, proc.stderr.read() if proc.poll() else "")
        assert "gRPC" not in line
        r = requests.get(f"http://127.0.0.1:{port}/v1/models/fcn", timeout=10)
        assert r.json()["model_version_status"][0]["state"] == "AVAILABLE"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0
    assert "serving cgan (versions 2), fcn (versions 1) on onnx" in proc.stderr.read()  # latest, as TF Serving


def test_cli_errors_are_one_line(tmp_path, capsys):
    from kzoo.cli import main

    assert main(["serve", str(tmp_path / "nope"), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "is not a directory" in err[0]
    assert main(["serve", str(tmp_path), "--max-batch", "0"]) == 2
    assert "--max-batch must be >= 1" in capsys.readouterr().err


def test_port_in_use_is_a_clear_error(export_tree, server):
    import pytest

    from kzoo.errors import KzooError
    from kzoo.serving.server import ModelServer

    with pytest.raises(KzooError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        ModelServer(export_tree, port=server.port, grpc_port=None).start(timeout=60)
