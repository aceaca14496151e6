import pytest

from kzoo.recipes.config import paper_config
from kzoo.recipes.wgan_gp import RECIPE


def test_paper_defaults():
    """Gulrajani et al., Algorithm 1: n_critic 5, lambda 10 (the model's), Adam(1e-4, 0, 0.9), batch 64."""
    cfg = paper_config(RECIPE)
    assert (cfg.model["n_critic"], cfg.model["gp_weight"], cfg.batch_size) == (5, 10.0, 64)
    assert (cfg.learning_rate, cfg.beta_1, cfg.beta_2) == (1e-4, 0.0, 0.9)


@pytest.mark.slow
def test_quick_schedule_quality(tmp_path):
    """After the quick schedule the Fréchet distance is far below the untrained generator's."""
    import json

    from kzoo.recipes.runner import run

    out = run(RECIPE, ["--preset", "quick", "--out", str(tmp_path / "run")])
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["frechet_distance"] < final["untrained"]["frechet_distance"] / 4
