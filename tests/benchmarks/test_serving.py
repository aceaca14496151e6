"""benchmarks/serving.py runs end to end at a tiny size (with a rollout) and writes its JSON."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serving.py"


def test_benchmark_writes_throughput_latency_and_batching_gain(tmp_path):
    spec = importlib.util.spec_from_file_location("serving_benchmark", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "serving.json"
    assert bench.main(["--requests", "60", "--clients", "8", "--max-batch", "1,8", "--out", str(out), "--rollout",
                       "--rollout-requests", "200", "--rollout-after", "0.3", "--poll-seconds", "0.05"]) == 0
    result = json.loads(out.read_text())
    assert [r["max_batch"] for r in result["runs"]] == [1, 8]
    for r in result["runs"]:
        assert r["ok"] == 60 and r["errors"] == 0 and r["p50_ms"] <= r["p99_ms"]
    assert result["runs"][0]["batching_gain"] == 1.0 and result["runs"][1]["batching_gain"] > 0
    assert result["runs"][0]["mean_rows_per_batch"] == 1.0
    rollout = result["rollout"]  # version 2 appeared during the load: no request failed
    assert rollout["ok"] == 200 and rollout["errors"] == 0, rollout
    assert set(rollout["timeline"]) == {"version 1", "version 2"}
    assert rollout["published_s"] <= rollout["v2_available_s"] <= rollout["first_v2_answer_s"]
    assert rollout["v1_unloaded_s"] == rollout["v2_available_s"]  # one switch


def test_abuse_run_keeps_the_server_alive_and_answering(tmp_path):
    """`--abuse` at a tiny size: every hostile request is answered (200 or a refusal naming
    its limit), the normal clients see no error, the server is alive at the end."""
    from kzoo.export import export
    from kzoo.zoo import create_model, tiny_overrides

    spec = importlib.util.spec_from_file_location("serving_benchmark", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    root = tmp_path / "export"
    for name in ("cgan", "unet"):
        export(create_model(name, **tiny_overrides(name)), name=name, out=root, formats="onnx")
    report = bench.abuse(root, 2, tmp_path, ("--max-request-memory-bytes", str(64 << 20)))
    assert report["server_alive"] and report["normal_clients"]["errors"] == 0, report["normal_clients"]
    statuses = {r["request"]: r["status"] for r in report["hostile"]}
    for what in ("4096x4096", "8000x8000", "100000x100000", "10,000-row"):
        (status,) = [v for k, v in statuses.items() if what in k]
        assert status == 400
    assert statuses["gRPC 70,000-row cGAN"] == "RESOURCE_EXHAUSTED"
    refused = [r["message"] for r in report["hostile"] if r["status"] in (400, "RESOURCE_EXHAUSTED")]
    assert all("limit" in m or "too large" in m for m in refused), refused
