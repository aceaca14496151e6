"""`python -m kzoo.recipes.unet`: train a U-Net (Ronneberger et al., 2015)."""

import dataclasses
import sys

from kzoo.options.unet import UNET_OPTIONS
from kzoo.recipes.registry import register_recipe
from kzoo.recipes.runner import main
from kzoo.recipes.segmentation import SegmentationConfig, segmentation_recipe


@dataclasses.dataclass
class UNetConfig(SegmentationConfig):
    """U-Net, paper defaults: SGD momentum 0.99, batch 1 (depth 4, width 64, dropout 0.5 and
    no norm are the model's).

    Augmentation: left-right flips (`--random-flip`) and optional random scaling
    (`--scale-range`); the paper's elastic deformations are not implemented.
    """

    batch_size: int = 1
    momentum: float = 0.99


RECIPE = register_recipe(segmentation_recipe(
    "unet", UNetConfig, model="unet", options=UNET_OPTIONS,
    tiny=("--depth", "1", "--width", "4", "--norm", "batch", "--dropout", "0")))

if __name__ == "__main__":
    sys.exit(main(RECIPE))
