import pytest

from kzoo.recipes.dcgan import DCGANConfig, RECIPE


def test_paper_defaults():
    cfg = DCGANConfig()
    assert (cfg.image_size, cfg.latent_dim, cfg.width, cfg.batch_size) == (64, 100, 64, 128)
    assert (cfg.learning_rate, cfg.beta_1) == (2e-4, 0.5)
    assert RECIPE.name == "dcgan"


@pytest.mark.slow
def test_quick_schedule_quality(tmp_path):
    """After the quick schedule the Fréchet distance is far below the untrained generator's."""
    import json

    from kzoo.recipes.runner import run

    out = run(RECIPE, ["--preset", "quick", "--out", str(tmp_path / "run")])
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["frechet_distance"] < final["untrained"]["frechet_distance"] / 4
