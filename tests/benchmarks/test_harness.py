"""The benchmark harness runs end to end at a tiny size (no timing is asserted)."""

import json

from benchmarks.__main__ import main


def test_harness_writes_results_and_report(tmp_path, monkeypatch):
    from benchmarks import machine

    monkeypatch.setattr(machine, "matmul_peak", lambda: {"n": 8, "dtype": "float32", "seconds": 1.0, "gflops": 1.0})
    out, report = tmp_path / "r.json", tmp_path / "R.md"
    assert main(["--suites", "peak,train,infer", "--recipes", "dcgan", "--steps", "1", "--variants", "fp32,mixed",
                 "--out", str(out), "--report", str(report)]) == 0
    results = json.loads(out.read_text())
    rows = results["train"]
    assert len(rows) == 2 and all("error" not in r for r in rows), rows
    assert all(r["train_step_gflop"] > 0 and r["fit_images_per_s"] > 0 for r in rows)
    assert {r["precision"] for r in rows} == {"float32", "mixed_bfloat16"}
    infer = results["infer"]
    assert [r["batch"] for r in infer] == [1, 16] and all("error" not in r for r in infer), infer
    assert all(r["onnx_ms"] > 0 and r["onnx_fp16_ms"] > 0 for r in infer)
    text = report.read_text()
    assert "Inference latency" in text and "Training throughput" in text and "dcgan" in text and results["machine"]["cpu"] in text


def test_ddpm_sampling_benchmark_rows():
    from benchmarks import ddpm, report

    rows = ddpm.measure(batch=2, samplers=(("ddim", 3), ("ddpm", 4)))
    assert [(r["sampler"], r["steps"]) for r in rows] == [("ddim", 3), ("ddpm", 4)]
    assert all(r["keras_seconds"] > 0 and r["onnx_seconds"] > 0 for r in rows)
    text = report.render({"command": "x", "date": "d", "ddpm": rows,
                          "machine": {"cpu": "c", "cores": 2, "gpus": [], "tensorflow": "t",
                                      "keras": "k", "numpy": "n"}})
    assert "DDPM sampling" in text and "| ddim | 3 |" in text
