"""The `kzoo` command: list, train, export, predict."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from kzoo.cli import main
from kzoo.recipes.registry import list_recipes
from tests.export.common import image_model, save_preset, save_run, tiny_cgan


def _error(capsys):
    err = [l for l in capsys.readouterr().err.strip().splitlines() if not l.startswith("kzoo: ")]
    assert len(err) == 1 and err[0].startswith("error: "), err  # one line, no traceback
    return err[0]


def test_export_then_predict(tmp_path, capsys):
    run = save_run(tmp_path / "run", tiny_cgan(), "cgan")
    out = tmp_path / "export"
    assert main(["export", str(run), "--out", str(out), "--name", "digits-cgan"]) == 0
    stdout = capsys.readouterr().out
    assert f"{out / 'digits-cgan' / '1'}: model.onnx, saved_model.pb, kzoo.json" in stdout
    assert json.loads((out / "digits-cgan" / "1" / "kzoo.json").read_text())["opset"] == 17
    assert main(["predict", str(out / "digits-cgan"), "--num", "2", "--label", "5",
                 "--out", str(tmp_path / "gen"), "--providers", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "on onnxruntime CPUExecutionProvider" in captured.err
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == [
        "image_000_label5.png", "image_001_label5.png"]
    assert main(["export", str(run), "--out", str(out), "--name", "digits-cgan", "--version", "1"]) == 2
    assert "already exists; pass --force" in _error(capsys)


def test_a_preset_without_a_model_card_is_refused(tmp_path, capsys):
    preset = save_preset(tmp_path / "fcn", image_model(channels=3, size=8), {})
    assert main(["export", str(preset), "--out", str(tmp_path / "export"), "--formats", "onnx"]) == 2
    assert "has no model card" in _error(capsys)
    assert not (tmp_path / "export" / "fcn").exists()


def test_predict_image_model_and_bad_images(tmp_path, capsys):
    from kzoo.export import export

    from tests.export.common import fcn

    out = tmp_path / "export"
    export(fcn(channels=3, size=8, dynamic=False), name="fcn", out=out, formats="onnx")
    capsys.readouterr()
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "ok.png")
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(tmp_path / "gray.png")
    Image.fromarray(np.full((9, 8, 3), 200, np.uint8)).save(tmp_path / "big.png")
    assert main(["predict", str(out / "fcn"), str(tmp_path / "ok.png"), "--out", str(tmp_path / "p")]) == 0
    assert np.asarray(Image.open(tmp_path / "p" / "ok.png")).shape == (8, 8, 3)
    capsys.readouterr()
    assert main(["predict", str(out / "fcn"), str(tmp_path / "gray.png")]) == 2
    assert "gray.png has 1 channels; fcn expects 3 (RGB) images" in _error(capsys)
    assert main(["predict", str(out / "fcn"), str(tmp_path / "big.png")]) == 2
    assert "big.png: fcn takes 8x8 images, got 9x8" in _error(capsys)


@pytest.mark.parametrize("argv,match", [
    (["export", "no/such/run"], "does not exist"),
    (["export", "RUN", "--formats", "pt"], "unknown export format"),
    (["predict", "no/such/export"], "does not exist"),
    (["export", "RUN", "--bogus"], "unexpected arguments --bogus"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, match):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    argv = [str(tmp_path / "run") if a == "RUN" else a for a in argv]
    assert main(argv) == 2
    assert match in _error(capsys)


def test_run_without_a_trained_model(tmp_path, capsys):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    assert main(["export", str(tmp_path / "run")]) == 2
    assert "has no trained model" in _error(capsys)


def test_list_shows_exactly_the_registered_recipes(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "recipes: " + ", ".join(list_recipes())
    assert "segmentation" not in lines[1] and "img2img" not in lines[1] and "dcgan" in lines[1]


@pytest.mark.parametrize("name,match", [
    ("segmentation", "unknown recipe 'segmentation'; known: cgan"),  # a shared module, not a recipe
    ("dcgn", "did you mean dcgan"),
])
def test_train_unknown_recipe_is_one_line_exit_2(capsys, name, match):
    assert main(["train", name]) == 2
    assert match in _error(capsys)


def test_console_script_train_runs_a_recipe(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "kzoo.cli", "train", "dcgan", "--preset", "quick", "--out", str(tmp_path / "r"),
         "--image-size", "8", "--width", "4", "--latent-dim", "4", "--batch-size", "8",
         "--epochs", "1", "--steps-per-epoch", "1", "--eval-samples", "0"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "done in" in proc.stdout and (tmp_path / "r" / "model" / "inference.keras").exists()
    # TensorFlow's start-up chatter is hidden (shown with --verbose)
    assert "absl::InitializeLog" not in proc.stderr and "cudart_stub" not in proc.stderr, proc.stderr


BAD_FLAGS = [
    ["train", "dcgan", "--seed", "-1"], ["train", "dcgan", "--learning-rate", "nan"],
    ["train", "dcgan", "--batch-size", "0"], ["train", "dcgan", "--eval-samples", "-3"],
    ["train", "dcgan", "--width", "wide"], ["train", "dcgan", "--widht", "3"],
    ["train", "vae", "--data", "/no/such/folder"], ["train", "deeplab", "--aspp-rates", "6,x"],
    ["serve", "--port", "99999"], ["serve", "--port", "-1"], ["serve", "--batch-wait-ms", "nan"],
    ["export", "RUN", "--opset", "0"], ["predict", "MODEL", "--num", "0"], ["hub", "info"], ["train"],
]


def test_flags_are_checked_before_tensorflow_is_imported():
    """Every bad flag answers before TensorFlow (seconds to import) is loaded, through
    `kzoo` and through a recipe's own entry point."""
    code = ("import sys\nfrom kzoo.cli import main\nfrom kzoo.recipes import dcgan\n"
            "from kzoo.recipes.runner import main as recipe_main\n"
            f"for argv in {BAD_FLAGS!r}:\n    assert main(argv) == 2, argv\n"
            "assert recipe_main(dcgan.RECIPE, ['--seed', '-1']) == 2\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == len(BAD_FLAGS) + 1 and all(l.startswith("error: ") for l in lines), lines


def test_bad_subcommand_is_one_line_exit_2(capsys):
    assert main(["frobnicate"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


_LIGHT_COMMANDS = r"""
import argparse, contextlib, io, json, sys
from kzoo.cli import build_parser, main
from kzoo.recipes.registry import list_recipes

def commands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, prefix + (name,))
    yield prefix

argvs = [["list"]] + [[*c, "--help"] for c in commands(build_parser()) if c != ("train",)]
argvs += [["train", r, "--help"] for r in list_recipes()]
for argv in argvs:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    assert code in (0, None) and out.getvalue(), (argv, code)
print(json.dumps({"argvs": argvs, "heavy": sorted(m for m in ("tensorflow", "jax", "keras") if m in sys.modules)}))
"""


def test_list_and_every_help_are_light_and_quiet():
    """`kzoo list` and every `--help` (each subcommand's, each recipe's) import neither
    TensorFlow, JAX nor Keras, and print nothing on stderr."""
    proc = subprocess.run([sys.executable, "-c", _LIGHT_COMMANDS], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["heavy"] == []
    ran = {" ".join(a) for a in result["argvs"]}
    assert {"list", "--help", "export --help", "predict --help", "serve --help", "hub --help",
            "hub convert --help", "train dcgan --help"} <= ran
