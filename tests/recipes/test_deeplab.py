import pytest

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


@pytest.mark.slow
def test_quick_schedule_quality(tmp_path):
    """The README's number: held-out mean IoU >= 0.85 on builtin:shapes after the quick schedule."""
    import json

    from kzoo.recipes.runner import run

    out = run(RECIPE, ["--preset", "quick", "--out", str(tmp_path / "run")])
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["heldout_mean_iou"] >= 0.85
