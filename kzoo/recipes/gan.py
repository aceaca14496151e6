"""What the GAN recipes (dcgan, wgan_gp, cgan) share: one recipe, three configs."""

from __future__ import annotations

import dataclasses

import numpy as np

from kzoo.errors import KzooError
from kzoo.recipes.runner import Recipe, TrainConfig

EVAL_SEED = 1234


@dataclasses.dataclass
class GANConfig(TrainConfig):
    """Options of the latent-variable GAN recipes."""

    latent_dim: int = 100
    width: int = 64
    channels: int = 0  # 0: the data's own channel count
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    eval_samples: int = 1000


def gan_recipe(name, config_cls, *, model_name=None, conditional=False):
    """A `Recipe` that trains the registered model `model_name` (default: `name`)."""
    model_name = model_name or name

    def load_data(cfg):
        from kzoo.data import load

        data = load(cfg.data, image_size=cfg.image_size, channels=cfg.channels or None,
                    labels=conditional)
        if conditional and not data.num_classes:
            raise KzooError(f"{name} needs labelled data; {cfg.data} has no labels")
        return data, None

    def build(cfg, data):
        import keras

        from kzoo.zoo import create_model

        extra = {"num_classes": data.num_classes} if conditional else {}
        extra.update({k: getattr(cfg, k) for k in ("n_critic", "gp_weight") if hasattr(cfg, k)})
        try:
            model = create_model(model_name, image_size=cfg.image_size, channels=data.channels,
                                 latent_dim=cfg.latent_dim, width=cfg.width, seed=cfg.seed, **extra)
        except ValueError as e:
            raise KzooError(str(e)) from None

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

    return Recipe(name=name, config_cls=config_cls, load_data=load_data, build=build,
                  train_dataset=train_dataset, sample_grid=sample_grid, evaluate=evaluate,
                  inference_model=lambda model: model.generator, prepare_state=prepare_state)


def _digits_metrics(cfg):
    return cfg.data == "builtin:digits" and cfg.eval_samples > 0
