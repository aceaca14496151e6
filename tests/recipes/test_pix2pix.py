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
    assert config["changed_from_paper"]["width"] == 4
    model = config["config"]["model"]  # the quick preset colourises in Lab, L1 weighted 1000
    assert (model["color"], model["upsample"], model["l1_weight"]) == ("lab", "resize", 1000.0)
    grid = np.asarray(Image.open(out / "samples" / "epoch_001.png"))
    assert grid.shape == (4 * 130 + 2, 3 * 130 + 2, 3)  # 4 rows of input | output | target, 16 px x 8
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert "psnr" in lines[0]["untrained"]
    final = lines[-1]
    for key in ("psnr", "ssim", "l1", "input_psnr", "input_ssim", "mean_color_psnr", "colorfulness",
                "target_colorfulness", "checkerboard", "target_checkerboard"):
        assert np.isfinite(final[key]), key
    assert final["input_psnr"] > 10 and final["input_colorfulness"] == 0  # gray vs colour of the same crop
    assert final["target_colorfulness"] > 10
    gen = keras.saving.load_model(out / "model" / "inference.keras")
    assert gen.predict(np.zeros((1, 32, 32, 1), "float32"), verbose=0).shape == (1, 32, 32, 3)


def test_last_line_is_the_held_out_result_beside_the_gray_baseline(tmp_path, capsys):
    assert main(RECIPE, [*TINY, "--eval-samples", "2", "--out", str(tmp_path / "run")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("kzoo: held-out: model PSNR ") and "vs gray input (ab = 0)" in last
    assert last.rsplit(" ", 1)[-1] in ("better", "worse", "mixed")


def test_bad_folder_is_one_line_and_exit_2(tmp_path, capsys):
    Image.fromarray(np.zeros((32, 65, 3), np.uint8)).save(tmp_path / "odd.png")
    code = main(RECIPE, [*TINY, "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "odd.png" in err
    assert not (tmp_path / "run").exists()
    assert main(RECIPE, [*TINY, "--data", "builtin:photos/domains", "--out", str(tmp_path / "r2")]) == 2
    assert "unpaired" in capsys.readouterr().err
