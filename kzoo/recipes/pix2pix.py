"""`python -m kzoo.recipes.pix2pix`: train pix2pix (Isola et al., 2017) on paired images."""

import dataclasses
import sys

import numpy as np

from kzoo.recipes.config import create
from kzoo.recipes.img2img import Img2ImgConfig, img2img_recipe, predict
from kzoo.recipes.registry import register_recipe
from kzoo.recipes.runner import main


@dataclasses.dataclass
class Pix2PixConfig(Img2ImgConfig):
    """pix2pix, paper defaults: Adam(2e-4, 0.5), batch 1, 200 epochs, jitter and mirroring
    (256x256, U-Net-256, 70x70 PatchGAN and L1 x100 are the model's)."""


def build(cfg, data):
    return create(cfg, "pix2pix", input_channels=data.input_channels, output_channels=data.channels)


def sample_columns(model, a, b):
    """input | output | target."""
    return [a, predict(model.generator, a), b]


def evaluate(cfg, model, data, a, b):
    """Held-out PSNR / SSIM / L1 of G(input) vs target, beside two trivial baselines:
    the input itself as the output (`input_*`) and the training targets' mean colour
    everywhere (`mean_color_*`)."""
    from kzoo.metrics import image_quality

    scores = image_quality(predict(model.generator, a), b)
    as_output = np.repeat(a, b.shape[-1], -1) if a.shape[-1] != b.shape[-1] else a
    scores.update(image_quality(as_output, b, prefix="input_"))
    _, train_b = data.arrays(200)
    mean = np.broadcast_to(train_b.mean((0, 1, 2)), b.shape)
    scores.update(image_quality(mean, b, prefix="mean_color_"))
    return scores


RECIPE = register_recipe(img2img_recipe(
    "pix2pix", Pix2PixConfig, model="pix2pix", paired=True, build=build,
    sample_columns=sample_columns, evaluate=evaluate,
    data_args=("input_channels", "output_channels")))

if __name__ == "__main__":
    sys.exit(main(RECIPE))
