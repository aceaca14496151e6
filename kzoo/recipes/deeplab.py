"""`python -m kzoo.recipes.deeplab`: train DeepLabV3+ (Chen et al., 2018)."""

import dataclasses
import sys

from kzoo.options.deeplab import DEEPLAB_OPTIONS
from kzoo.recipes.registry import register_recipe
from kzoo.recipes.runner import main
from kzoo.recipes.segmentation import SegmentationConfig, segmentation_recipe


@dataclasses.dataclass
class DeepLabConfig(SegmentationConfig):
    """DeepLabV3+, paper defaults: SGD 0.007 poly 0.9, batch 16, random scales 0.5-2.0 and
    flips (OS 16, ASPP 6/12/18 and the ResNet-101 layout are the model's; 512 crops).

    The backbone is a ResNet-101 layout trained from scratch (no ImageNet weights
    can be downloaded here); `--backbone resnet50|resnet101 --backbone-weights FILE`
    uses a keras.applications network with weights the user has.
    """

    batch_size: int = 16
    learning_rate: float = 0.007
    poly_power: float | None = 0.9
    weight_decay: float = 4e-5
    scale_range: tuple = (0.5, 2.0)  # random scaling and left-right flips (Sec. 4)


RECIPE = register_recipe(segmentation_recipe(
    "deeplab", DeepLabConfig, model="deeplab_v3_plus", options=DEEPLAB_OPTIONS,
    tiny=("--blocks", "1,1,1,1", "--width", "4", "--aspp-filters", "8", "--low-level-filters", "4",
          "--decoder-filters", "8", "--multi-grid", "1")))

if __name__ == "__main__":
    sys.exit(main(RECIPE))
