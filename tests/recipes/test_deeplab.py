from kzoo.recipes.deeplab import RECIPE, DeepLabConfig
from kzoo.recipes.runner import load_preset


def test_paper_defaults():
    cfg = DeepLabConfig()
    assert (cfg.blocks, cfg.multi_grid, cfg.aspp_rates) == ((3, 4, 23, 3), (1, 2, 4), (6, 12, 18))
    assert (cfg.low_level_filters, cfg.decoder_filters, cfg.aspp_filters) == (48, 256, 256)
    assert (cfg.learning_rate, cfg.poly_power, cfg.momentum, cfg.batch_size) == (0.007, 0.9, 0.9, 16)
    assert cfg.backbone == "resnet" and RECIPE.name == "deeplab"
    assert cfg.scale_range == (0.5, 2.0) and cfg.random_flip  # Sec. 4 augmentation
    assert load_preset(RECIPE, "quick")["blocks"] == (1, 1, 1, 1)
