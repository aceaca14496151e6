"""The SR recipe end to end, tiny: SRResNet stage, then SRGAN initialised from it."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from kzoo.errors import KzooError
from kzoo.recipes.config import paper_config
from kzoo.recipes.runner import main, run
from kzoo.recipes.srgan import RECIPE

TINY = ["--preset", "quick", *RECIPE.tiny, "--epochs", "1", "--steps-per-epoch", "2", "--no-jit-compile"]


def test_paper_defaults():
    cfg = paper_config(RECIPE)
    m = cfg.model
    assert (cfg.image_size, m["scale"], cfg.batch_size, m["width"], m["num_blocks"]) == (96, 4, 16, 64, 16)
    assert (cfg.learning_rate, cfg.beta_1, m["adversarial_weight"]) == (1e-4, 0.9, 1e-3)
    assert cfg.epochs * cfg.steps_per_epoch == 10 ** 6 and cfg.stage == "srresnet"
    assert (m["content_loss"], cfg.feature_layer) == ("features", "block5_conv4")


def _final(out):
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    return lines, lines[-1]


def test_two_stages(tmp_path, smoke_run):
    first = smoke_run("srgan")  # the SRResNet stage
    _, final = _final(first)
    assert final["final"] and {"psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y"} <= set(final)
    assert final["psnr_y_gain_db"] == pytest.approx(final["psnr_y"] - final["bicubic_psnr_y"])
    assert 20 < final["bicubic_psnr_y"] < 40 and 0 < final["bicubic_ssim_y"] < 1
    grid = np.asarray(Image.open(first / "samples" / "epoch_001.png"))
    assert grid.shape == (2 + 2 * 34, 2 + 3 * 34, 3)  # 2 held-out rows of 32x32 crops: bicubic | SR | HR
    gen = keras.saving.load_model(first / "model" / "inference.keras")
    assert gen(np.zeros((1, 5, 6, 3), "float32")).shape == (1, 20, 24, 3)

    second = run(RECIPE, [*TINY, "--stage", "srgan", "--init-from", str(first),
                          "--out", str(tmp_path / "srgan")])
    lines, final2 = _final(second)
    # the SRGAN stage starts from the SRResNet's weights: same scores before training
    assert lines[0]["epoch"] == 0
    assert lines[0]["untrained"]["psnr_y"] == pytest.approx(final["psnr_y"], abs=1e-9)
    assert {"d_loss", "g_loss", "content_loss", "adversarial_loss"} <= set(lines[1])
    assert "psnr_y" in final2 and "ssim_y" in final2
    full = keras.saving.load_model(second / "model" / "model.keras")
    assert type(full).__name__ == "SRGAN" and full.content_loss == "features"
    assert keras.saving.load_model(second / "model" / "inference.keras").output_shape == (None, None, None, 3)


def test_init_from_checks_the_architecture(tmp_path):
    from kzoo.models.srgan import SRResNet

    SRResNet(width=8, num_blocks=1).save(tmp_path / "other.keras")
    with pytest.raises(KzooError, match="differs from this run's"):
        run(RECIPE, [*TINY, "--stage", "srgan", "--init-from", str(tmp_path / "other.keras"),
                     "--out", str(tmp_path / "run")])


@pytest.mark.parametrize("extra,match", [
    (["--stage", "esrgan"], "--stage must be srresnet or srgan"),
    (["--init-from", "/no/such/run"], "no run directory"),
    (["--feature-network", "vgg19", "--feature-weights", "/no/vgg.h5", "--stage", "srgan"], "never downloads"),
    (["--data", "{small}"], r"tiny\.png is 12x12, smaller than the 16x16"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, match):
    small = tmp_path / "photos"
    (small / "train").mkdir(parents=True)
    (small / "test").mkdir()
    Image.new("RGB", (12, 12)).save(small / "train" / "tiny.png")
    Image.new("RGB", (12, 12)).save(small / "test" / "t.png")
    extra = [e.replace("{small}", str(small)) for e in extra]
    assert main(RECIPE, [*TINY, *extra, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    import re

    assert re.search(match, err), err


@pytest.mark.slow
def test_quick_srresnet_beats_bicubic(tmp_path):
    """The quality target: after the quick schedule, >= 0.5 dB Y-PSNR over bicubic (held-out)."""
    out = run(RECIPE, ["--preset", "quick", "--out", str(tmp_path / "run")])
    _, final = _final(out)
    assert final["psnr_y_gain_db"] >= 0.5, final


def test_init_from_a_hub_preset(tmp_path, monkeypatch):
    """`--stage srgan --init-from srresnet-photos` starts from the shipped SRResNet preset."""
    from kzoo.models.srgan import SRResNet
    from kzoo.recipes.srgan import _init_path, _load_generator_weights

    monkeypatch.setenv("KZOO_HOME", str(tmp_path / "home"))
    path = _init_path("srresnet-photos")
    assert path.name == "inference.keras" and path.is_file()
    generator = SRResNet(width=32, num_blocks=4, norm="none", upsampled_skip=True)
    _load_generator_weights(generator, "srresnet-photos")
    preset = keras.saving.load_model(path)
    for a, b in zip(generator.weights, preset.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(KzooError, match="did you mean srresnet-photos"):
        _init_path("srresnet-photo")
