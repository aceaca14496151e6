import numpy as np

from kzoo.recipes.img2img import Img2ImgConfig, show


def test_paper_defaults():
    """pix2pix / CycleGAN training: Adam(2e-4, beta1 0.5), batch 1, 200 epochs (networks: the models')."""
    cfg = Img2ImgConfig()
    assert (cfg.batch_size, cfg.epochs, cfg.learning_rate, cfg.beta_1) == (1, 200, 2e-4, 0.5)


def test_show_puts_one_example_per_row_and_broadcasts_gray():
    gray = -np.ones((2, 4, 4, 1), "float32")
    colour = np.ones((2, 4, 4, 3), "float32")
    g = show([gray, colour])
    assert g.shape == (2 * 6 + 2, 2 * 6 + 2, 3)
    assert g[2, 2].tolist() == [0, 0, 0] and g[2, 8].tolist() == [255, 255, 255]
