import numpy as np

from kzoo.recipes.img2img import Img2ImgConfig, show, total_steps


def test_paper_defaults():
    cfg = Img2ImgConfig()
    assert (cfg.image_size, cfg.batch_size, cfg.width, cfg.n_layers) == (256, 1, 64, 3)
    assert (cfg.learning_rate, cfg.beta_1) == (2e-4, 0.5)


def test_total_steps_counts_like_the_runner():
    class Data:
        num_examples = 100

    cfg = Img2ImgConfig(epochs=3, batch_size=8)
    assert total_steps(cfg, Data) == 3 * 12
    assert total_steps(Img2ImgConfig(epochs=3, steps_per_epoch=5), Data) == 15


def test_show_puts_one_example_per_row_and_broadcasts_gray():
    gray = -np.ones((2, 4, 4, 1), "float32")
    colour = np.ones((2, 4, 4, 3), "float32")
    g = show([gray, colour])
    assert g.shape == (2 * 6 + 2, 2 * 6 + 2, 3)
    assert g[2, 2].tolist() == [0, 0, 0] and g[2, 8].tolist() == [255, 255, 255]
