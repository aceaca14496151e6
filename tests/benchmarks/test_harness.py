"""The benchmark harness runs end to end at a tiny size (no timing is asserted)."""

import json

import numpy as np

from benchmarks.__main__ import main


def test_harness_writes_results_and_report(tmp_path, monkeypatch):
    from benchmarks import machine

    monkeypatch.setattr(machine, "matmul_peak", lambda: {
        "n": 8, "dtype": "float32", "repeats": 1, "tensorflow_gflops": 1.0, "numpy_gflops": 0.5,
        "gflops": 1.0, "source": "tensorflow"})
    out, report = tmp_path / "r.json", tmp_path / "R.md"
    runs = tmp_path / "runs"
    # by default a run writes only its own folder
    assert main(["--suites", "peak", "--runs", str(runs), "--out", str(out), "--report", str(report)]) == 0
    (first,) = runs.iterdir()
    assert sorted(p.name for p in first.iterdir()) == ["RESULTS.md", "results.json"]
    assert not out.exists() and not report.exists()
    assert main(["--suites", "peak,train,infer", "--recipes", "dcgan", "--steps", "1", "--variants", "fp32,mixed",
                 "--runs", str(runs), "--write", "--out", str(out), "--report", str(report)]) == 0
    second = max(runs.iterdir())
    assert second != first and json.loads((second / "results.json").read_text()) == json.loads(out.read_text())
    results = json.loads(out.read_text())
    rows = results["train"]
    assert len(rows) == 2 and all("error" not in r for r in rows), rows
    assert all(r["train_step_gflop"] > 0 and r["fit_images_per_s"] > 0 for r in rows)
    assert all(r["train_step_gflop_analytic"] > 0 for r in rows)  # checked by hand in test_flops
    assert {r["precision"] for r in rows} == {"float32", "mixed_bfloat16"}
    infer = results["infer"]
    assert [r["batch"] for r in infer] == [1, 16] and all("error" not in r for r in infer), infer
    assert all(r["onnx_ms"] > 0 and r["onnx_fp16_ms"] > 0 and r["onnx_int8_ms"] > 0 for r in infer)
    assert all(r["keras_call_ms"] > 0 and r["savedmodel_ms"] > 0 and r["gflop"] > 0 for r in infer)
    assert all(r["onnx_share_of_peak"] == r["onnx_gflops_per_s"] for r in infer)  # peak 1 GFLOP/s
    assert all(r["int8_const_psnr_db"] < r["int8_psnr_db"] < r["fp16_psnr_db"] for r in infer), infer
    text = report.read_text()
    assert "fp16 and int8 quality" in text and "NumPy (0.5 GFLOP/s)" in text
    assert "FLOPs per step are the analytic count" in text and " % |" in text.split("## Inference")[0]
    (run,) = results["runs"].values()
    assert all(r["run"] == second.name for r in rows + infer + [results["peak"]])
    assert "Inference latency" in text and "Training throughput" in text and "dcgan" in text and run["machine"]["cpu"] in text


def test_ddpm_sampling_benchmark_rows():
    from benchmarks import ddpm, report

    rows = ddpm.measure(batch=2, samplers=(("ddim", 3), ("ddpm", 4)))
    assert [(r["sampler"], r["steps"]) for r in rows] == [("ddim", 3), ("ddpm", 4)]
    assert all(r["keras_seconds"] > 0 and r["onnx_seconds"] > 0 for r in rows)
    text = report.render({"command": "x", "date": "d", "ddpm": rows,
                          "machine": {"cpu": "c", "cores": 2, "gpus": [], "tensorflow": "t",
                                      "keras": "k", "numpy": "n"}})
    assert "DDPM sampling" in text and "| ddim | 3 |" in text


def test_matmul_peak_reports_tensorflow_and_numpy():
    from benchmarks import machine

    p = machine.matmul_peak(n=64, repeats=2)
    assert p["tensorflow_gflops"] > 0 and p["numpy_gflops"] > 0
    assert p["gflops"] == max(p["tensorflow_gflops"], p["numpy_gflops"]) == p[f"{p['source']}_gflops"]


def test_alternate_interleaves_and_takes_medians():
    from benchmarks.infer import alternate

    calls = []
    ms = alternate({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"] and set(ms) == {"a", "b"}


def test_quality_scores():
    from benchmarks.infer import quality

    ref = np.linspace(-1, 1, 100).reshape(1, 10, 10, 1)
    q = quality(ref, ref + 0.01, {"range": [-1.0, 1.0]})
    assert abs(q["psnr_db"] - 20 * np.log10(2 / 0.01)) < 1e-6
    assert abs(q["const_psnr_db"] - 10 * np.log10(4 / ref.var())) < 1e-6
    assert quality(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4]), {})["agree"] == 0.75
    zeros = np.zeros((2, 4, 4, 1), "float32")  # the untrained DDPM eps network's output
    assert quality(zeros, zeros, {"range": None}) == {
        "note": "n/a: the fp32 output is constant (0; this one equal to it), so PSNR is undefined"}


def test_images_tiles_large_held_out_images():
    from benchmarks.infer import _images

    big = [np.arange(40 * 60 * 3).reshape(40, 60, 3) + k for k in range(2)]  # like srgan's held-out photos
    tiles = _images(big, (16, 16, 3), 10)
    assert tiles.shape == (10, 16, 16, 3)
    np.testing.assert_array_equal(tiles[1], big[0][:16, 16:32])  # row by row, no overlap
    np.testing.assert_array_equal(tiles[6], big[1][:16, :16])  # 2 x 3 tiles of the first image
    assert _images(big, (16, 16, 3), 13) is None  # 12 tiles in all
