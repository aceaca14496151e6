"""`python -m kzoo.recipes.cgan`: train a class-conditional GAN (Mirza & Osindero, 2014)."""

import dataclasses
import sys

from kzoo.options.cgan import CGAN_OPTIONS
from kzoo.recipes.gan import GANConfig, gan_recipe
from kzoo.recipes.registry import register_recipe
from kzoo.recipes.runner import main


@dataclasses.dataclass
class CGANConfig(GANConfig):
    """Conditional GAN on DCGAN networks: Adam(2e-4, beta1 0.5), batch 128, labels from the data."""


RECIPE = register_recipe(gan_recipe("cgan", CGANConfig, options=CGAN_OPTIONS, conditional=True))

if __name__ == "__main__":
    sys.exit(main(RECIPE))
