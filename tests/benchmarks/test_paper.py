"""benchmarks/paper.py: seeded state dicts fit the converters; the report renders its rows."""

import numpy as np

from benchmarks.paper import seeded_state
from benchmarks.report import as_stored, render


def test_a_seeded_state_dict_loads_into_the_exact_network():
    from kzoo.hub.convert import junyanz

    params = junyanz.reference_params("unet_128", width=2)
    state = seeded_state(params)
    assert set(state) == {p[0] for p in params}
    assert all(state[n].shape == tuple(s) for n, _, _, s in params)
    variances = [state[n] for n, _, w, _ in params if w == "moving_variance"]
    assert variances and all(v.min() >= 0.5 for v in variances)
    net = junyanz.convert_junyanz(state, "unet_128")  # checked name by name, shape by shape
    out = np.asarray(net(np.zeros((1, 128, 128, 3), "float32"), training=False))
    assert out.shape == (1, 128, 128, 3) and np.isfinite(out).all()


def test_the_report_has_a_paper_section_with_the_fastest_runtime():
    row = {"model": "unet_256", "image_size": 256, "batch": 1, "params_m": 54.4, "savedmodel_ms": 900.0,
           "ort_ms": 300.0, "openvino_ms": 250.0, "torch_ms": 600.0, "fastest": "openvino",
           "fastest_vs_torch": 2.4, "gflop": 36.0, "fastest_gflops_per_s": 144.0,
           "fastest_share_of_peak": 0.5}
    stored = as_stored("r1", {"command": "python -m benchmarks --suites paper", "date": "2026-12-07",
                              "machine": {"cpu": "x", "cores": 2, "gpus": [], "tensorflow": "2",
                                          "keras": "3", "numpy": "2"},
                              "paper": [row, {"model": "realesrgan_x4", "error": "MemoryError: x"}]})
    text = render(stored)
    assert "## Paper-size inference: runtimes and PyTorch (run r1)" in text
    assert "| unet_256 | 256 | 1 | 54.4 | 900 | 300 | 250 | 600 | openvino | 2.4 |" in text
    assert "50 %" in text and "- realesrgan_x4: MemoryError: x" in text


def test_paper_rows_merge_model_by_model_and_only_the_asked_suites():
    from benchmarks.report import merge

    machine = {"cpu": "x", "cores": 2, "gpus": [], "tensorflow": "2", "keras": "3", "numpy": "2"}

    def run(run_id, rows, peak=None):
        results = {"command": "c", "date": "d", "machine": machine, "paper": rows}
        if peak:
            results["peak"] = {"gflops": peak}
        return as_stored(run_id, results)

    first = run("r1", [{"model": "a", "batch": 1}, {"model": "b", "batch": 1}], peak=100.0)
    merged = merge(first, run("r2", [{"model": "b", "batch": 1, "x": 2}], peak=50.0), suites=["paper"])
    assert [(r["model"], r["run"]) for r in merged["paper"]] == [("a", "r1"), ("b", "r2")]
    assert merged["peak"]["run"] == "r1" and merged["runs"]["r2"]["peak_gflops"] == 50.0


def test_build_preset_goes_through_the_converter_and_writes_a_preset(tmp_path):
    from benchmarks.paper import build_preset
    from kzoo.export.source import resolve

    out, size = build_preset("unet_128", tmp_path / "preset", width=2)
    assert size == 128 and {"metadata.json", "inference.keras", "model.keras"} <= {p.name for p in out.iterdir()}
    parts = resolve(out).parts
    assert list(parts) == ["generator"]
    image = np.zeros((1, 128, 128, 3), "float32")
    assert np.asarray(parts["generator"](image)).shape == (1, 128, 128, 3)


def test_int8_and_fp16_copies_are_timed_sessions_and_scored_against_fp32(tmp_path):
    from benchmarks.paper import variant_quality, variant_sessions
    from kzoo.export import export
    from kzoo.infer import OnnxModel
    from tests.export.common import fcn

    (result,) = export(fcn(channels=3), name="fcn", out=tmp_path, formats="onnx")
    sessions = variant_sessions(result.path, result.info, 16, ["ort_int8", "ort_fp16"], log=lambda m: None)
    assert (result.path / "model.int8.onnx").is_file() and (result.path / "model.fp16.onnx").is_file()
    x = np.zeros((1, 16, 16, 3), "float32")
    assert all(s.run(None, {"image": x})[0].shape == (1, 16, 16, 3) for s in sessions.values())
    scores = variant_quality(OnnxModel(result.path, runtime="ort").session, sessions, result.info, 16)
    # fp16 is closer to fp32 than int8, and both are far closer than a constant picture
    assert scores["ort_fp16_psnr_db"] > scores["ort_int8_psnr_db"] > scores["const_psnr_db"] + 10
