import pytest

from kzoo.recipes.config import paper_config
from kzoo.recipes.dcgan import RECIPE


def test_paper_defaults():
    """Radford et al.: Adam(2e-4, beta1 0.5), batch 128; 64x64, z 100, width 64 from the model."""
    cfg = paper_config(RECIPE)
    assert (cfg.image_size, cfg.model["latent_dim"], cfg.model["width"], cfg.batch_size) == (64, 100, 64, 128)
    assert (cfg.learning_rate, cfg.beta_1) == (2e-4, 0.5)


@pytest.mark.slow
def test_quick_schedule_quality(tmp_path):
    """After the quick schedule the Fréchet distance is far below the untrained generator's."""
    import json

    from kzoo.recipes.runner import run

    out = run(RECIPE, ["--preset", "quick", "--out", str(tmp_path / "run")])
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["frechet_distance"] < final["untrained"]["frechet_distance"] / 4
