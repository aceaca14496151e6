import subprocess
import sys

from kzoo.cli import main, recipe_names


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "dcgan" in out and "cgan" in out
    assert {"dcgan", "wgan_gp", "cgan"} <= set(recipe_names())


def test_console_script_train_runs_a_recipe(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "kzoo.cli", "train", "dcgan", "--preset", "quick", "--out", str(tmp_path / "r"),
         "--image-size", "8", "--width", "4", "--latent-dim", "4", "--batch-size", "8",
         "--epochs", "1", "--steps-per-epoch", "1", "--eval-samples", "0"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "done in" in proc.stdout and (tmp_path / "r" / "model" / "inference.keras").exists()


def test_bad_subcommand_is_one_line_exit_2(capsys):
    assert main(["frobnicate"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
