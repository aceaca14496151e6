"""What the GAN recipes (dcgan, wgan_gp, cgan) share: one recipe, three configs."""

from __future__ import annotations

import dataclasses

import numpy as np

from kzoo.errors import KzooError
from kzoo.recipes.config import TrainConfig, create
from kzoo.recipes.registry import Recipe

EVAL_SEED = 1234
TINY = ("--image-size", "16", "--width", "8", "--latent-dim", "8", "--batch-size", "8")


@dataclasses.dataclass
class GANConfig(TrainConfig):
    """Options of the latent-variable GAN recipes (the networks' are the model's).

    Attributes:
        learning_rate, beta_1, beta_2: Adam's, for both players.
        eval_samples: generated images scored on builtin:digits (0: no evaluation).
    """

    learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    eval_samples: int = 1000


def gan_recipe(name, config_cls, *, options, model=None, conditional=False):
    """A `Recipe` that trains the registered model `model` (default: `name`), whose
    constructor declares `options` (`kzoo.options`)."""
    model_name = model or name

    def load_data(cfg):
        from kzoo.data import load

        data = load(cfg.data, image_size=cfg.image_size, labels=conditional)
        if conditional and not data.num_classes:
            raise KzooError(f"{name} needs labelled data; {cfg.data} has no labels")
        return data, None

    def build(cfg, data):
        import keras

        model = create(cfg, model_name, channels=data.channels,
                       num_classes=data.num_classes if conditional else None)

        def adam():
            return keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1, beta_2=cfg.beta_2)

        model.compile(g_optimizer=adam(), d_optimizer=adam(), jit_compile=cfg.jit_compile)
        return model

    def train_dataset(cfg, data, model):
        from kzoo.data import batch_pipeline

        return batch_pipeline(data, cfg.batch_size * model.d_steps, seed=cfg.seed)

    def generator_inputs(model, n, rng, labels=None):
        z = rng.standard_normal((n, model.latent_dim)).astype(np.float32)
        return [z, labels.astype(np.int32)] if conditional else z

    def prepare_state(cfg, model, data):
        rng = np.random.default_rng(cfg.seed)
        cols = 8
        labels = np.repeat(np.arange(data.num_classes), cols) if conditional else None
        state = {"grid_inputs": generator_inputs(model, len(labels) if conditional else 64, rng, labels),
                 "grid_cols": cols}
        if _digits_metrics(cfg):
            state["baseline"] = evaluate(cfg, model, data, None)
        return state

    def sample_grid(cfg, model, state):
        from kzoo.viz import grid, to_uint8

        images = model.generator.predict(state["grid_inputs"], verbose=0)
        return grid(to_uint8(images), state["grid_cols"])

    def evaluate(cfg, model, data, heldout):
        if not _digits_metrics(cfg):
            return {}
        from kzoo.metrics import digits_generation_scores

        rng = np.random.default_rng(EVAL_SEED)
        n = cfg.eval_samples
        labels = np.arange(n) % data.num_classes if conditional else None
        images = model.generator.predict(generator_inputs(model, n, rng, labels),
                                         batch_size=250, verbose=0)
        return digits_generation_scores(images, labels)

    return Recipe(name=name, config_cls=config_cls, model=model_name, options=options,
                  load_data=load_data,
                  build=build, train_dataset=train_dataset, sample_grid=sample_grid,
                  evaluate=evaluate, inference_model=lambda model: model.generator,
                  prepare_state=prepare_state, data_args=("channels", "num_classes"),
                  tiny=TINY + ("--eval-samples", "64"))


def _digits_metrics(cfg):
    return cfg.data == "builtin:digits" and bool(cfg.eval_samples)
