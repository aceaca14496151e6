"""Options of `kzoo.models.vae.VAE` (Kingma & Welling, 2014), without Keras."""

from kzoo.options import ModelOption, Options

VAE_OPTIONS = Options(
    ModelOption("image_size", int, 32, "Power of two >= 8."),
    ModelOption("channels", int, 1, "Image channels."),
    ModelOption("latent_dim", int, 20, "Size of z (20 in the paper's MNIST figures)."),
    ModelOption("width", int, 32, "Channels of the first encoder conv; doubles per stage."),
    ModelOption("likelihood", str, "bernoulli", '"bernoulli" or "gaussian".'),
    ModelOption("sigma", float, 0.1, "Standard deviation of the Gaussian likelihood."),
    ModelOption("beta", float, 1.0, "Weight of the KL term."),
    ModelOption("seed", int, None, "Seed of the model's noise generator.", optional=True),
)
