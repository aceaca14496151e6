import pytest

from kzoo.recipes.config import load_preset, paper_config
from kzoo.recipes.deeplab import RECIPE


def test_paper_defaults():
    cfg = paper_config(RECIPE)
    m = cfg.model
    assert (m["blocks"], m["multi_grid"], m["aspp_rates"]) == ((3, 4, 23, 3), (1, 2, 4), (6, 12, 18))
    assert (m["low_level_filters"], m["decoder_filters"], m["aspp_filters"]) == (48, 256, 256)
    assert (cfg.learning_rate, cfg.poly_power, cfg.momentum, cfg.batch_size) == (0.007, 0.9, 0.9, 16)
    assert m["backbone"] == "resnet" and RECIPE.model == "deeplab_v3_plus"
    assert cfg.scale_range == (0.5, 2.0) and cfg.random_flip  # Sec. 4 augmentation
    assert load_preset(RECIPE, "quick")[1]["blocks"] == (1, 1, 1, 1)


@pytest.mark.slow
def test_quick_schedule_quality(tmp_path):
    """The README's number: held-out mean IoU >= 0.85 on builtin:shapes after the quick schedule."""
    import json

    from kzoo.recipes.runner import run

    out = run(RECIPE, ["--preset", "quick", "--out", str(tmp_path / "run")])
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["heldout_mean_iou"] >= 0.85
