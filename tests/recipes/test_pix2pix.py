"""pix2pix recipe: scores against baselines; bad input through the CLI entry point."""

import json

import keras
import numpy as np
from PIL import Image

from kzoo.recipes.pix2pix import RECIPE
from kzoo.recipes.runner import main

TINY = ["--preset", "quick", *RECIPE.tiny, "--epochs", "1", "--steps-per-epoch", "1", "--no-jit-compile"]


def test_run_scores_against_trivial_baselines(smoke_run):
    out = smoke_run("pix2pix")
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["model"]["l1_weight"] == 100.0 and config["changed_from_paper"]["width"] == 4
    grid = np.asarray(Image.open(out / "samples" / "epoch_001.png"))
    assert grid.shape == (4 * 18 + 2, 3 * 18 + 2, 3)  # 4 rows of input | output | target
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert "psnr" in lines[0]["untrained"]
    final = lines[-1]
    for key in ("psnr", "ssim", "l1", "input_psnr", "input_ssim", "mean_color_psnr"):
        assert np.isfinite(final[key]), key
    assert final["input_psnr"] > 10  # gray vs colour of the same crop
    gen = keras.saving.load_model(out / "model" / "inference.keras")
    assert gen.predict(np.zeros((1, 32, 32, 1), "float32"), verbose=0).shape == (1, 32, 32, 3)


def test_bad_folder_is_one_line_and_exit_2(tmp_path, capsys):
    Image.fromarray(np.zeros((32, 65, 3), np.uint8)).save(tmp_path / "odd.png")
    code = main(RECIPE, [*TINY, "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "odd.png" in err
    assert not (tmp_path / "run").exists()
    assert main(RECIPE, [*TINY, "--data", "builtin:photos/domains", "--out", str(tmp_path / "r2")]) == 2
    assert "unpaired" in capsys.readouterr().err
