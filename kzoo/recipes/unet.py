"""`python -m kzoo.recipes.unet`: train a U-Net (Ronneberger et al., 2015)."""

import dataclasses
import sys

from kzoo.recipes.runner import main
from kzoo.recipes.segmentation import SegmentationConfig, segmentation_recipe


@dataclasses.dataclass
class UNetConfig(SegmentationConfig):
    """U-Net, paper defaults: depth 4, width 64, dropout 0.5, no norm; SGD momentum 0.99, batch 1.

    Augmentation: left-right flips (`--random-flip`) and optional random scaling
    (`--scale-range`); the paper's elastic deformations are not implemented.
    """

    image_size: int = 512
    batch_size: int = 1
    momentum: float = 0.99
    depth: int = 4
    width: int = 64
    norm: str = "none"
    dropout: float = 0.5


RECIPE = segmentation_recipe(
    "unet", UNetConfig, model_name="unet",
    model_options=lambda cfg: {"depth": cfg.depth, "width": cfg.width,
                               "norm": None if cfg.norm == "none" else cfg.norm,
                               "dropout": cfg.dropout})

if __name__ == "__main__":
    sys.exit(main(RECIPE))
