"""ModelServer under load, with batching, and `kzoo serve` from the command line."""

import os
import re
import signal
import socket
import subprocess
import sys
import numpy as np
import pytest
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
    import pytest

    from kzoo.cli import main
    from kzoo.errors import KzooError
    from kzoo.serving.server import ModelServer

    assert main(["serve", str(tmp_path / "nope"), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "is not a directory" in err[0]
    assert main(["serve", str(tmp_path), "--max-batch", "0"]) == 2
    assert "--max-batch must be >= 1" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--version-policy", "newest"]) == 2
    assert "--version-policy must be latest[:N], all or specific" in capsys.readouterr().err
    assert main(["serve", "--model-config-file", str(tmp_path / "models.config")]) == 2
    assert "cannot read the model config" in capsys.readouterr().err
    (tmp_path / "some.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe binary")
    assert main(["serve", "--model-config-file", str(tmp_path / "some.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a TF Serving ModelServerConfig: not a text file" in err[0]
    for flag in ("--header-timeout-seconds", "--body-timeout-seconds", "--batch-wait-ms"):
        assert main(["serve", str(tmp_path), flag, "inf"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert "a finite number" in err[-1] and "Traceback" not in "".join(err)
    with pytest.raises(KzooError, match="--header-timeout-seconds must be a finite number, got inf"):
        ModelServer(tmp_path, header_timeout_s=float("inf"))
    assert main(["serve", str(tmp_path), "--max-request-memory-bytes", "12"]) == 2
    assert "--max-request-memory-bytes must be a whole number of bytes >= 1 MiB" in capsys.readouterr().err


def test_port_in_use_is_a_clear_error(export_tree, server):
    import pytest

    from kzoo.errors import KzooError
    from kzoo.serving.server import ModelServer

    with pytest.raises(KzooError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        ModelServer(export_tree, port=server.port, grpc_port=None).start(timeout=60)


# --- versions follow the file system (TF Serving's polling) -----------------------------
def publish(src, model_dir, version, group=None):
    """Publish `src` as `model_dir/version` the way kzoo export does: staged, then renamed."""
    import json
    import shutil

    staged = model_dir / f".staging-{version}"
    shutil.copytree(src, staged)
    if group is not None:
        info = json.loads((staged / "kzoo.json").read_text())
        info.update(name=model_dir.name, version=version, group=group)
        (staged / "kzoo.json").write_text(json.dumps(info))
    os.rename(staged, model_dir / str(version))


def wait_for(predicate, timeout=30.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached within the timeout")


def states(server, name):
    r = requests.get(f"{server.rest_url}/v1/models/{name}", timeout=10)
    return {int(s["version"]): (s["state"], s["status"]["error_message"])
            for s in r.json().get("model_version_status", [])}


@pytest.fixture
def live(export_tree, tmp_path):
    """A tree holding cgan version 1 only, served with a 0.05 s poll (latest policy)."""
    from kzoo.serving.server import ModelServer

    root = tmp_path / "export"
    (root / "cgan").mkdir(parents=True)
    publish(export_tree / "cgan" / "1", root / "cgan", 1)
    s = ModelServer(root, port=0, grpc_port=0, max_batch=8, file_system_poll_wait_seconds=0.05).start(timeout=120)
    yield s, root
    s.stop()


def test_new_version_rolls_out_under_load_and_removed_versions_unload(live, export_tree, cgan_inputs):
    import json
    import shutil
    import threading

    server, root = live
    assert states(server, "cgan") == {1: ("AVAILABLE", "")}
    body = json.dumps({"inputs": {k: v.tolist() for k, v in cgan_inputs.items()}}).encode()
    result = {}
    load = threading.Thread(target=lambda: result.update(run_load(
        server.rest_url + "/v1/models/cgan:predict", body, requests=300, clients=8, deadline_s=60)))
    load.start()
    publish(export_tree / "cgan" / "2", root / "cgan", 2)  # during the load
    wait_for(lambda: states(server, "cgan") == {2: ("AVAILABLE", ""), 1: ("END", "")})
    load.join(90)
    assert result["ok"] == 300 and result["errors"] == 0, result  # in-flight requests finished on v1
    v2 = OnnxModel(export_tree / "cgan" / "2").run(**cgan_inputs)["image"]
    got = requests.post(server.rest_url + "/v1/models/cgan:predict", data=body, timeout=10).json()["outputs"]
    np.testing.assert_allclose(np.asarray(got, np.float32), v2, atol=1e-4)
    shutil.rmtree(root / "cgan" / "2")  # removed: unloaded, and the latest left (1) is served again
    wait_for(lambda: states(server, "cgan") == {1: ("AVAILABLE", ""), 2: ("END", "")})


def test_a_version_that_fails_to_load_is_reported_and_never_replaces_a_healthy_one(live, export_tree, cgan_inputs):
    server, root = live
    publish(export_tree / "cgan" / "1", root / "cgan", 3)
    (root / "cgan" / "3" / "model.onnx").write_bytes(b"not an onnx model")
    rows = wait_for(lambda: (s := states(server, "cgan")).get(3, ("",))[0] == "END" and s)
    assert rows[1] == ("AVAILABLE", "") and rows[3][1], rows  # the error is in the status
    assert "failed" in [e[3] for e in server.repo.events if e[2] == 3]
    r = requests.post(server.rest_url + "/v1/models/cgan:predict", timeout=10,
                      json={"inputs": {k: v.tolist() for k, v in cgan_inputs.items()}})
    assert r.status_code == 200
    r = requests.get(server.rest_url + "/v1/models/cgan/versions/3/metadata", timeout=10)
    assert r.status_code == 404


def test_a_multi_endpoint_export_appears_only_when_its_group_is_complete(live, export_tree):
    server, root = live
    group = {"id": "export-42", "members": ["pair_a", "pair_b"]}
    for m in group["members"]:
        (root / m).mkdir()
    publish(export_tree / "cgan" / "1", root / "pair_a", 1, group)
    import time

    time.sleep(0.5)  # ten polls: pair_a/1 alone is a crashed or unfinished group
    assert requests.get(server.rest_url + "/v1/models/pair_a", timeout=10).status_code == 404
    publish(export_tree / "cgan" / "1", root / "pair_b", 1, {**group, "id": "another-export"})
    time.sleep(0.5)  # a member written by another export does not complete it
    assert requests.get(server.rest_url + "/v1/models/pair_a", timeout=10).status_code == 404
    import shutil

    shutil.rmtree(root / "pair_b" / "1")
    publish(export_tree / "cgan" / "1", root / "pair_b", 1, group)
    wait_for(lambda: states(server, "pair_a") == {1: ("AVAILABLE", "")} == states(server, "pair_b"))
    import json

    info = json.loads((root / "pair_b" / "1" / "kzoo.json").read_text())  # --force re-exports the group:
    (root / "pair_b" / "1" / "kzoo.json.tmp").write_text(json.dumps({**info, "group": {**group, "id": "next"}}))
    os.replace(root / "pair_b" / "1" / "kzoo.json.tmp", root / "pair_b" / "1" / "kzoo.json")
    time.sleep(0.5)  # loaded versions stay loaded while their group is incomplete
    assert states(server, "pair_a") == {1: ("AVAILABLE", "")} == states(server, "pair_b")


CONFIG = """model_config_list {{
  config {{
    name: "gen" base_path: "{base}" model_platform: "tensorflow"
    model_version_policy {{ {policy} }}
    {labels}
  }}
}}
"""


def test_models_config_policies_labels_and_reload(export_tree, tmp_path, cgan_inputs):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from kzoo.serving.server import ModelServer

    config = tmp_path / "models.config"
    config.write_text(CONFIG.format(base=export_tree / "cgan", policy="specific { versions: 1 }",
                                    labels='version_labels { key: "stable" value: 1 }'))
    body = {"inputs": {k: v.tolist() for k, v in cgan_inputs.items()}}
    v1 = OnnxModel(export_tree / "cgan" / "1").run(**cgan_inputs)["image"]
    v2 = OnnxModel(export_tree / "cgan" / "2").run(**cgan_inputs)["image"]
    with ModelServer(config_file=config, port=0, grpc_port=0, file_system_poll_wait_seconds=0.05,
                     model_config_file_poll_wait_seconds=0.1) as server:
        assert sorted(server.repo.models) == ["gen"] and states(server, "gen") == {1: ("AVAILABLE", "")}
        r = requests.post(server.rest_url + "/v1/models/gen/labels/stable:predict", json=body, timeout=10)
        np.testing.assert_allclose(np.asarray(r.json()["outputs"], np.float32), v1, atol=1e-4)
        assert requests.get(server.rest_url + "/v1/models/gen/labels/stable", timeout=10).json()[
            "model_version_status"][0]["version"] == "1"
        r = requests.post(server.rest_url + "/v1/models/gen/labels/nope:predict", json=body, timeout=10)
        assert r.status_code == 400 and r.json()["error"] == "Unrecognized servable version label: nope"
        # the config changes: every version, stable moves to 2, canary added
        config.write_text(CONFIG.format(base=export_tree / "cgan", policy="all { }",
                                        labels='version_labels { key: "stable" value: 2 } '
                                               'version_labels { key: "canary" value: 1 }'))
        wait_for(lambda: states(server, "gen") == {2: ("AVAILABLE", ""), 1: ("AVAILABLE", "")}
                 and server.repo.labels["gen"] == {"stable": 2, "canary": 1})
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            req = predict_pb2.PredictRequest()
            req.model_spec.name = "gen"
            req.model_spec.version_label = "stable"
            for k, v in cgan_inputs.items():
                req.inputs[k].CopyFrom(tf.make_tensor_proto(v))
            response = stub.Predict(req, timeout=30)
            assert (response.model_spec.name, response.model_spec.version.value) == ("gen", 2)
            np.testing.assert_allclose(tf.make_ndarray(response.outputs["image"]), v2, atol=1e-4)
            req.model_spec.version_label = "nope"
            with pytest.raises(grpc.RpcError) as info:
                stub.Predict(req, timeout=30)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert info.value.details() == "Unrecognized servable version label: nope"
        from kzoo.serving import Client

        for url in (server.rest_url, server.grpc_url):  # the client names labels too
            with Client(url) as client:
                np.testing.assert_allclose(client.predict("gen", cgan_inputs, version="canary")["image"], v1,
                                           atol=1e-4)
                assert client.status("gen", "stable")[0]["version"] in ("2", 2)
        config.write_text("model_config_list { broken")  # a bad file keeps the config in force
        import time

        time.sleep(0.4)
        assert states(server, "gen") == {2: ("AVAILABLE", ""), 1: ("AVAILABLE", "")}
