from kzoo.recipes.runner import load_preset
from kzoo.recipes.unet import RECIPE, UNetConfig


def test_paper_defaults():
    cfg = UNetConfig()
    assert (cfg.depth, cfg.width, cfg.norm, cfg.dropout) == (4, 64, "none", 0.5)
    assert (cfg.optimizer, cfg.momentum, cfg.batch_size) == ("sgd", 0.99, 1)
    assert cfg.data == "builtin:shapes" and RECIPE.name == "unet"
    assert load_preset(RECIPE, "quick")["image_size"] == 64
