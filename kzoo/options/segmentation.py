"""Options every segmentation model ends with (`kzoo.models.segmentation.SegmentationModel`)."""

from kzoo.options import ModelOption, Options

IGNORE_LABEL = 255  # pixels of this label count in neither loss nor metrics

SEGMENTATION_OPTIONS = Options(
    ModelOption("class_weights", tuple, None, "Per-class loss weights.", optional=True),
    ModelOption("ignore_label", int, IGNORE_LABEL, "Label excluded from loss and metrics (255)."),
)
