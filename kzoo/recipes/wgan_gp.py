"""`python -m kzoo.recipes.wgan_gp`: train a WGAN-GP (Gulrajani et al., 2017)."""

import dataclasses
import sys

from kzoo.options.wgan_gp import WGAN_GP_OPTIONS
from kzoo.recipes.gan import GANConfig, gan_recipe
from kzoo.recipes.registry import register_recipe
from kzoo.recipes.runner import main


@dataclasses.dataclass
class WGANGPConfig(GANConfig):
    """WGAN-GP, Algorithm 1 defaults: Adam(1e-4, 0, 0.9), batch 64 (n_critic 5 and lambda 10
    are the model's)."""

    batch_size: int = 64
    learning_rate: float = 1e-4
    beta_1: float = 0.0
    beta_2: float = 0.9


RECIPE = register_recipe(gan_recipe("wgan_gp", WGANGPConfig, options=WGAN_GP_OPTIONS))

if __name__ == "__main__":
    sys.exit(main(RECIPE))
