"""`python -m kzoo.recipes.stylegan2`: train a StyleGAN2 (Karras et al., CVPR 2020).

The GAN recipe (`kzoo.recipes.gan`) with StyleGAN2's optimizers and sampling:
Adam(0.002, betas (0, 0.99)) for both players (NVlabs/stylegan2 run_training.py
`G_lrate_base = D_lrate_base = 0.002`, training_loop.py `G_opt_args = beta1 0.0,
beta2 0.99`; rosinality train.py the same), with the lazy-regularisation correction
of rosinality train.py: for an interval k, lr * c and betas ** c with c = k / (k + 1)
(k = r1_interval for D, path_interval for G); batch 32 (run_training.py
`minibatch_size_base = 32`). Samples and scores come from the EMA generator with
random noise (rosinality generate.py: `g_ema` with `randomize_noise=True`), psi 1.
"""

import dataclasses
import sys

import numpy as np

from kzoo.errors import KzooError
from kzoo.options.stylegan2 import STYLEGAN2_OPTIONS
from kzoo.recipes.config import SCHEDULE, create, option
from kzoo.recipes.gan import EVAL_SEED, GANConfig, _digits_metrics, gan_recipe
from kzoo.recipes.registry import register_recipe
from kzoo.recipes.runner import main

TINY = ("--image-size", "16", "--latent-dim", "8", "--n-mlp", "2", "--channel-base", "64", "--channel-max", "8",
        "--channel-multiplier", "1", "--batch-size", "4", "--eval-samples", "64")


@dataclasses.dataclass
class StyleGAN2Config(GANConfig):
    """StyleGAN2, paper defaults: Adam(0.002, 0, 0.99) with the lazy-regularisation correction, batch 32.

    Attributes:
        truncation_psi: psi of the epoch sample grids, in [0, 1] (1: none; scores are always at 1).
        mixing_crossover: 0: the sample grid shows 64 samples; N in [1, num_ws - 1]: a style-mixing
            grid, cell (r, c) with row r's first N ws and column c's others (row 0 / column 0
            show the sources).
    """

    batch_size: int = 32
    learning_rate: float = 0.002
    beta_1: float = 0.0
    beta_2: float = 0.99
    truncation_psi: float = option(1.0, SCHEDULE)
    mixing_crossover: int = option(0, SCHEDULE)


def lazy_adam(cfg, interval):
    """Adam with lr * c and betas ** c, c = interval / (interval + 1) (rosinality train.py g/d_reg_ratio)."""
    import keras

    c = interval / (interval + 1)
    return keras.optimizers.Adam(cfg.learning_rate * c, beta_1=cfg.beta_1 ** c, beta_2=cfg.beta_2 ** c)


def build(cfg, data):
    from kzoo.models.stylegan2 import check_psi

    model = create(cfg, "stylegan2", channels=data.channels)
    try:
        check_psi(cfg.truncation_psi)
        if cfg.mixing_crossover and not 1 <= cfg.mixing_crossover < model.num_ws:
            raise ValueError(f"crossover layer must be in [1, {model.num_ws - 1}] (the synthesis reads "
                             f"{model.num_ws} ws at {model.image_size}x{model.image_size}), got "
                             f"{cfg.mixing_crossover}")
    except ValueError as e:
        flag = "--truncation-psi" if "psi" in str(e) else "--mixing-crossover"
        raise KzooError(f"{flag}: {e}") from None
    model.compile(g_optimizer=lazy_adam(cfg, model.path_interval), d_optimizer=lazy_adam(cfg, model.r1_interval),
                  jit_compile=cfg.jit_compile)
    return model


def generate(model, n, rng, psi=1.0, batch_size=250):
    """`n` images from the EMA generator, random noise, truncation `psi` (numpy, clipped to [-1, 1])."""
    z = rng.standard_normal((n, model.latent_dim)).astype(np.float32)
    out = []
    for i in range(0, n, batch_size):
        w = model.mapping.predict(z[i:i + batch_size], verbose=0)
        seed = int(rng.integers(2 ** 31))
        ws = model.truncate(w[:, None, :], psi) if psi != 1 else w
        out.append(np.asarray(model.synthesize(ws, noise="random", seed=seed)))
    return np.clip(np.concatenate(out), -1.0, 1.0)


def sample_grid(cfg, model, state):
    from kzoo.viz import grid, to_uint8

    rng = np.random.default_rng(cfg.seed)
    if not cfg.mixing_crossover:
        return grid(to_uint8(generate(model, 64, rng, psi=cfg.truncation_psi)), 8)
    from kzoo.models.stylegan2 import noise_shapes

    z = rng.standard_normal((14, model.latent_dim)).astype(np.float32)
    w = np.asarray(model.truncate(model.mapping.predict(z, verbose=0), cfg.truncation_psi))
    rows, cols = w[:7], w[7:]
    cells = [model.mix(np.repeat(rows[r:r + 1], 7, 0), cols, cfg.mixing_crossover) for r in range(7)]
    noise = [np.zeros((1, *s), "float32") for s in noise_shapes(model.image_size)]
    images = [np.asarray(model.synthesize(w, noise=noise)) for w in (cols, rows, *cells)]
    blank = -np.ones((1, *images[0].shape[1:]), "float32")
    tiles = [blank, images[0]] + [np.concatenate([images[1][r:r + 1], images[2 + r]]) for r in range(7)]
    return grid(to_uint8(np.clip(np.concatenate(tiles), -1, 1)), 8)


def evaluate(cfg, model, data, heldout):
    if not _digits_metrics(cfg):
        return {}
    from kzoo.metrics import digits_generation_scores

    return digits_generation_scores(generate(model, cfg.eval_samples, np.random.default_rng(EVAL_SEED)))


def prepare_state(cfg, model, data):
    return {"baseline": evaluate(cfg, model, data, None)} if _digits_metrics(cfg) else {}


RECIPE = register_recipe(dataclasses.replace(
    gan_recipe("stylegan2", StyleGAN2Config, options=STYLEGAN2_OPTIONS),
    build=build, sample_grid=sample_grid, evaluate=evaluate, prepare_state=prepare_state,
    data_args=("channels",), tiny=TINY))

if __name__ == "__main__":
    sys.exit(main(RECIPE))
