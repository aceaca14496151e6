"""`python -m kzoo.recipes.dcgan`: train a DCGAN (Radford et al., 2016)."""

import dataclasses
import sys

from kzoo.options.dcgan import DCGAN_OPTIONS
from kzoo.recipes.gan import GANConfig, gan_recipe
from kzoo.recipes.registry import register_recipe
from kzoo.recipes.runner import main


@dataclasses.dataclass
class DCGANConfig(GANConfig):
    """DCGAN, paper defaults: Adam(2e-4, beta1 0.5), batch 128 (64x64, z 100, width 64 are the model's)."""


RECIPE = register_recipe(gan_recipe("dcgan", DCGANConfig, options=DCGAN_OPTIONS))

if __name__ == "__main__":
    sys.exit(main(RECIPE))
