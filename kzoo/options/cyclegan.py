"""Options of `kzoo.models.cyclegan.CycleGAN` (Zhu et al., 2017), without Keras."""

from kzoo.options import ModelOption, Options

CYCLEGAN_OPTIONS = Options(
    ModelOption("image_size", int, 256, "Training size (sets the history pools' shape and the default "
                "number of residual blocks)."),
    ModelOption("channels", int, 3, "Image channels of both domains."),
    ModelOption("width", int, 64, "Filters of the first conv of G and D."),
    ModelOption("num_blocks", int, None, "Residual blocks; None: 9 if image_size >= 256 else 6.",
                optional=True),
    ModelOption("n_layers", int, 3, "PatchGAN stride-2 layers (3: 70x70 patches)."),
    ModelOption("cycle_weight", float, 10.0, "lambda of the cycle loss."),
    ModelOption("identity_weight", float, 0.5, "Identity loss weight relative to `cycle_weight`."),
    ModelOption("pool_size", int, 50, "Images in each discriminator's history pool (0: none)."),
    ModelOption("upsample", str, "transpose", 'Generator upsampling: "transpose" (paper), "resize" '
                '(nearest-neighbour then conv) or "bilinear" (Odena et al., 2016).'),
    ModelOption("seed", int, None, "Seed of the model's noise generator (the pools' draws).", optional=True),
    ModelOption("norm", str, "instance", 'Normalization of G and D: "instance" (the paper\'s) or "batch".'),
    ModelOption("exact", str, None, '"junyanz": generators of the authors\' PyTorch code, layer for layer '
                "(`resnet_generator`), for their published weights.", optional=True),
    ModelOption("input_skip", bool, False, "Not in the paper (default False): each generator sees its "
                "input in its last conv and adds it to its output (`resnet_generator`), learning the change."),
    # the authors' ResnetGenerator: transposed convs, no input skip (`kzoo.recipes.config.implied`)
    implied={"exact": {"junyanz": {"upsample": "transpose", "input_skip": False}}},
)
