import numpy as np

from kzoo.recipes.img2img import SAMPLE_MIN_SIZE, Img2ImgConfig, show, verdict, versus


def test_paper_defaults():
    """pix2pix / CycleGAN training: Adam(2e-4, beta1 0.5), batch 1, 200 epochs (networks: the models')."""
    cfg = Img2ImgConfig()
    assert (cfg.batch_size, cfg.epochs, cfg.learning_rate, cfg.beta_1) == (1, 200, 2e-4, 0.5)


def test_show_puts_one_example_per_row_and_broadcasts_gray():
    gray = -np.ones((2, 4, 4, 1), "float32")
    colour = np.ones((2, 4, 4, 3), "float32")
    g = show([gray, colour])
    side = SAMPLE_MIN_SIZE  # 4 px images enlarged 32x, so a person can see them
    assert g.shape == (2 * (side + 2) + 2, 2 * (side + 2) + 2, 3)
    assert g[2, 2].tolist() == [0, 0, 0] and g[2, side + 4].tolist() == [255, 255, 255]
    assert g[side + 1, side + 1].tolist() == [0, 0, 0] and g[side + 2, 2].tolist() == [255, 255, 255]


def test_summary_line_puts_the_model_beside_its_baseline():
    scores = {"psnr": 21.3, "ssim": 0.86, "input_psnr": 20.1, "input_ssim": 0.85}
    assert versus("model", scores, "", "gray input", "input_") == \
        "held-out: model PSNR 21.30 dB / SSIM 0.860 vs gray input 20.10 dB / 0.850 — better"
    assert verdict({"psnr": 1, "ssim": 0.5}, {"psnr": 2, "ssim": 0.6}) == "worse"
    assert verdict({"psnr": 3, "ssim": 0.5}, {"psnr": 2, "ssim": 0.6}) == "mixed"
