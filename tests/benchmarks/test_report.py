"""Stored benchmark rows keep their run: merging a newer run of some suites leaves the
others -- and their share of peak -- as they were."""

import json

from benchmarks import report

MACHINE = {"cpu": "Test CPU", "cores": 2, "gpus": [], "tensorflow": "t", "keras": "k", "numpy": "n"}


def _run(date, peak=None, train=None, command="python -m benchmarks"):
    flat = {"command": command, "date": date, "machine": dict(MACHINE, cpu=f"CPU of {date}")}
    if peak:
        flat["peak"] = {"n": 8, "dtype": "float32", "repeats": 1, "gflops": peak}
    if train:
        flat["train"] = train
    return report.as_stored(f"{date}-run", flat)


TRAIN_ROW = {"recipe": "dcgan", "image_size": 32, "batch": 64, "images_per_step": 64, "xla": False,
             "precision": "float32", "fit_images_per_s": 640.0, "train_step_gflop_analytic": 5.0}


def _share(text):
    training = text.split("## Training throughput")[1].split("\n## ")[0]
    (line,) = [l for l in training.splitlines() if l.startswith("| dcgan |")]
    return line.split("|")[-2].strip()


def test_a_peak_only_run_does_not_change_old_rows_share_of_peak():
    old = _run("2026-01-01", peak=100.0, train=[TRAIN_ROW])  # 10 steps/s x 5 GFLOP = 50 GFLOP/s
    assert _share(report.render(old)) == "50.0 %"
    merged = report.merge(old, _run("2026-02-02", peak=200.0))
    assert merged["peak"]["gflops"] == 200.0 and merged["peak"]["run"] == "2026-02-02-run"
    assert merged["train"] == old["train"] and merged["train"][0]["run"] == "2026-01-01-run"
    text = report.render(merged)
    assert _share(text) == "50.0 %"  # against its own run's peak, not the new 200
    assert set(merged["runs"]) == {"2026-01-01-run", "2026-02-02-run"}
    assert "CPU of 2026-01-01" in text and "CPU of 2026-02-02" in text  # each run's machine
    assert "## Training throughput (run 2026-01-01-run)" in text


def test_a_newer_run_of_a_suite_replaces_its_rows_and_unused_runs_are_dropped():
    old = _run("2026-01-01", peak=100.0, train=[TRAIN_ROW])
    newer = _run("2026-03-03", train=[dict(TRAIN_ROW, fit_images_per_s=1280.0)])
    merged = report.merge(report.merge(old, _run("2026-02-02", peak=200.0)), newer)
    assert [r["run"] for r in merged["train"]] == ["2026-03-03-run"]
    assert set(merged["runs"]) == {"2026-02-02-run", "2026-03-03-run"}  # the old run has no rows left
    assert _share(report.render(merged)) == ""  # its run measured no peak: no share claimed
    assert "no peak measured in this run" in report.render(merged)


def test_files_written_before_runs_were_recorded_are_one_run():
    legacy = {"command": "python -m benchmarks", "date": "2025-12-01", "machine": MACHINE,
              "peak": {"n": 8, "dtype": "float32", "repeats": 1, "gflops": 100.0}, "train": [TRAIN_ROW],
              "notes": ["a note"]}
    upgraded = report.upgrade(legacy)
    assert upgraded["runs"]["2025-12-01-legacy"]["peak_gflops"] == 100.0
    assert upgraded["train"][0]["run"] == "2025-12-01-legacy" and upgraded["notes"] == ["a note"]
    assert report.render(legacy) == report.render(upgraded)


def test_record_merges_run_folders_into_the_stored_files(tmp_path):
    out, md = tmp_path / "results.json", tmp_path / "RESULTS.md"
    out.write_text(json.dumps(_run("2026-01-01", peak=100.0, train=[TRAIN_ROW])))
    run = tmp_path / "runs" / "x" / "results.json"
    run.parent.mkdir(parents=True)
    run.write_text(json.dumps(_run("2026-02-02", peak=200.0)))
    assert report.main([str(run), "--out", str(out), "--report", str(md)]) == 0
    stored = json.loads(out.read_text())
    assert stored["peak"]["gflops"] == 200.0 and stored["train"][0]["run"] == "2026-01-01-run"
    assert md.read_text() == report.render(stored) + "\n"


def test_the_tracked_report_is_rendered_from_the_tracked_rows():
    stored = json.loads((report.HERE / "results.json").read_text())
    assert (report.HERE / "RESULTS.md").read_text() == report.render(stored) + "\n"


def test_inference_rows_merge_recipe_by_recipe():
    from benchmarks.report import as_stored, merge

    machine = {"cpu": "x", "cores": 2, "gpus": [], "tensorflow": "2", "keras": "3", "numpy": "2"}

    def run(run_id, rows):
        return as_stored(run_id, {"command": "c", "date": "d", "machine": machine, "infer": rows})

    first = run("r1", [{"recipe": "dcgan", "endpoint": "dcgan", "batch": 1},
                       {"recipe": "srgan", "endpoint": "srgan", "batch": 1}])
    merged = merge(first, run("r2", [{"recipe": "srgan", "endpoint": "srgan", "batch": 1, "x": 1}]))
    assert [(r["recipe"], r["run"]) for r in merged["infer"]] == [("dcgan", "r1"), ("srgan", "r2")]
