from importlib import metadata

import kzoo


def test_runtime_check_reports_both_onnxruntime_wheels(monkeypatch):
    assert kzoo.runtime_check() == [] or "both" in kzoo.runtime_check()[0]
    monkeypatch.setattr(metadata, "version", lambda dist: "1.0")
    problems = kzoo.runtime_check()
    assert len(problems) == 1 and "onnxruntime-gpu" in problems[0]
