"""`python -m kzoo.recipes.deeplab`: train DeepLabV3+ (Chen et al., 2018)."""

import dataclasses
import sys

from kzoo.recipes.runner import main
from kzoo.recipes.segmentation import SegmentationConfig, segmentation_recipe


@dataclasses.dataclass
class DeepLabConfig(SegmentationConfig):
    """DeepLabV3+, paper defaults: OS 16, ASPP 6/12/18, SGD 0.007 poly 0.9, batch 16, 513 crops,
    random scales 0.5-2.0 and flips.

    The backbone is a ResNet-101 layout trained from scratch (no ImageNet weights
    can be downloaded here); `--backbone resnet50|resnet101 --backbone-weights FILE`
    uses a keras.applications network with weights the user has.
    """

    image_size: int = 512
    batch_size: int = 16
    learning_rate: float = 0.007
    poly_power: float = 0.9
    weight_decay: float = 4e-5
    scale_range: tuple = (0.5, 2.0)  # random scaling and left-right flips (Sec. 4)
    backbone: str = "resnet"
    backbone_weights: str = ""
    blocks: tuple = (3, 4, 23, 3)
    width: int = 64
    multi_grid: tuple = (1, 2, 4)
    aspp_filters: int = 256
    aspp_rates: tuple = (6, 12, 18)
    low_level_filters: int = 48
    decoder_filters: int = 256


RECIPE = segmentation_recipe(
    "deeplab", DeepLabConfig, model_name="deeplab_v3_plus",
    model_options=lambda cfg: {
        "backbone": cfg.backbone, "backbone_weights": cfg.backbone_weights or None,
        "blocks": cfg.blocks, "width": cfg.width, "multi_grid": cfg.multi_grid,
        "aspp_filters": cfg.aspp_filters, "aspp_rates": cfg.aspp_rates,
        "low_level_filters": cfg.low_level_filters, "decoder_filters": cfg.decoder_filters})

if __name__ == "__main__":
    sys.exit(main(RECIPE))
