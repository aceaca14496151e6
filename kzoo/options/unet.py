"""Options of `kzoo.models.unet.UNet` (Ronneberger et al., 2015), without Keras."""

from kzoo.options import ModelOption, Options
from kzoo.options.segmentation import SEGMENTATION_OPTIONS

UNET_OPTIONS = Options(
    ModelOption("image_size", int, 512, "Input height and width; divisible by `2**depth`."),
    ModelOption("channels", int, 1, "Input channels."),
    ModelOption("num_classes", int, 2, "Output classes."),
    ModelOption("depth", int, 4, "Number of down-/up-sampling stages."),
    ModelOption("width", int, 64, "Channels of the first stage; doubled at each stage."),
    ModelOption("norm", str, None, '"batch", "instance", "layer" or None.', optional=True),
    ModelOption("dropout", float, 0.5, "Dropout rate after the bottleneck."),
    base=SEGMENTATION_OPTIONS,
)
