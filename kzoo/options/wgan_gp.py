"""Options of `kzoo.models.wgan_gp.WGANGP` (Gulrajani et al., 2017): its own, then DCGAN's
but `discriminator_norm` (WGAN-GP passes its `critic_norm` as that)."""

from kzoo.options import ModelOption, Options
from kzoo.options.dcgan import DCGAN_OPTIONS

WGAN_GP_OPTIONS = Options(
    ModelOption("n_critic", int, 5, "Critic updates per generator update."),
    ModelOption("gp_weight", float, 10.0, "lambda."),
    ModelOption("critic_norm", str, "layer", '"layer" (default) or "none"; batch norm is invalid with GP.'),
    base=DCGAN_OPTIONS,
    drop=("discriminator_norm",),
)
