"""What the image-to-image recipes (pix2pix, cyclegan) share: data, optimizers, grids."""

from __future__ import annotations

import dataclasses

import numpy as np

from kzoo.errors import KzooError
from kzoo.recipes.config import TrainConfig, total_steps
from kzoo.recipes.registry import Recipe

SAMPLE_ROWS = 4
SAMPLE_MIN_SIZE = 128  # pixels per image in the sample grid (smaller images are enlarged)
TINY = ("--image-size", "16", "--width", "4", "--n-layers", "2", "--batch-size", "2",
        "--num-crops", "8", "--eval-samples", "2")


@dataclasses.dataclass
class Img2ImgConfig(TrainConfig):
    """Options of the image-to-image recipes (paper defaults of pix2pix and CycleGAN).

    Attributes:
        learning_rate, beta_1, beta_2: Adam's, for both players.
        lr_decay: linear decay to zero over the second half of training.
        direction: "AtoB" or "BtoA".
        augment: random jitter (286 -> 256 crop) and mirroring.
        num_crops: training crops of a builtin:photos task.
        eval_samples: held-out images scored at the end (0: no evaluation).
    """

    data: str = "builtin:photos/edges2photo"
    epochs: int = 200
    batch_size: int = 1
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    lr_decay: bool = False
    direction: str = "AtoB"
    augment: bool = True
    num_crops: int = 400
    eval_samples: int | None = 24


def compile_model(cfg, data, model):
    """Adam(lr, beta1, beta2) for each player; with `lr_decay`, `LinearDecayAfterHalf`."""
    import keras

    from kzoo.models.cyclegan import LinearDecayAfterHalf

    def adam():
        lr = cfg.learning_rate
        if cfg.lr_decay:
            lr = LinearDecayAfterHalf(lr, total_steps(cfg, data))
        return keras.optimizers.Adam(lr, beta_1=cfg.beta_1, beta_2=cfg.beta_2)

    model.compile(g_optimizer=adam(), d_optimizer=adam(), jit_compile=cfg.jit_compile)
    return model


def predict(network, images, batch_size=8):
    return network.predict(images, batch_size=batch_size, verbose=0)


def show(columns):
    """A grid with one row per example and the given columns (N, H, W, C in [-1, 1]),
    each image enlarged to at least `SAMPLE_MIN_SIZE` pixels a side."""
    from kzoo.viz import grid, to_uint8, upscale

    channels = max(c.shape[-1] for c in columns)
    columns = [np.repeat(c, channels, -1) if c.shape[-1] != channels else c for c in columns]
    rows = np.stack(columns, axis=1).reshape(-1, *columns[0].shape[1:])
    return grid(upscale(to_uint8(rows), SAMPLE_MIN_SIZE), len(columns))


def verdict(model_scores, baseline_scores, higher_is_better=("psnr", "ssim")):
    """The model against the baseline: "better" on every score, "worse" on none, else "mixed"."""
    wins = [(model_scores[k] > baseline_scores[k]) == (k in higher_is_better) for k in model_scores]
    return "better" if all(wins) else "worse" if not any(wins) else "mixed"


def versus(label, scores, prefix, baseline, baseline_prefix):
    """One line: `label` PSNR / SSIM of `prefix` scores beside those of the baseline, and a verdict."""
    model = {k: scores[f"{prefix}{k}"] for k in ("psnr", "ssim")}
    base = {k: scores[f"{baseline_prefix}{k}"] for k in ("psnr", "ssim")}
    return (f"held-out: {label} PSNR {model['psnr']:.2f} dB / SSIM {model['ssim']:.3f} vs {baseline} "
            f"{base['psnr']:.2f} dB / {base['ssim']:.3f} — {verdict(model, base)}")


def init_channels(cfg, data_args):
    """(input channels, output channels) of the `--init-from` preset's model, or (None,
    None): the data's gray domains are then repeated to them (`kzoo.data.paired.with_channels`)."""
    if not cfg.init_from:
        return None, None
    from kzoo.hub.loader import model_config

    try:
        _, config = model_config(cfg.init_from)
    except KzooError:
        return None, None  # not a preset (e.g. a run of another recipe): the weight copy says why
    if "channels" in data_args:
        return config.get("channels"), config.get("channels")
    return config.get("input_channels"), config.get("output_channels")


def img2img_recipe(name, config_cls, *, model, options, paired, build, sample_columns, evaluate, data_args,
                   tiny=TINY, summary=None):
    """A `Recipe` for an image-to-image model.

    Args:
        model: the registered model it trains.
        paired: the model needs (input, target) pairs.
        build: `(cfg, data) -> uncompiled model`.
        data_args: the model arguments `build` takes from the data.
        tiny: flags of a smoke-test run (`Recipe.tiny`).
        sample_columns: `(model, a, b) -> list of (N, H, W, C) columns` for the grid.
        evaluate: `(cfg, model, data, a, b) -> dict` of scores on held-out arrays.
        summary: `(scores) -> str or None`, the run's last line (`Recipe.summary`).
    """

    def load(cfg, split):
        from kzoo.data.paired import load_pairs, with_channels

        if cfg.eval_samples == 0 and split == "test":
            return None
        pairs = load_pairs(cfg.data, image_size=cfg.image_size, split=split, paired=paired,
                           direction=cfg.direction, num_crops=cfg.num_crops)
        return with_channels(pairs, *init_channels(cfg, data_args)) if pairs is not None else None

    def load_data(cfg):
        if cfg.direction not in ("AtoB", "BtoA"):
            raise KzooError(f"--direction must be AtoB or BtoA, got {cfg.direction!r}")
        return load(cfg, "train"), load(cfg, "test")

    def build_compiled(cfg, data):
        try:
            model = build(cfg, data)
        except ValueError as e:
            raise KzooError(str(e)) from None
        return compile_model(cfg, data, model)

    def train_dataset(cfg, data, model):
        from kzoo.data.paired import pair_pipeline

        return pair_pipeline(data, cfg.batch_size, seed=cfg.seed, augment=cfg.augment)

    def scored(cfg, data, heldout):
        """Held-out arrays, or None when the data has no held-out part."""
        return heldout.arrays(cfg.eval_samples) if heldout is not None else None

    def prepare_state(cfg, model, data):
        heldout = load(cfg, "test")
        a, b = heldout.arrays(SAMPLE_ROWS) if heldout is not None else data.arrays(SAMPLE_ROWS)
        state = {"a": a, "b": b}
        if heldout is not None and cfg.eval_samples != 0:
            state["baseline"] = evaluate(cfg, model, data, *scored(cfg, data, heldout))
        return state

    def sample_grid(cfg, model, state):
        return show(sample_columns(model, state["a"], state["b"]))

    def evaluate_heldout(cfg, model, data, heldout):
        arrays = scored(cfg, data, heldout)
        return {} if arrays is None else evaluate(cfg, model, data, *arrays)

    return Recipe(name=name, config_cls=config_cls, model=model, options=options, load_data=load_data,
                  build=build_compiled, train_dataset=train_dataset, sample_grid=sample_grid,
                  evaluate=evaluate_heldout, inference_model=lambda model: model.generator,
                  prepare_state=prepare_state, data_args=data_args, tiny=tuple(tiny), summary=summary)
