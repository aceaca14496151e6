"""`python -m kzoo.recipes.cyclegan`: train CycleGAN (Zhu et al., 2017) on unpaired images."""

import dataclasses
import sys

from kzoo.recipes.img2img import Img2ImgConfig, img2img_recipe, predict
from kzoo.recipes.runner import main


@dataclasses.dataclass
class CycleGANConfig(Img2ImgConfig):
    """CycleGAN, paper defaults: 256x256, 9 residual blocks, LSGAN, cycle 10, identity 0.5, pool 50,
    Adam(2e-4, 0.5), batch 1, 200 epochs with linear decay to zero over the last 100."""

    data: str = "builtin:photos/domains"
    lr_decay: bool = True
    num_blocks: int = 0  # 0: 9 at 256x256 and above, else 6
    cycle_weight: float = 10.0
    identity_weight: float = 0.5
    pool_size: int = 50


def build(cfg, data):
    from kzoo.zoo import create_model

    if data.input_channels != data.channels:
        raise ValueError(f"CycleGAN needs domains with the same channels, got "
                         f"{data.input_channels} and {data.channels}")
    return create_model("cyclegan", image_size=cfg.image_size, channels=data.channels, width=cfg.width,
                        num_blocks=cfg.num_blocks or None, n_layers=cfg.n_layers,
                        cycle_weight=cfg.cycle_weight, identity_weight=cfg.identity_weight,
                        pool_size=cfg.pool_size, seed=cfg.seed)


def sample_columns(model, a, b):
    """A | G_ab(A) | G_ba(G_ab(A))."""
    fake_b = predict(model.generator_ab, a)
    return [a, fake_b, predict(model.generator_ba, fake_b)]


def evaluate(cfg, model, data, a, b):
    """Cycle-reconstruction PSNR / SSIM on held-out images of both domains
    (`cycle_*`: mean of A -> B -> A and B -> A -> B). Where the held-out B is the
    known translation of A (the toy builtin:photos/domains), also G_ab(A) vs that
    truth (`ab_*`) beside the identity baseline A itself (`ab_identity_*`)."""
    from kzoo.metrics import image_quality

    fake_b, fake_a = predict(model.generator_ab, a), predict(model.generator_ba, b)
    cyc_a = image_quality(predict(model.generator_ba, fake_b), a)
    cyc_b = image_quality(predict(model.generator_ab, fake_a), b)
    scores = {f"cycle_{k}": (cyc_a[k] + cyc_b[k]) / 2 for k in ("psnr", "ssim", "l1")}
    scores.update(cycle_psnr_a=cyc_a["psnr"], cycle_psnr_b=cyc_b["psnr"])
    if cfg.data == "builtin:photos/domains":
        scores.update(image_quality(fake_b, b, prefix="ab_"))
        scores.update(image_quality(a, b, prefix="ab_identity_"))
    return scores


RECIPE = img2img_recipe("cyclegan", CycleGANConfig, paired=False, build=build,
                        sample_columns=sample_columns, evaluate=evaluate)

if __name__ == "__main__":
    sys.exit(main(RECIPE))
