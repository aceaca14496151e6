import pytest

from kzoo.recipes.config import load_preset, paper_config
from kzoo.recipes.unet import RECIPE


def test_paper_defaults():
    cfg = paper_config(RECIPE)
    m = cfg.model
    assert (m["depth"], m["width"], m["norm"], m["dropout"]) == (4, 64, None, 0.5)
    assert (cfg.optimizer, cfg.momentum, cfg.batch_size) == ("sgd", 0.99, 1)
    assert cfg.data == "builtin:shapes" and RECIPE.name == "unet"
    train, model = load_preset(RECIPE, "quick")
    assert train["image_size"] == 64 and model["norm"] == "batch"


@pytest.mark.slow
def test_quick_schedule_quality(tmp_path):
    """The README's number: held-out mean IoU >= 0.85 on builtin:shapes after the quick schedule."""
    import json

    from kzoo.recipes.runner import run

    out = run(RECIPE, ["--preset", "quick", "--out", str(tmp_path / "run")])
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["heldout_mean_iou"] >= 0.85
