"""`python -m kzoo.recipes.vae`: train a VAE (Kingma & Welling, 2014)."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from kzoo.errors import KzooError
from kzoo.options.vae import VAE_OPTIONS
from kzoo.recipes.config import TrainConfig, create
from kzoo.recipes.registry import Recipe, register_recipe
from kzoo.recipes.runner import main

EVAL_SEED = 1234
GRID_COLS = 8


@dataclasses.dataclass
class VAEConfig(TrainConfig):
    """VAE, paper defaults: Adagrad 0.02, minibatch 100 (latent 20, the Bernoulli decoder
    and L = 1 are the model's).

    Attributes:
        optimizer: "adagrad" (paper) or "adam".
        learning_rate: the optimizer's.
        eval_samples: generated images scored on builtin:digits (0: no evaluation).
    """

    batch_size: int = 100
    epochs: int = 100
    optimizer: str = "adagrad"
    learning_rate: float = 0.02
    eval_samples: int = 1000


def load_data(cfg):
    from kzoo.data import load
    from kzoo.data.images import has_heldout_split

    def split(name):
        return load(cfg.data, image_size=cfg.image_size, split=name)

    return split("train"), split("test") if has_heldout_split(cfg.data) else None


def build(cfg, data):
    import keras

    model = create(cfg, "vae", channels=data.channels)
    optimizers = {"adagrad": keras.optimizers.Adagrad, "adam": keras.optimizers.Adam}
    if cfg.optimizer not in optimizers:
        raise KzooError(f"--optimizer must be adagrad or adam, got {cfg.optimizer!r}")
    model.compile(optimizer=optimizers[cfg.optimizer](cfg.learning_rate), jit_compile=cfg.jit_compile)
    return model


def train_dataset(cfg, data, model):
    from kzoo.data import batch_pipeline

    return batch_pipeline(data, cfg.batch_size, seed=cfg.seed)


def _images(batch):
    return batch[0] if isinstance(batch, tuple) else batch


def prepare_state(cfg, model, data):
    source = load_data(cfg)[1] or data
    images = _images(next(source.dataset.batch(GRID_COLS).as_numpy_iterator()))
    z = np.random.default_rng(cfg.seed).standard_normal((2 * GRID_COLS, model.latent_dim))
    return {"grid_images": images, "grid_z": z.astype(np.float32)}


def sample_grid(cfg, model, state):
    """Rows: held-out images, their reconstructions, two rows of samples, an interpolation."""
    from kzoo.viz import grid, to_uint8

    images = state["grid_images"]
    rows = [images, model.predict(images, verbose=0), np.asarray(model.decode(state["grid_z"])),
            np.asarray(model.interpolate(images[0], images[-1], GRID_COLS))]
    return grid(to_uint8(np.concatenate(rows)), GRID_COLS)


def evaluate(cfg, model, data, heldout):
    """Held-out ELBO terms and reconstruction error; on digits, reference-classifier scores."""
    source, prefix = (heldout, "heldout") if heldout is not None else (data, "train")
    batches = source.dataset.batch(cfg.batch_size)
    scores = {f"{prefix}_{k}": float(v)
              for k, v in model.evaluate(batches, verbose=0, return_dict=True).items()}
    images, recon, labels = [], [], []
    for batch in batches.as_numpy_iterator():
        images.append(_images(batch))
        recon.append(model.predict(images[-1], verbose=0))
        if isinstance(batch, tuple):
            labels.append(batch[1])
    images, recon = np.concatenate(images), np.concatenate(recon)
    scores[f"{prefix}_reconstruction_mse"] = float(np.mean((images - recon) ** 2))
    if cfg.data == "builtin:digits" and labels:
        from kzoo.metrics import digits_generation_scores, predict_proba, to_digits_input

        labels = np.concatenate(labels)
        accuracy = (predict_proba(to_digits_input(recon)).argmax(-1) == labels).mean()
        scores[f"{prefix}_reconstruction_classifier_accuracy"] = float(accuracy)
        scores[f"{prefix}_original_classifier_accuracy"] = float(
            (predict_proba(to_digits_input(images)).argmax(-1) == labels).mean())
        if cfg.eval_samples:
            z = np.random.default_rng(EVAL_SEED).standard_normal((cfg.eval_samples, model.latent_dim))
            samples = np.asarray(model.decode(z.astype(np.float32)))
            scores.update({f"sample_{k}": v for k, v in digits_generation_scores(samples).items()})
    return scores


RECIPE = register_recipe(Recipe(
    name="vae", config_cls=VAEConfig, model="vae", options=VAE_OPTIONS, load_data=load_data, build=build,
    train_dataset=train_dataset, sample_grid=sample_grid, evaluate=evaluate,
    inference_model=lambda model: model.inference_parts()["decoder"], prepare_state=prepare_state,
    data_args=("channels",),
    tiny=("--image-size", "16", "--width", "4", "--latent-dim", "4", "--batch-size", "16",
          "--eval-samples", "16")))

if __name__ == "__main__":
    sys.exit(main(RECIPE))
