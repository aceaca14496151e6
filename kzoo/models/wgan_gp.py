"""WGAN-GP (Gulrajani et al., 2017): Wasserstein critic with a gradient penalty."""

from __future__ import annotations

import keras

from kzoo import losses
from kzoo.models.dcgan import DCGAN, TINY
from kzoo.options import takes
from kzoo.options.wgan_gp import WGAN_GP_OPTIONS
from kzoo.training import unpack
from kzoo.zoo import register_model


@keras.saving.register_keras_serializable(package="kzoo")
class WGANGP(DCGAN):
    """WGAN with gradient penalty on the DCGAN networks.

    Algorithm 1 of Gulrajani et al.: `n_critic` = 5 critic updates per generator
    update, each on its own real minibatch (a training batch holds `n_critic`
    minibatches), penalty weight lambda = 10 on x_hat = alpha x + (1 - alpha) G(z)
    with alpha ~ U(0, 1) per example; the critic has no batch norm (the paper
    suggests layer norm, the default here); Adam(1e-4, beta1=0, beta2=0.9) in the recipe.
    Each critic update draws its own z; the generator update then draws a fresh
    batch of z (Algorithm 1, line 11), so it does not share the last critic
    update's generator pass (`share_generator_pass = False`).

    Args:
        n_critic: int. Critic updates per generator update.
        gp_weight: float. lambda.
        critic_norm: str. "layer" (default) or "none"; batch norm is invalid with GP.
        **kwargs: the `DCGAN` arguments (image_size, channels, latent_dim, width, seed).

    Example:
    >>> model = WGANGP(image_size=16, channels=1, latent_dim=8, width=8)
    >>> model.d_steps
    5

    References:
        Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville, "Improved Training of
        Wasserstein GANs", NeurIPS 2017.
    """

    loss_names = ("d_loss", "g_loss", "gp", "w_distance")
    share_generator_pass = False  # Algorithm 1 samples fresh z for the generator update

    @takes(WGAN_GP_OPTIONS)
    def __init__(self, *, n_critic, gp_weight, critic_norm, **kwargs):
        if critic_norm == "batch":
            raise ValueError("WGAN-GP's penalty is per example: the critic cannot use batch norm")
        super().__init__(discriminator_norm=critic_norm, d_steps=n_critic, **kwargs)
        self.n_critic = n_critic
        self.gp_weight = gp_weight
        self.critic_norm = critic_norm

    def discriminator_loss(self, data, fakes, training):
        real, labels = unpack(data)
        w_loss = losses.wasserstein_d_loss(self.discriminate(real, labels, training),
                                           self.discriminate(fakes, labels, training))
        alpha = self.uniform((keras.ops.shape(real)[0], 1, 1, 1))
        gp = losses.gradient_penalty(lambda x, training: self.discriminate(x, labels, training),
                                     real, fakes, alpha)
        loss = w_loss + self.gp_weight * gp
        return loss, {"d_loss": loss, "gp": gp, "w_distance": -w_loss}

    def generator_loss(self, data, fakes, training):
        _, labels = unpack(data)
        loss = losses.wasserstein_g_loss(self.discriminate(fakes, labels, training))
        return loss, {"g_loss": loss}

    def get_config(self):
        config = super().get_config()
        config.pop("discriminator_norm")
        config.update(n_critic=self.n_critic, gp_weight=self.gp_weight, critic_norm=self.critic_norm)
        return config


@register_model(WGANGP, tiny=TINY)
def wgan_gp(**overrides):
    """WGAN-GP on the DCGAN networks at 64x64."""
    return WGANGP(**overrides)


@register_model(WGANGP, tiny=TINY)
def wgan_gp_digits(**overrides):
    """WGAN-GP sized for 32x32 grayscale digits (the quick recipe)."""
    return WGANGP(**{"image_size": 32, "channels": 1, "latent_dim": 64, "width": 32, **overrides})
