"""Options of `kzoo.models.cgan.ConditionalGAN` (Mirza & Osindero, 2014): DCGAN's, with
a label count that must be given (10 by default)."""

from kzoo.options import ModelOption, Options
from kzoo.options.dcgan import DCGAN_OPTIONS

CGAN_OPTIONS = Options(
    ModelOption("num_classes", int, 10, "Number of labels."),
    base=DCGAN_OPTIONS,
)
