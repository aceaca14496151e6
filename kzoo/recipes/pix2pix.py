"""`python -m kzoo.recipes.pix2pix`: train pix2pix (Isola et al., 2017) on paired images."""

import dataclasses
import sys

import numpy as np

from kzoo.options.pix2pix import PIX2PIX_OPTIONS
from kzoo.recipes.config import create
from kzoo.recipes.img2img import Img2ImgConfig, img2img_recipe, predict, versus
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
    """Held-out RGB PSNR / SSIM / L1 of G(input) vs target, beside two trivial baselines:
    the input itself as the output (`input_*`; for a gray input, the gray image, which
    is exactly its L with ab = 0) and the training targets' mean colour everywhere
    (`mean_color_*`). For RGB outputs also the colourfulness (Hasler & Süsstrunk 2003)
    of output, input and target, and the checkerboard score (`kzoo.metrics`, dB) of the
    U-Net's periods 2 and 4 on output and target."""
    from kzoo.metrics import checkerboard_score, colorfulness, image_quality

    fake = predict(model.generator, a)
    scores = image_quality(fake, b)
    as_output = np.repeat(a, b.shape[-1], -1) if a.shape[-1] != b.shape[-1] else a
    scores.update(image_quality(as_output, b, prefix="input_"))
    _, train_b = data.arrays(200)
    mean = np.broadcast_to(train_b.mean((0, 1, 2)), b.shape)
    scores.update(image_quality(mean, b, prefix="mean_color_"))
    if b.shape[-1] == 3:
        scores.update(colorfulness=colorfulness(fake), input_colorfulness=colorfulness(as_output),
                      target_colorfulness=colorfulness(b))
    if b.shape[1] % 4 == 0 and b.shape[1] >= 16:
        scores.update(checkerboard=checkerboard_score(fake, 4), target_checkerboard=checkerboard_score(b, 4))
    return scores


def summary(scores):
    """The run's last line: the model beside the input-as-output baseline."""
    gray = "colorfulness" in scores and scores["input_colorfulness"] < 1e-6
    return versus("model", scores, "", "gray input (ab = 0)" if gray else "input as output", "input_")


RECIPE = register_recipe(img2img_recipe(
    "pix2pix", Pix2PixConfig, model="pix2pix", options=PIX2PIX_OPTIONS, paired=True, build=build,
    sample_columns=sample_columns, evaluate=evaluate, summary=summary,
    data_args=("input_channels", "output_channels")))

if __name__ == "__main__":
    sys.exit(main(RECIPE))
