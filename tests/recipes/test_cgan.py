import pytest

from kzoo.errors import KzooError
from kzoo.recipes.cgan import RECIPE
from kzoo.recipes.config import resolve_config


def test_needs_labelled_data():
    cfg, _, _, _ = resolve_config(RECIPE, ["--data", "builtin:faces", "--image-size", "16"])
    with pytest.raises(KzooError, match="needs labelled data"):
        RECIPE.load_data(cfg)


@pytest.mark.slow
def test_quick_schedule_quality(tmp_path):
    """The README's number: class consistency >= 0.80 after the quick schedule (~2.5 min)."""
    import json

    from kzoo.recipes.runner import run

    out = run(RECIPE, ["--preset", "quick", "--out", str(tmp_path / "run")])
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["class_consistency"] >= 0.80
    assert final["frechet_distance"] < final["untrained"]["frechet_distance"] / 4
