"""benchmarks/backends.py: a row per family and backend, and the JAX/TF table."""

from benchmarks import backends


def test_measure_gives_a_row_on_this_backend():
    row = backends.measure("vae", steps=1, warmup=1)
    assert row["backend"] == "tensorflow" and row["images_per_s"] > 0 and row["batch"] == 64


def test_render_pairs_backends_and_reports_failures():
    rows = [{"family": "dcgan", "model": "dcgan_digits", "backend": "tensorflow", "batch": 64,
             "images_per_s": 100.0},
            {"family": "dcgan", "model": "dcgan_digits", "backend": "jax", "batch": 64,
             "images_per_s": 50.0},
            {"family": "vae", "backend": "jax", "error": "ValueError: boom"}]
    text = backends.render({"command": "c", "date": "d", "machine": "m", "rows": rows,
                            "notes": ["Not run on a GPU."]})
    assert "| dcgan | dcgan_digits | 64 | 100.0 | 50.0 | 0.50 |" in text
    assert "| vae |  |  | not run | ValueError: boom |  |" in text and "Not run on a GPU." in text


def test_results_md_gets_the_same_rows_and_the_load(tmp_path):
    import json

    from benchmarks import report

    result = {"command": "python -m benchmarks.backends --steps 3", "date": "d", "machine": "m", "cores": 2,
              "load_average": {"tensorflow": [4.0, 6.5], "jax": [7.0, 8.0]},
              "rows": [{"family": "vae", "model": "vae", "backend": "tensorflow", "batch": 64,
                        "images_per_s": 80.0},
                       {"family": "vae", "model": "vae", "backend": "jax", "batch": 64,
                        "images_per_s": 100.0}], "notes": []}
    path = tmp_path / "backends.json"
    assert report.backends_section(path) == []  # not measured: no section
    path.write_text(json.dumps(result))
    section = "\n".join(report.backends_section(path))
    row = "| vae | vae | 64 | 80.0 | 100.0 | 1.25 |"
    assert section.startswith("## Backends") and row in section and row in backends.render(result)
    assert "jax worker: 7.0 at its start, 8.0 at its end" in section and "under that load" in section


def test_every_family_is_measured_at_its_quick_preset():
    """The families are the registered recipes; sizes and batch are the quick presets'
    (they drifted when written here by hand: pix2pix at width 32 RGB)."""
    from kzoo.recipes.config import load_preset
    from kzoo.recipes.registry import get_recipe, list_recipes

    assert backends.registered_families() == list_recipes()
    for family in list_recipes():
        recipe = get_recipe(family)
        train, model_opts = load_preset(recipe, "quick")
        name, args, batch = backends.quick_model(family)
        assert name == recipe.model and batch == train.get("batch_size", recipe.config_cls.batch_size)
        assert model_opts.items() <= args.items(), family
        if "image_size" in train and "image_size" in recipe.options:
            assert args["image_size"] == train["image_size"], family
    name, args, batch = backends.quick_model("pix2pix")
    assert (args["width"], args["color"], args["input_channels"], args["output_channels"], batch) == (8, "lab", 1, 3, 4)


def test_every_family_has_its_paper_preset_without_building_it():
    """`--preset paper`: the paper preset's model options, image size and batch; the data-decided
    arguments at the model's defaults (the paper dataset's), not the tiny test sizes."""
    from kzoo.recipes.config import load_preset, make_config, model_options
    from kzoo.recipes.registry import get_recipe, list_recipes

    for family in list_recipes():
        recipe = get_recipe(family)
        train, model_opts = load_preset(recipe, "paper")
        cfg = make_config(recipe, train, model_opts)
        name, args, batch = backends.paper_model(family)
        assert name == recipe.model and batch == cfg.batch_size, family
        assert model_opts.items() <= args.items(), family
        if "image_size" in recipe.options:
            assert args["image_size"] == cfg.image_size, family
        defaults = model_options(recipe.model)
        assert all(k not in args or args[k] == defaults[k].default for k in recipe.data_args), family
    name, args, batch = backends.paper_model("deeplab")
    assert (args["image_size"], args["num_classes"], batch) == (512, 21, 16)
    assert backends.paper_model("pix2pix")[1]["width"] == 64


def test_paper_rows_render_with_size_params_and_errors():
    rows = [{"family": "pix2pix", "model": "pix2pix", "backend": "jax", "preset": "paper", "image_size": 256,
             "batch": 1, "params": 57_000_000, "steps_per_s": 20.0, "images_per_s": 20.0, "step_ms": 50.0},
            {"family": "deeplab", "backend": "jax", "preset": "paper", "error": "XlaRuntimeError: RESOURCE_EXHAUSTED"}]
    result = {"command": "c", "date": "2026-12-07", "machine": "x86_64, 16 cores; jax: gpu: NVIDIA H100",
              "preset": "paper", "rows": rows, "notes": [],
              "onnx_rows": [{"model": "unet_256/1", "skipped": "onnxruntime 1.30.0 has no CUDAExecutionProvider"},
                            {"model": "ddpm/1", "weights": "redrawn", "batch": 16, "cpu_ms": 100.0,
                             "cuda_ms": 5.0, "cuda_speedup": 20.0}]}
    text = backends.render(result)
    assert "| ddpm/1 | redrawn | 16 | 100.00 | 5.00 | 20.0 |" in text
    assert "| pix2pix | pix2pix | jax | 256 | 1 | 57.0 | 20.00 | 20.0 | 50.0 |" in text
    assert "| deeplab |  | jax |  |  |  | XlaRuntimeError: RESOURCE_EXHAUSTED |  |  |" in text
    assert "NVIDIA H100" in text and "- unet_256/1: onnxruntime 1.30.0 has no CUDAExecutionProvider" in text


def test_no_accelerator_is_recorded_and_reported(tmp_path):
    from benchmarks import report

    out, md = tmp_path / "backends_paper.json", tmp_path / "BACKENDS_PAPER.md"
    assert report.accelerator_section(out) == []
    assert backends.main(["--preset", "paper", "--not-run", "no accelerator was lent to this task",
                          "--out", str(out), "--report", str(md)]) == 0
    section = "\n".join(report.accelerator_section(out))
    assert section.startswith("## Paper sizes on an accelerator") and "no accelerator was lent" in section
    assert "Not measured on " in md.read_text() and "On an accelerator" in md.read_text()


def test_a_run_keeps_its_rows_when_a_family_times_out_or_the_budget_is_spent(tmp_path, monkeypatch):
    """Each family in its own worker: a timeout (or crash) is that family's row; a spent budget
    leaves the rest unrun, said so; the ONNX rows follow (skipped without a CUDA provider)."""
    import json

    import pytest

    from tests.benchmarks.test_providers import tiny_onnx

    pytest.importorskip("jax")  # the jax extra
    onnx = tiny_onnx(tmp_path / "export" / "conv" / "1" / "model.onnx")
    out, md = tmp_path / "b.json", tmp_path / "B.md"
    args = ["--backends", "jax", "--families", "vae,dcgan", "--out", str(out), "--report", str(md),
            "--onnx", str(onnx.parent.parent.parent), "--onnx-repeats", "1"]
    assert backends.main([*args, "--family-timeout", "0.001"]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["error"] for r in rows] == ["timed out after 0.001 s"] * 2
    assert backends.main([*args, "--budget", "0"]) == 0
    result = json.loads(out.read_text())
    assert [r["error"] for r in result["rows"]] == ["not run: the run's budget of 0 s was spent"] * 2
    assert result["complete"] and result["onnx_rows"][0]["model"] == "conv/1"


def test_the_device_script_trains_a_paper_family_where_tensorflow_is_missing(tmp_path):
    """scripts/device_bench.sh run, as on the accelerator machine (JAX, no TensorFlow): the
    paper-size VAE for one step where `import tensorflow` fails (a package of that name on
    PYTHONPATH raises ImportError, as a missing one does; Keras then skips its own optional
    TensorFlow calls, e.g. in `set_random_seed`), then the ONNX rows of the prepared folder."""
    import json
    import os
    import subprocess
    import sys

    import pytest

    from tests.benchmarks.test_providers import tiny_onnx

    pytest.importorskip("jax")  # the jax extra
    blocker = tmp_path / "no_tf" / "tensorflow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("TensorFlow is not installed here")\n')
    tiny_onnx(tmp_path / "dev" / "onnx" / "conv" / "1" / "model.onnx")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(blocker.parent), os.environ.get("PYTHONPATH")])),
           "PYTHON": sys.executable, "OUT": str(tmp_path / "out"), "DEVBENCH": str(tmp_path / "dev"),
           "FAMILIES": "vae", "STEPS": "1", "ONNX_REPEATS": "1"}
    script = backends.HERE.parent / "scripts" / "device_bench.sh"
    run = subprocess.run(["bash", str(script), "run"], env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads((tmp_path / "out" / "backends_paper.json").read_text())
    assert result["tensorflow_imported"] == {"jax": False} and result["complete"]
    (row,) = result["rows"]
    assert (row["family"], row["backend"], row["preset"], row["image_size"], row["batch"]) == ("vae", "jax", "paper", 32, 100)
    assert row["images_per_s"] > 0 and "jax: cpu" in result["machine"]
    assert [r["model"] for r in result["onnx_rows"]] == ["conv/1"]
    assert (tmp_path / "out" / "log.txt").is_file() and (tmp_path / "out" / "BACKENDS_PAPER.md").is_file()


def test_the_gpus_are_named_from_nvidia_smi(monkeypatch):
    import shutil
    import subprocess

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, stdout="NVIDIA H100 80GB HBM3, 81559 MiB, 580.159.04\n"))
    assert backends.gpus() == ["NVIDIA H100 80GB HBM3 (81559 MiB, driver 580.159.04)"]
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert backends.gpus() == []
