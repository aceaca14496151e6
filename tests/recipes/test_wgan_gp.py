import pytest

from kzoo.recipes.wgan_gp import RECIPE, WGANGPConfig


def test_paper_defaults():
    cfg = WGANGPConfig()
    assert (cfg.n_critic, cfg.gp_weight, cfg.batch_size) == (5, 10.0, 64)
    assert (cfg.learning_rate, cfg.beta_1, cfg.beta_2) == (1e-4, 0.0, 0.9)
    assert RECIPE.name == "wgan_gp"


@pytest.mark.slow
def test_quick_schedule_quality(tmp_path):
    """After the quick schedule the Fréchet distance is far below the untrained generator's."""
    import json

    from kzoo.recipes.runner import run

    out = run(RECIPE, ["--preset", "quick", "--out", str(tmp_path / "run")])
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["frechet_distance"] < final["untrained"]["frechet_distance"] / 4
