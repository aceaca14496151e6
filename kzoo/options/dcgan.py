"""Options of `kzoo.models.dcgan.DCGAN` (Radford, Metz & Chintala, 2016), without Keras."""

from kzoo.options import ModelOption, Options

DCGAN_OPTIONS = Options(
    ModelOption("image_size", int, 64, "Power of two >= 8."),
    ModelOption("channels", int, 3, "Image channels."),
    ModelOption("latent_dim", int, 100, "Size of z ~ N(0, I)."),
    ModelOption("width", int, 64, "Channels of the highest-resolution conv; doubles per stage."),
    ModelOption("discriminator_norm", str, "batch", '"batch" (paper), "layer" or "none".'),
    ModelOption("upsample", str, "transpose", 'Generator upsampling: "transpose" (paper), "resize" '
                '(nearest-neighbour then conv) or "bilinear" (Odena et al., 2016).'),
    ModelOption("num_classes", int, None, "Condition both networks on a class label.", optional=True),
    ModelOption("seed", int, None, "Seed of the model's noise generator.", optional=True),
)
