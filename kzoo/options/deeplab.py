"""Options of `kzoo.models.deeplab.DeepLabV3Plus` (Chen et al., 2018), without Keras."""

from kzoo.options import ModelOption, Options
from kzoo.options.segmentation import SEGMENTATION_OPTIONS

DEEPLAB_OPTIONS = Options(
    ModelOption("image_size", int, 512, "Input height and width, a multiple of 16."),
    ModelOption("channels", int, 3, "Input channels (3 for keras.applications backbones)."),
    ModelOption("num_classes", int, 21, "Output classes."),
    ModelOption("backbone", str, "resnet", '"resnet" (from scratch), "resnet50" or "resnet101".'),
    ModelOption("backbone_weights", str, None, "Local weights file of a keras.applications backbone "
                "(include_top=False). Not used when loading a saved model.", optional=True),
    ModelOption("blocks", tuple, (3, 4, 23, 3), 'Bottleneck blocks per stage ("resnet" only).'),
    ModelOption("width", int, 64, 'Channels of the stem and first stage ("resnet" only).'),
    ModelOption("multi_grid", tuple, (1, 2, 4), "Unit rates of the last stage's blocks."),
    ModelOption("aspp_filters", int, 256, "Channels of every ASPP branch and its projection."),
    ModelOption("aspp_rates", tuple, (6, 12, 18), "Atrous rates of the 3x3 ASPP branches."),
    ModelOption("low_level_filters", int, 48, "Channels the low-level features are reduced to."),
    ModelOption("decoder_filters", int, 256, "Channels of the decoder's two 3x3 convs."),
    ModelOption("norm", str, "batch", 'Normalization after each conv ("batch").'),
    base=SEGMENTATION_OPTIONS,
)
