"""CycleGAN recipe end to end, tiny, in-process; the LR decay it sets; bad input."""

import json

import keras
import numpy as np
from PIL import Image

from kzoo.models.cyclegan import LinearDecayAfterHalf
from kzoo.recipes.cyclegan import RECIPE
from kzoo.recipes.runner import main, run

TINY = ["--preset", "quick", "--image-size", "16", "--width", "4", "--n-layers", "2",
        "--num-blocks", "1", "--pool-size", "3", "--batch-size", "1", "--epochs", "2",
        "--steps-per-epoch", "3", "--num-crops", "6", "--eval-images", "3", "--no-jit-compile"]


def test_recipe_writes_a_complete_run_dir(tmp_path):
    out = run(RECIPE, [*TINY, "--out", str(tmp_path / "run")])
    grid = np.asarray(Image.open(out / "samples" / "epoch_001.png"))
    assert grid.shape == (4 * 18 + 2, 3 * 18 + 2, 3)  # rows of A | G_ab(A) | G_ba(G_ab(A))
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("cycle_psnr", "cycle_ssim", "cycle_psnr_a", "cycle_psnr_b", "ab_psnr", "ab_identity_psnr"):
        assert np.isfinite(final[key]), key
    model = keras.saving.load_model(out / "model" / "model.keras")
    schedule = keras.saving.deserialize_keras_object(model.g_optimizer.get_config()["learning_rate"])
    assert isinstance(schedule, LinearDecayAfterHalf) and schedule.total_steps == 2 * 3
    assert int(model.g_optimizer.iterations.numpy()) == 6
    assert float(model.g_optimizer.learning_rate) == 0.0  # decayed to zero at the end
    assert int(model.pool_a.count.numpy()) == 3  # the history pool was filled and saved
    assert set(model.inference_parts()) == {"generator_ab", "generator_ba"}


def test_empty_domain_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "trainA").mkdir()
    (tmp_path / "trainB").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "trainA" / "a.png")
    code = main(RECIPE, [*TINY, "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "trainB" in err
