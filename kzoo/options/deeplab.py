"""Options of `kzoo.models.deeplab.DeepLabV3Plus` (Chen et al., 2018), without Keras."""

from kzoo.options import ModelOption, Options
from kzoo.options.segmentation import SEGMENTATION_OPTIONS

DEEPLAB_OPTIONS = Options(
    ModelOption("image_size", int, 512, "Input height and width, a multiple of 16."),
    ModelOption("channels", int, 3, "Input channels (3 for keras.applications backbones)."),
    ModelOption("num_classes", int, 21, "Output classes."),
    ModelOption("backbone", str, "resnet", '"resnet" (from scratch), "resnet50" or "resnet101" '
                '(keras.applications), or torchvision\'s DeepLabV3 backbones "torchvision_resnet" (dilated, '
                'output stride 8) or "torchvision_mobilenet_v3_large" (output stride 16), for fine-tuning '
                "from the published torchvision weights."),
    ModelOption("backbone_weights", str, None, "Local weights file of a keras.applications backbone "
                "(include_top=False) or a torchvision .pth (a DeepLabV3 file). Not used when loading a "
                "saved model.", optional=True),
    ModelOption("blocks", tuple, (3, 4, 23, 3), 'Bottleneck blocks per stage ("resnet" only).'),
    ModelOption("width", int, 64, 'Channels of the stem and first stage ("resnet" only).'),
    ModelOption("width_mult", float, 1.0, 'MobileNetV3\'s width multiplier ("torchvision_mobilenet_v3_large").'),
    ModelOption("multi_grid", tuple, (1, 2, 4), "Unit rates of the last stage's blocks."),
    ModelOption("aspp_filters", int, 256, "Channels of every ASPP branch and its projection."),
    ModelOption("aspp_rates", tuple, (6, 12, 18), "Atrous rates of the 3x3 ASPP branches."),
    ModelOption("low_level_filters", int, 48, "Channels the low-level features are reduced to."),
    ModelOption("decoder_filters", int, 256, "Channels of the decoder's two 3x3 convs."),
    ModelOption("norm", str, "batch", 'Normalization after each conv ("batch").'),
    base=SEGMENTATION_OPTIONS,
)

DEEPLAB_V3_OPTIONS = Options(
    ModelOption("image_size", int, 520, "The size the network is built and checked at (520: torchvision's "
                "preset resizes the shorter side to 520); it takes any height and width."),
    ModelOption("num_classes", int, 21, "Output classes (21: background + the 20 VOC classes)."),
    ModelOption("backbone", str, "resnet50", '"resnet50", "resnet101" or "mobilenet_v3_large".'),
    ModelOption("blocks", tuple, None, "Bottlenecks per ResNet stage (None: the backbone's).", optional=True),
    ModelOption("stem", int, 64, "Channels of the ResNet stem (64)."),
    ModelOption("planes", int, 64, "Bottleneck width of the first ResNet stage (64; x2 per stage)."),
    ModelOption("width_mult", float, 1.0, "MobileNetV3 width multiplier (1.0)."),
    ModelOption("aspp_filters", int, 256, "Channels of ASPP and the head's 3x3 conv (256)."),
    ModelOption("aspp_rates", tuple, (12, 24, 36), "ASPP atrous rates (12, 24, 36)."),
    ModelOption("aux", bool, False, "Build the auxiliary FCN head (its loss is added in training)."),
    ModelOption("aux_weight", float, 0.5, "Weight of the auxiliary loss (0.5)."),
    ModelOption("class_names", None, None, "One name a class (the card lists them).", optional=True),
    base=SEGMENTATION_OPTIONS,
)

# torch's batch-norm parameters and the Keras weights they become, in Keras' order
TORCH_BN = (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
       ("running_var", "moving_variance"))
