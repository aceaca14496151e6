"""Options of `kzoo.models.srgan.SRResNet` and `SRGAN` (Ledig et al., 2017), without Keras."""

from kzoo.options import ModelOption, Options

VGG_FEATURE_SCALE = 1.0 / 12.75 ** 2  # Ledig et al., Sec. 3.2: VGG losses scaled by 1/12.75 (~0.006 on the MSE)

SRRESNET_OPTIONS = Options(
    ModelOption("scale", int, 4, "Upscaling factor (4 in the paper)."),
    ModelOption("channels", int, 3, "Image channels."),
    ModelOption("width", int, 64, "Channels of every conv (64 in the paper)."),
    ModelOption("num_blocks", int, 16, "Residual blocks (16 in the paper)."),
    ModelOption("norm", str, "batch", '"batch" (paper) or "none".'),
    ModelOption("output_activation", str, None, 'None (linear, default) or "tanh".', optional=True),
    ModelOption("upsampled_skip", bool, False, "Not in the paper (default False): add the bilinear "
                "upsampling of the input to the output, so the network learns only the residual detail "
                "(global residual learning, Kim et al., VDSR, CVPR 2016). Much faster to train; the quick "
                "preset uses it."),
    ModelOption("arch", str, "srresnet", '"srresnet" (this paper\'s network, default) or one of its '
                'published successors, built exactly as their authors\' PyTorch modules so that their '
                'released weights load (`kzoo.hub.convert.sr`): "rrdb" (Real-ESRGAN\'s RRDBNet), "srvgg" '
                '(SRVGGNetCompact) or "edsr" (EDSR).'),
    ModelOption("growth", int, 32, "RRDB's dense growth channels (32)."),
    ModelOption("res_scale", float, 1.0, "EDSR's residual scaling (1; 0.1 for the 32-block, 256-wide model)."),
    ModelOption("activation", str, "prelu", 'SRVGGNetCompact\'s activation: "prelu", "relu" or "leakyrelu".'),
)

SRGAN_OPTIONS = Options(
    ModelOption("image_size", int, 96, "HR crop size the discriminator sees (96)."),
    ModelOption("scale", int, 4, "Upscaling factor (4)."),
    ModelOption("channels", int, 3, "Image channels."),
    ModelOption("width", int, 64, "Generator width (64)."),
    ModelOption("num_blocks", int, 16, "Generator residual blocks (16)."),
    ModelOption("discriminator_width", int, 64, "Width of D's first conv (64)."),
    ModelOption("dense_units", int, 1024, "D's hidden dense layer (1024)."),
    ModelOption("norm", str, "batch", '"batch" (paper) or "none", in both networks.'),
    ModelOption("upsampled_skip", bool, False, "Generator adds the bilinear upsampled input (see `SRResNet`)."),
    ModelOption("content_loss", str, "features", '"features" (paper) or "mse".'),
    ModelOption("adversarial_weight", float, 1e-3, "Weight of the adversarial term (1e-3)."),
    ModelOption("adversarial_loss", str, "standard", '"standard" (the paper\'s -log D(G(lr))) or '
                '"relativistic": ESRGAN\'s relativistic average GAN losses for both networks (Wang et al., '
                '2018).'),
    ModelOption("feature_extractor", None, None, "[-1, 1] RGB -> feature map; None builds "
                '`random_vgg_features()` when `content_loss="features"`.', optional=True),
    ModelOption("feature_scale", float, VGG_FEATURE_SCALE, "Multiplies the feature MSE (1/12.75^2 for VGG19)."),
    ModelOption("seed", int, None, "Seed of the model's noise generator (unused by the losses).", optional=True),
)
