"""Conditional GAN (Mirza & Osindero, 2014) on DCGAN networks."""

from __future__ import annotations

import keras

from kzoo.models.dcgan import DCGAN, TINY
from kzoo.options import takes
from kzoo.options.cgan import CGAN_OPTIONS
from kzoo.zoo import register_model


@keras.saving.register_keras_serializable(package="kzoo")
class ConditionalGAN(DCGAN):
    """Class-conditional GAN: G(z, y) and D(x, y).

    Conditioning as in Mirza & Osindero: the label is fed to both players -- a
    one-hot y concatenated to z for the generator, and tiled over the image as
    extra channels for the discriminator. The networks themselves are DCGAN's
    (the paper's MLPs with maxout are replaced by the convolutional DCGAN
    architecture that conditional GANs are used with today); non-saturating loss;
    fakes are generated with the labels of the real batch.

    Args:
        num_classes: int. Number of labels.
        **kwargs: the `DCGAN` arguments.

    Call arguments:
        inputs: `[z, label]`, z of shape (batch, latent_dim), int labels (batch,).

    Example:
    >>> model = ConditionalGAN(num_classes=10, image_size=16, channels=1, latent_dim=8, width=8)
    >>> model([keras.random.normal((2, 8)), keras.ops.array([3, 7])]).shape
    TensorShape([2, 16, 16, 1])

    References:
        Mirza & Osindero, "Conditional Generative Adversarial Nets", arXiv:1411.1784, 2014.
    """

    @takes(CGAN_OPTIONS)
    def __init__(self, *, num_classes, **kwargs):
        if not num_classes or num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        super().__init__(num_classes=num_classes, **kwargs)


@register_model(ConditionalGAN, tiny=TINY)
def cgan(**overrides):
    """Conditional DCGAN at 64x64 with 10 classes."""
    return ConditionalGAN(**overrides)


@register_model(ConditionalGAN, tiny=TINY)
def cgan_digits(**overrides):
    """Conditional GAN sized for 32x32 grayscale digits (the quick recipe)."""
    return ConditionalGAN(**{"image_size": 32, "channels": 1, "latent_dim": 64, "width": 32,
                             "num_classes": 10, **overrides})
