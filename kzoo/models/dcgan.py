"""DCGAN (Radford, Metz & Chintala, 2016) and its generator/discriminator builders.

The builders are shared by WGAN-GP and the conditional GAN, which differ only in
normalization, conditioning and loss.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers

from kzoo import losses
from kzoo.layers import conv_block, dcgan_init
from kzoo.layers.conv import upsample_conv
from kzoo.models.adversarial import AdversarialModel
from kzoo.options import takes
from kzoo.options.dcgan import DCGAN_OPTIONS
from kzoo.training import random_images, unpack
from kzoo.zoo import register_model

TINY = {"image_size": 16, "channels": 1, "latent_dim": 8, "width": 8}


def _stages(image_size):
    n = math.log2(image_size / 4)
    if image_size < 8 or n != int(n):
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    return int(n)


def dcgan_generator(*, image_size=64, channels=3, latent_dim=100, width=64, num_classes=None,
                    norm="batch", upsample="transpose", name="generator"):
    """DCGAN generator: z -> 4x4 projection -> stride-2 transposed convs -> tanh.

    Batch norm and ReLU in every layer but the tanh output (Radford et al., Sec. 3).
    With `num_classes`, a one-hot label is concatenated to z (Mirza & Osindero, 2014).
    Widths halve at each stage from `width * 2**(stages-1)` down to `width`.
    `upsample="resize"` (or "bilinear") makes each stride-2 stage a resize then a
    3x3 conv (Odena et al., 2016; `kzoo.layers.conv.upsample_conv`).
    """
    stages = _stages(image_size)
    z = keras.Input((latent_dim,), name="z")
    inputs = [z]
    h = z
    if num_classes:
        label = keras.Input((), dtype="int32", name="label")
        inputs.append(label)
        h = layers.Concatenate(name="z_label")([z, layers.CategoryEncoding(num_classes, "one_hot", name="onehot")(label)])
    h = layers.Reshape((1, 1, h.shape[-1]), name="z_map")(h)
    h = conv_block(h, width * 2 ** (stages - 1), kernel_size=4, strides=1, padding="valid",
                   norm=norm, activation="relu", transpose=True, name="project")  # 4x4
    for i in range(1, stages):
        h = conv_block(h, width * 2 ** (stages - 1 - i), norm=norm, activation="relu",
                       transpose=True, upsample=upsample, name=f"up{i}")
    out = upsample_conv(h, channels, upsample=upsample, name="out")
    out = layers.Activation("tanh", dtype="float32", name="image")(out)
    return keras.Model(inputs if num_classes else z, out, name=name)


def dcgan_discriminator(*, image_size=64, channels=3, width=64, num_classes=None, norm="batch",
                        name="discriminator"):
    """DCGAN discriminator: stride-2 convs with LeakyReLU(0.2) down to 4x4, then one logit.

    No normalization on the input layer (Radford et al., Sec. 3). With `num_classes`,
    the one-hot label is tiled over the image and concatenated as extra channels.
    """
    stages = _stages(image_size)
    image = keras.Input((image_size, image_size, channels), name="image")
    inputs = [image]
    h = image
    if num_classes:
        label = keras.Input((), dtype="int32", name="label")
        inputs.append(label)
        onehot = layers.CategoryEncoding(num_classes, "one_hot", name="onehot")(label)
        tiled = layers.UpSampling2D(image_size, name="tile_label")(layers.Reshape((1, 1, num_classes))(onehot))
        h = layers.Concatenate(name="image_label")([h, tiled])
    for i in range(stages):
        h = conv_block(h, width * 2 ** i, norm=None if i == 0 else norm, name=f"down{i}")
    logit = layers.Conv2D(1, 4, padding="valid", kernel_initializer=dcgan_init(), name="logit_conv")(h)
    logit = layers.Flatten(name="logit", dtype="float32")(logit)
    return keras.Model(inputs if num_classes else image, logit, name=name)


@keras.saving.register_keras_serializable(package="kzoo")
class DCGAN(AdversarialModel):
    """Deep convolutional GAN with the non-saturating loss.

    Paper defaults (Radford et al., 2016): 64x64 images, z of 100 dims, width 64,
    N(0, 0.02) init, batch norm except at G's output and D's input, ReLU in G with
    tanh output, LeakyReLU(0.2) in D; trained with Adam(2e-4, beta1=0.5), batch 128
    (the recipe's defaults). With `num_classes` both networks take a label
    (see `ConditionalGAN`).

    Args:
        image_size: int. Power of two >= 8.
        channels: int. Image channels.
        latent_dim: int. Size of z ~ N(0, I).
        width: int. Channels of the highest-resolution conv; doubles per stage.
        discriminator_norm: str. "batch" (paper), "layer" or "none".
        upsample: str. Generator upsampling: "transpose" (paper), "resize"
            (nearest-neighbour then conv) or "bilinear" (Odena et al., 2016).
        num_classes: int or None. Condition both networks on a class label.
        seed: int or None. Seed of the model's noise generator.

    Call arguments:
        inputs: z of shape (batch, latent_dim), or `[z, label]` with `num_classes`.

    Returns:
        Images in [-1, 1] of shape (batch, image_size, image_size, channels).

    Example:
    >>> model = DCGAN(image_size=16, channels=1, latent_dim=8, width=8)
    >>> model(keras.random.normal((2, 8))).shape
    TensorShape([2, 16, 16, 1])

    References:
        Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep
        Convolutional Generative Adversarial Networks", ICLR 2016.
    """

    @takes(DCGAN_OPTIONS)
    def __init__(self, *, image_size, channels, latent_dim, width, discriminator_norm, upsample,
                 num_classes, seed, **kwargs):
        # === Layers ===
        generator = dcgan_generator(image_size=image_size, channels=channels, latent_dim=latent_dim,
                                    width=width, num_classes=num_classes, upsample=upsample)
        discriminator = dcgan_discriminator(image_size=image_size, channels=channels, width=width,
                                            norm=discriminator_norm, num_classes=num_classes)
        # === Model ===
        super().__init__(generator=generator, discriminator=discriminator, seed=seed, **kwargs)
        # === Config ===
        self.image_size = image_size
        self.channels = channels
        self.latent_dim = latent_dim
        self.width = width
        self.discriminator_norm = discriminator_norm
        self.upsample = upsample
        self.num_classes = num_classes

    def _with_labels(self, x, labels):
        if not self.num_classes:
            return x
        if labels is None:
            raise ValueError(f"{type(self).__name__} is conditional: batches must be (images, labels)")
        return [x, labels]

    def fake(self, batch_size, labels=None, training=True):
        """Generate `batch_size` images from fresh noise (and `labels`)."""
        z = self.normal((batch_size, self.latent_dim))
        return self.generator(self._with_labels(z, labels), training=training)

    def discriminate(self, images, labels=None, training=True):
        return self.discriminator(self._with_labels(images, labels), training=training)

    def generate(self, data, training):
        """G(z) for a batch's worth of fresh z (with the batch's labels if conditional)."""
        real, labels = unpack(data)
        return self.fake(keras.ops.shape(real)[0], labels, training=training)

    def discriminator_loss(self, data, fakes, training):
        real, labels = unpack(data)
        loss = losses.nonsaturating_d_loss(self.discriminate(real, labels, training),
                                           self.discriminate(fakes, labels, training))
        return loss, {"d_loss": loss}

    def generator_loss(self, data, fakes, training):
        _, labels = unpack(data)
        loss = losses.nonsaturating_g_loss(self.discriminate(fakes, labels, training))
        return loss, {"g_loss": loss}

    def sample_batch(self, batch_size=2, rng=None):
        """A random training batch: `d_steps` minibatches of images (and labels if conditional)."""
        rng = np.random.default_rng(rng)
        n = batch_size * self.d_steps
        images = random_images(rng, n, self.image_size, self.image_size, self.channels)
        if self.num_classes:
            return images, rng.integers(0, self.num_classes, n).astype("int32")
        return images

    def get_config(self):
        config = super().get_config()
        config.pop("d_steps")
        config.update(image_size=self.image_size, channels=self.channels,
                      latent_dim=self.latent_dim, width=self.width,
                      discriminator_norm=self.discriminator_norm, upsample=self.upsample,
                      num_classes=self.num_classes)
        return config


@register_model(DCGAN, tiny=TINY)
def dcgan(**overrides):
    """DCGAN at the paper's 64x64 configuration."""
    return DCGAN(**overrides)


@register_model(DCGAN, tiny=TINY)
def dcgan_digits(**overrides):
    """DCGAN sized for 32x32 grayscale digits (the quick recipe)."""
    return DCGAN(**{"image_size": 32, "channels": 1, "latent_dim": 64, "width": 32, **overrides})
