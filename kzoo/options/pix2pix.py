"""Options of `kzoo.models.pix2pix.Pix2Pix` (Isola et al., 2017), without Keras."""

from kzoo.options import ModelOption, Options

PIX2PIX_OPTIONS = Options(
    ModelOption("image_size", int, 256, "Training size, a power of two; sets the U-Net depth."),
    ModelOption("input_channels", int, 3, "Channels of the input image."),
    ModelOption("output_channels", int, 3, "Channels of the output image."),
    ModelOption("width", int, 64, "Filters of the first conv of G and D."),
    ModelOption("levels", int, None, "U-Net levels; None: log2(image_size) (8 at 256, down to a 1x1 "
                "bottleneck).", optional=True),
    ModelOption("n_layers", int, 3, "PatchGAN stride-2 layers (3: 70x70 patches)."),
    ModelOption("l1_weight", float, 100.0, "lambda of the L1 term."),
    ModelOption("color", str, "rgb", '"rgb": translate images as they are; "lab": colourise a gray image '
                "by predicting its Lab ab channels from L (needs 1 input and 3 output channels)."),
    ModelOption("upsample", str, "transpose", 'U-Net decoder upsampling: "transpose" (paper), "resize" '
                '(nearest-neighbour then conv) or "bilinear" (Odena et al., 2016).'),
    ModelOption("seed", int, None, "Seed of the model's noise generator.", optional=True),
    ModelOption("norm", str, "batch", 'Normalization of G and D: "batch" (the paper\'s) or "instance".'),
    ModelOption("exact", str, None, '"junyanz": the generator of the authors\' PyTorch code, layer for '
                "layer (`unet_generator`), for their published weights.", optional=True),
    # the authors' UnetGenerator upsamples by transposed convs (`kzoo.recipes.config.implied`)
    implied={"exact": {"junyanz": {"upsample": "transpose"}}},
)
