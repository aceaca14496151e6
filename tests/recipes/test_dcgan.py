from kzoo.recipes.dcgan import DCGANConfig, RECIPE


def test_paper_defaults():
    cfg = DCGANConfig()
    assert (cfg.image_size, cfg.latent_dim, cfg.width, cfg.batch_size) == (64, 100, 64, 128)
    assert (cfg.learning_rate, cfg.beta_1) == (2e-4, 0.5)
    assert RECIPE.name == "dcgan"
