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

# diffusers' AutoencoderKL.__init__ default (models/autoencoders/autoencoder_kl.py, diffusers
# 0.42.1): the `scale_factor` of Stable Diffusion v1's configs (CompVis/stable-diffusion
# configs/stable-diffusion/v1-inference.yaml).
SD_SCALING_FACTOR = 0.18215

AUTOENCODER_KL_OPTIONS = Options(
    ModelOption("image_size", int, 256, "Height and width of the images (multiple of f)."),
    ModelOption("channels", int, 3, "Image channels."),
    ModelOption("latent_channels", int, 4, "Channels of z (4 for Stable Diffusion)."),
    ModelOption("block_out_channels", tuple, (128, 256, 512, 512), "Width of each block; f = 2^(len - 1)."),
    ModelOption("layers_per_block", int, 2, "Residual blocks per encoder block (decoder: one more)."),
    ModelOption("norm_groups", int, 32, "GroupNorm groups (32)."),
    ModelOption("mid_attention", bool, True, "Self-attention in the middle blocks."),
    ModelOption("quant_conv", bool, True, "The 1x1 conv after the encoder."),
    ModelOption("post_quant_conv", bool, True, "The 1x1 conv before the decoder."),
    ModelOption("scaling_factor", float, SD_SCALING_FACTOR, "What latent diffusion multiplies z by."),
    ModelOption("sigma", float, 0.1, "Standard deviation of the Gaussian likelihood in training."),
    ModelOption("beta", float, 1e-6, "Weight of the KL term in training."),
    ModelOption("seed", int, None, "Seed of the model's noise generator.", optional=True),
)
