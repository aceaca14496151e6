"""`python -m kzoo.recipes.srgan`: x4 super-resolution, SRResNet then SRGAN (Ledig et al., 2017).

Two stages, as in the paper:

    python -m kzoo.recipes.srgan --preset paper --out runs/srgan/srresnet
    python -m kzoo.recipes.srgan --preset paper_srgan --init-from runs/srgan/srresnet --out runs/srgan/srgan

(`--preset quick` and `--preset quick --stage srgan --init-from ...` on a CPU.) The
second stage starts its generator from the first one's weights. Its feature
(content) network is `--feature-network random` by default, a seeded random VGG19
that needs no download (see `kzoo.models.srgan`); `--feature-network vgg19
--feature-weights PATH` uses the paper's ImageNet VGG19 from a weights file. Held-out
quality (`evaluate`, in metrics.jsonl): PSNR and SSIM on the Y channel with a
border of `scale` pixels cropped, for the model and for bicubic upscaling.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from kzoo.errors import KzooError
from kzoo.options.srgan import SRGAN_OPTIONS
from kzoo.recipes.config import SCHEDULE, TrainConfig, create, option
from kzoo.recipes.registry import Recipe, register_recipe
from kzoo.recipes.runner import main

STAGES = ("srresnet", "srgan")
SAMPLE_ROWS = 4


@dataclasses.dataclass
class SRGANConfig(TrainConfig):
    """SRResNet / SRGAN x4 super-resolution: batch 16 of 96x96 HR crops, Adam(1e-4, beta1 0.9),
    10^6 SRResNet updates (scale, 16 blocks and the losses are the model's).

    Attributes:
        image_size: HR crop (the LR crop is image_size / scale); None: the model's (96).
        stage: "srresnet" (MSE, no adversary) or "srgan".
        init_from: run dir, .keras or hub preset (srresnet-photos) of an SRResNet/SRGAN.
        feature_network: the srgan stage's content network: "random" (offline, seeded)
            or "vgg19" (needs its weights file).
        feature_weights: vgg19: path of the notop weights file, or Keras' cached "imagenet".
        feature_layer: the feature map compared (block5_conv4: VGG54).
        feature_width: the random network's first-block width (VGG19: 64).
        feature_scale: multiplies the feature MSE; None: 1/12.75^2 for vgg19 (paper),
            1 for the random network.
        learning_rate, beta_1: Adam's.
        lr_decay_steps: drop the learning rate x10 after this many updates (paper SRGAN:
            10^5); None: constant.
        eval_samples: held-out images scored (None: all; 0: no evaluation).
        eval_size: centre-crop held-out images to at most this size (None: whole images).
    """

    data: str = "builtin:photos"
    batch_size: int = 16
    epochs: int = 1000
    steps_per_epoch: int | None = 1000
    stage: str = "srresnet"
    feature_network: str = "random"
    feature_weights: str = "imagenet"
    feature_layer: str = "block5_conv4"
    feature_width: int = 64
    feature_scale: float | None = None
    learning_rate: float = 1e-4
    beta_1: float = 0.9
    lr_decay_steps: int | None = None
    eval_samples: int | None = None
    eval_size: int | None = option(None, SCHEDULE)


def _scale(cfg):
    return cfg.model["scale"]


def _heldout(cfg, limit, max_size):
    from kzoo.data.sr import heldout_images

    return heldout_images(cfg.data, scale=_scale(cfg), limit=limit, max_size=max_size)


def load_data(cfg):
    from kzoo.data.sr import load_sr

    if cfg.stage not in STAGES:
        raise KzooError(f"--stage must be srresnet or srgan, got {cfg.stage!r}")
    if cfg.model["content_loss"] not in ("features", "mse"):
        raise KzooError(f"--content-loss must be features or mse, got {cfg.model['content_loss']!r}")
    if cfg.feature_network not in ("random", "vgg19"):
        raise KzooError(f"--feature-network must be random or vgg19, got {cfg.feature_network!r}")
    if cfg.init_from:
        _init_path(cfg.init_from)
    if cfg.stage == "srgan" and cfg.feature_network == "vgg19" and \
            cfg.model["content_loss"] == "features":
        from kzoo.models.srgan import vgg19_weights_path

        vgg19_weights_path(cfg.feature_weights)  # before the data: DIV2K is gigabytes
    data = load_sr(cfg.data, patch_size=cfg.image_size, scale=_scale(cfg))
    heldout = _heldout(cfg, cfg.eval_samples, cfg.eval_size) if cfg.eval_samples != 0 else None
    return data, heldout


def _feature_extractor(cfg):
    from kzoo.models.srgan import random_vgg_features, vgg19_features
    from kzoo.options.srgan import VGG_FEATURE_SCALE

    if cfg.feature_network == "vgg19":
        scale = VGG_FEATURE_SCALE if cfg.feature_scale is None else cfg.feature_scale
        return vgg19_features(cfg.feature_weights, cfg.feature_layer), scale
    try:
        net = random_vgg_features(cfg.feature_width, cfg.feature_layer, seed=cfg.seed)
    except ValueError as e:
        raise KzooError(str(e)) from None
    return net, 1.0 if cfg.feature_scale is None else cfg.feature_scale


def build(cfg, data):
    import keras

    def adam():
        lr = cfg.learning_rate
        if cfg.lr_decay_steps is not None:
            lr = keras.optimizers.schedules.PiecewiseConstantDecay([cfg.lr_decay_steps], [lr, lr / 10])
        return keras.optimizers.Adam(lr, beta_1=cfg.beta_1)

    if cfg.stage == "srresnet":
        model = create(cfg, "srresnet", channels=data.channels)
        model.compile(optimizer=adam(), loss="mse", jit_compile=cfg.jit_compile)
    else:
        features = cfg.model["content_loss"] == "features"
        extractor, scale = _feature_extractor(cfg) if features else (None, 1.0)
        model = create(cfg, "srgan", channels=data.channels, feature_extractor=extractor,
                       feature_scale=scale)
        model.compile(g_optimizer=adam(), d_optimizer=adam(), jit_compile=cfg.jit_compile)
    return model


def _init_path(spec):
    """The generator file of `--init-from`: a run dir, a preset folder, a .keras file or a
    hub reference (`srresnet-photos`, an archive, a URL)."""
    from kzoo.hub.loader import hub_folder

    path = Path(spec)
    for candidate in (path / "model" / "inference.keras", path / "inference.keras", path):
        if candidate.is_file() and candidate.suffix == ".keras":
            return candidate
    preset = hub_folder(spec)
    if preset is None:
        raise KzooError(f"--init-from {spec!r}: no run directory with model/inference.keras, "
                        "no .keras file and no hub preset")
    return preset / "inference.keras"


def _load_generator_weights(generator, spec):
    """Copy the weights of the SRResNet in run dir / .keras file `spec` into `generator`."""
    import keras

    from kzoo.models.srgan import SRGAN, SRResNet

    path = _init_path(spec)
    try:
        source = keras.saving.load_model(path)
    except Exception as e:
        raise KzooError(f"--init-from {path}: cannot load it ({str(e).splitlines()[0]})") from None
    if isinstance(source, SRGAN):
        source = source.generator
    if not isinstance(source, SRResNet):
        raise KzooError(f"--init-from {path} holds a {type(source).__name__}, not an SRResNet/SRGAN")
    keys = ("scale", "channels", "width", "num_blocks", "norm", "upsampled_skip")
    if any(getattr(source, k) != getattr(generator, k) for k in keys):
        mine = {k: getattr(generator, k) for k in keys}
        theirs = {k: getattr(source, k) for k in keys}
        raise KzooError(f"--init-from {path}: its generator {theirs} differs from this run's {mine}")
    generator.set_weights(source.get_weights())


def _generator(model):
    return getattr(model, "generator", model)


def super_resolve(model, hr_images, scale):
    """(bicubic, SR) uint8 images for the uint8 HR images (sides multiples of `scale`)."""
    from kzoo.data.sr import bicubic_upscale, lr_pairs
    from kzoo.viz import to_uint8

    bicubic, sr = [], []
    for lr, hr in lr_pairs(hr_images, scale):
        bicubic.append(to_uint8(bicubic_upscale(lr[None], hr.shape[:2])[0]))
        sr.append(to_uint8(_generator(model)(lr[None], training=False)[0]))
    return bicubic, sr


def evaluate(cfg, model, data, heldout):
    from kzoo.metrics import sr_scores

    if not heldout:
        return {}
    scale = _scale(cfg)
    bicubic, sr = super_resolve(model, heldout, scale)
    scores = {**sr_scores(sr, heldout, scale), **sr_scores(bicubic, heldout, scale, "bicubic_")}
    scores["psnr_y_gain_db"] = scores["psnr_y"] - scores["bicubic_psnr_y"]
    return scores


def prepare_state(cfg, model, data):
    """Fixed held-out crops for the sample grid; with --init-from, the starting scores."""
    state = {"sample_hr": _heldout(cfg, SAMPLE_ROWS, 2 * cfg.image_size)}
    if cfg.init_from and cfg.eval_samples != 0:
        state["baseline"] = evaluate(cfg, model, data, _heldout(cfg, cfg.eval_samples, cfg.eval_size))
    return state


def sample_grid(cfg, model, state):
    """Rows of held-out crops: LR (bicubic-upscaled) | SR | HR."""
    from kzoo.viz import grid

    hr = state["sample_hr"]
    bicubic, sr = super_resolve(model, hr, _scale(cfg))
    size = min(min(h.shape[:2]) for h in hr)
    tiles = [img[:size, :size] for row in zip(bicubic, sr, hr) for img in row]
    return grid(np.stack(tiles), 3)


def train_dataset(cfg, data, model):
    """Batches of the endless stream of random (LR, HR) crop pairs."""
    return data.dataset.batch(cfg.batch_size, drop_remainder=True).prefetch(-1)


RECIPE = register_recipe(Recipe(
    name="srgan", config_cls=SRGANConfig, model="srgan", options=SRGAN_OPTIONS, load_data=load_data,
    build=build,
    train_dataset=train_dataset, sample_grid=sample_grid, evaluate=evaluate,
    inference_model=_generator, prepare_state=prepare_state,
    init_weights=lambda cfg, model: _load_generator_weights(_generator(model), cfg.init_from),
    data_args=("channels",), recipe_args=("feature_extractor", "feature_scale"),
    tiny=("--image-size", "16", "--width", "4", "--num-blocks", "1", "--discriminator-width", "4",
          "--dense-units", "8", "--feature-width", "2", "--feature-layer", "block2_conv2",
          "--batch-size", "2", "--eval-samples", "1", "--eval-size", "32")))

if __name__ == "__main__":
    sys.exit(main(RECIPE))
