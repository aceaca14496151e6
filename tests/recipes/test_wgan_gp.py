from kzoo.recipes.wgan_gp import RECIPE, WGANGPConfig


def test_paper_defaults():
    cfg = WGANGPConfig()
    assert (cfg.n_critic, cfg.gp_weight, cfg.batch_size) == (5, 10.0, 64)
    assert (cfg.learning_rate, cfg.beta_1, cfg.beta_2) == (1e-4, 0.0, 0.9)
    assert RECIPE.name == "wgan_gp"
