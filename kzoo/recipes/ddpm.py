"""`python -m kzoo.recipes.ddpm`: train a DDPM (Ho, Jain & Abbeel, 2020).

Each epoch's sample grid shows 64 samples (DDIM, `--sample-steps`) above a strip
of the denoising trajectory: x_t of four samples from t = T-1 (noise) to t = 0.
On builtin:digits, `evaluate` records the reference digits classifier's Fréchet
distance and Inception-Score-style score of samples from the ancestral DDPM
sampler (`--eval-ddpm-steps`, all T = 1000) and from DDIM (`--eval-ddim-steps`, 50), and
the sampling time of each.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np

from kzoo import diffusion
from kzoo.errors import KzooError
from kzoo.options.ddpm import DDPM_OPTIONS
from kzoo.recipes.config import SCHEDULE, TrainConfig, create, option
from kzoo.recipes.registry import Recipe, register_recipe
from kzoo.recipes.runner import main

GRID_SEED = 0
EVAL_SEED = 1234
TRAJECTORY_ROWS = 4


@dataclasses.dataclass
class DDPMConfig(TrainConfig):
    """DDPM, paper defaults (Ho et al., 2020, CIFAR-10): Adam 2e-4 with 5000 warm-up steps, clip 1,
    batch 128, 800k steps, random flips (the U-Net, T 1000, the linear betas and EMA 0.9999 are
    the model's).

    Attributes:
        learning_rate, warmup_steps: Adam's rate after a linear warm-up of this many steps.
        grad_clip: global gradient norm; None: no clipping.
        random_flip: random horizontal flips (CIFAR-10); off for digits.
        sample_sampler, sample_steps: the sampler of the per-epoch grid and its steps.
        eval_samples: images per sampler in the evaluation (0: no evaluation).
        eval_ddpm_steps: steps of the ancestral sampler; None: all T (as in the paper).
        eval_ddim_steps, eval_ddim_eta: the DDIM sampler's steps and eta.
    """

    data: str = "tfds:cifar10"
    epochs: int = 800  # x 1000 steps = 800k steps (App. B)
    steps_per_epoch: int | None = 1000
    batch_size: int = 128
    learning_rate: float = 2e-4
    warmup_steps: int = 5000
    grad_clip: float | None = 1.0
    random_flip: bool = True
    sample_sampler: str = option("ddim", SCHEDULE)
    sample_steps: int = option(50, SCHEDULE)
    eval_samples: int = 256
    eval_ddpm_steps: int | None = option(None, SCHEDULE)
    eval_ddim_steps: int = option(50, SCHEDULE)
    eval_ddim_eta: float = option(0.0, SCHEDULE)


def validate(cfg):
    """Bad sampler options fail before training starts (KzooError -> exit 2)."""
    m = cfg.model
    diffusion.NoiseSchedule(m["num_timesteps"], m["beta_start"], m["beta_end"], m["beta_schedule"])
    diffusion.check_sampler(cfg.sample_sampler)
    if m["variance"] not in diffusion.VARIANCES:
        raise KzooError(f"--variance must be {' or '.join(diffusion.VARIANCES)}, got {m['variance']!r}")
    for flag, steps in (("--sample-steps", cfg.sample_steps),
                        ("--eval-ddpm-steps", cfg.eval_ddpm_steps or m["num_timesteps"]),
                        ("--eval-ddim-steps", cfg.eval_ddim_steps)):
        try:
            diffusion.check_steps(steps, m["num_timesteps"])
        except KzooError as e:
            raise KzooError(f"{flag}: {e}") from None


def load_data(cfg):
    from kzoo.data import load

    validate(cfg)
    return load(cfg.data, image_size=cfg.image_size, labels=False), None


def build(cfg, data):
    from kzoo.models.ddpm import ddpm_optimizer

    model = create(cfg, "ddpm", channels=data.channels)
    model.compile(optimizer=ddpm_optimizer(cfg.learning_rate, cfg.warmup_steps, cfg.grad_clip),
                  jit_compile=cfg.jit_compile)
    return model


def train_dataset(cfg, data, model):
    import tensorflow as tf

    from kzoo.data import batch_pipeline

    ds = batch_pipeline(data, cfg.batch_size, seed=cfg.seed)
    if cfg.random_flip:
        ds = ds.map(lambda x: tf.image.random_flip_left_right(x, seed=cfg.seed),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds


def sample_grid(cfg, model, state):
    """64 samples (8 x 8) above the trajectory x_t of the first four, T-1 -> 0 in 8 snapshots."""
    from kzoo.viz import grid, to_uint8

    cols = 8
    options = model.sampler_options
    ts = model.schedule.timesteps(cfg.sample_steps, options.timestep_spacing, options.steps_offset)
    keep = set(ts[np.linspace(0, len(ts) - 1, cols).round().astype(int)])
    frames = []

    def record(t, x, x0):
        if t in keep:
            frames.append(x[:TRAJECTORY_ROWS])

    images = model.sample(cols * cols, sampler=cfg.sample_sampler, steps=cfg.sample_steps,
                          eta=cfg.eval_ddim_eta, seed=GRID_SEED, callback=record)
    strip = np.stack(frames, axis=1).reshape(-1, *images.shape[1:])  # row = one sample
    return np.concatenate([grid(to_uint8(images), cols), grid(to_uint8(strip), cols)], axis=0)


def evaluate(cfg, model, data, heldout):
    """Scores and sampling times of the DDPM and DDIM samplers (digits scores on builtin:digits)."""
    from kzoo.metrics import digits_generation_scores

    digits = cfg.data == "builtin:digits"
    scores = {"eval_samples": cfg.eval_samples}
    runs = (("ddpm", cfg.eval_ddpm_steps or model.num_timesteps, 0.0),
            ("ddim", cfg.eval_ddim_steps, cfg.eval_ddim_eta))
    for sampler, steps, eta in runs:
        start = time.perf_counter()
        images = model.sample(cfg.eval_samples, sampler=sampler, steps=steps, eta=eta, seed=EVAL_SEED)
        scores[f"{sampler}_steps"] = steps
        scores[f"{sampler}_sample_seconds"] = round(time.perf_counter() - start, 2)
        if digits:
            scores.update({f"{sampler}_{k}": v for k, v in digits_generation_scores(images).items()})
    if digits:  # the same scores for real training digits at this size: the floor to compare with
        real = np.stack([x.numpy() for x in data.dataset.take(cfg.eval_samples)])
        scores.update({f"train_data_{k}": v for k, v in digits_generation_scores(real).items()})
    return scores


RECIPE = register_recipe(Recipe(
    name="ddpm", config_cls=DDPMConfig, model="ddpm", options=DDPM_OPTIONS, load_data=load_data, build=build,
    train_dataset=train_dataset, sample_grid=sample_grid, evaluate=evaluate,
    inference_model=lambda model: model.inference_parts()["eps_model"], data_args=("channels",),
    recipe_args=("sampler_options",),  # not a flag: kzoo's own sampler (kzoo.diffusion.KZOO)
    tiny=("--image-size", "8", "--width", "8", "--channel-mults", "1,2", "--attention-resolutions", "4",
          "--norm-groups", "4", "--num-timesteps", "10", "--batch-size", "8", "--sample-steps", "8",
          "--eval-samples", "4", "--eval-ddim-steps", "2")))

if __name__ == "__main__":
    sys.exit(main(RECIPE))
