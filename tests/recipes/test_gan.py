"""The three GAN recipes: scores, fixed sample latents, MirroredStrategy, mixed precision."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from kzoo.recipes import cgan, dcgan, wgan_gp
from kzoo.recipes.runner import run

TINY = ["--preset", "quick", "--image-size", "16", "--width", "8", "--latent-dim", "8",
        "--batch-size", "8", "--epochs", "2", "--steps-per-epoch", "2", "--eval-samples", "64",
        "--no-jit-compile"]


@pytest.mark.parametrize("module", [dcgan, wgan_gp, cgan], ids=["dcgan", "wgan_gp", "cgan"])
def test_gan_run_scores_samples_against_the_untrained_generator(smoke_run, module):
    out = smoke_run(module.RECIPE.name)
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["model"]["width"] == 8 and config["changed_from_paper"]["width"] == 8
    grid = np.asarray(Image.open(out / "samples" / "epoch_001.png"))
    assert grid.ndim == 2 and grid.std() > 0
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["epoch"] == 0 and "frechet_distance" in lines[0]["untrained"]
    final = lines[-1]
    assert final["final"] and final["frechet_distance"] > 0
    assert ("class_consistency" in final) == (module is cgan)
    gen = keras.saving.load_model(out / "model" / "inference.keras")
    assert gen.output_shape == (None, 16, 16, 1)
    meta = json.loads((out / "model" / "metadata.json").read_text())
    assert meta["metrics"]["frechet_distance"] > 0


def test_same_latents_every_epoch(tmp_path):
    """The sample grid uses fixed inputs: a run with a negligible learning rate draws the same grid."""
    out = run(dcgan.RECIPE, [*TINY, "--learning-rate", "1e-12", "--out", str(tmp_path / "run")])
    a, b = (np.asarray(Image.open(out / "samples" / f"epoch_00{i}.png")) for i in (1, 2))
    # batch-norm moving stats still move during training; the latents do not
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9


def test_mirrored_strategy_run(tmp_path):
    out = run(dcgan.RECIPE, [*TINY, "--strategy", "mirrored", "--out", str(tmp_path / "run")])
    assert json.loads((out / "config.json").read_text())["replicas"] == 2
    assert (out / "model" / "inference.keras").exists()


def test_mixed_precision_run_restores_the_policy(tmp_path):
    out = run(cgan.RECIPE, [*TINY, "--mixed-precision", "--out", str(tmp_path / "run")])
    assert keras.mixed_precision.global_policy().name == "float32"
    gen = keras.saving.load_model(out / "model" / "inference.keras")
    assert gen.get_layer("up1_conv").dtype_policy.name == "mixed_bfloat16"  # CPU: bfloat16
    final = [l for l in (out / "metrics.jsonl").read_text().splitlines() if '"final"' in l]
    assert final and "class_consistency" in final[0]
