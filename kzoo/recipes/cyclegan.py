"""`python -m kzoo.recipes.cyclegan`: train CycleGAN (Zhu et al., 2017) on unpaired images."""

import dataclasses
import sys

from kzoo.options.cyclegan import CYCLEGAN_OPTIONS
from kzoo.recipes.config import create
from kzoo.recipes.img2img import TINY, Img2ImgConfig, img2img_recipe, predict, versus
from kzoo.recipes.registry import register_recipe
from kzoo.recipes.runner import main


@dataclasses.dataclass
class CycleGANConfig(Img2ImgConfig):
    """CycleGAN, paper defaults: Adam(2e-4, 0.5), batch 1, 200 epochs with linear decay to zero
    over the last 100 (256x256, 9 residual blocks, LSGAN, cycle 10, identity 0.5 and pool 50
    are the model's)."""

    data: str = "builtin:photos/domains"
    lr_decay: bool = True


def build(cfg, data):
    if data.input_channels != data.channels:
        raise ValueError(f"CycleGAN needs domains with the same channels, got "
                         f"{data.input_channels} and {data.channels}")
    return create(cfg, "cyclegan", channels=data.channels)


def sample_columns(model, a, b):
    """A | G_ab(A) | G_ba(G_ab(A))."""
    fake_b = predict(model.generator_ab, a)
    return [a, fake_b, predict(model.generator_ba, fake_b)]


def evaluate(cfg, model, data, a, b):
    """Cycle-reconstruction PSNR / SSIM on held-out images of both domains
    (`cycle_*`: mean of A -> B -> A and B -> A -> B). Where the held-out B is the
    known translation of A (the toy builtin:photos/domains), also G_ab(A) vs that
    truth (`ab_*`) beside the identity baseline A itself (`ab_identity_*`). The
    checkerboard score (`kzoo.metrics`, dB, period 4: two stride-2 upsamplings) of
    G_ab(A) beside that of the real held-out B (`b_checkerboard`)."""
    from kzoo.metrics import checkerboard_score, image_quality

    fake_b, fake_a = predict(model.generator_ab, a), predict(model.generator_ba, b)
    cyc_a = image_quality(predict(model.generator_ba, fake_b), a)
    cyc_b = image_quality(predict(model.generator_ab, fake_a), b)
    scores = {f"cycle_{k}": (cyc_a[k] + cyc_b[k]) / 2 for k in ("psnr", "ssim", "l1")}
    scores.update(cycle_psnr_a=cyc_a["psnr"], cycle_psnr_b=cyc_b["psnr"])
    if cfg.data == "builtin:photos/domains":
        scores.update(image_quality(fake_b, b, prefix="ab_"))
        scores.update(image_quality(a, b, prefix="ab_identity_"))
    if b.shape[1] % 4 == 0 and b.shape[1] >= 16:
        scores.update(checkerboard=checkerboard_score(fake_b, 4), b_checkerboard=checkerboard_score(b, 4))
    return scores


def summary(scores):
    """The run's last line: A -> B against the known answer beside the identity, when known."""
    if "ab_psnr" not in scores:
        return None
    return versus("A->B", scores, "ab_", "identity", "ab_identity_")


RECIPE = register_recipe(img2img_recipe(
    "cyclegan", CycleGANConfig, model="cyclegan", options=CYCLEGAN_OPTIONS, paired=False, build=build,
    sample_columns=sample_columns, evaluate=evaluate, summary=summary, data_args=("channels",),
    tiny=(*TINY, "--num-blocks", "1", "--pool-size", "2")))

if __name__ == "__main__":
    sys.exit(main(RECIPE))
