"""PatchGAN: the fully convolutional patch discriminator of pix2pix and CycleGAN."""

from __future__ import annotations

import keras
from keras import layers

from kzoo.layers.conv import conv_block, dcgan_init


def patchgan_discriminator(*, channels=3, condition_channels=0, width=64, n_layers=3,
                           norm="batch", image_size=None, name="discriminator"):
    """PatchGAN discriminator: a fully convolutional map of real/fake logits, one per patch.

    The architecture of Isola et al. (2017, Sec. 6.1.2) as in the authors' code:
    `n_layers` 4x4 stride-2 convs C64-C128-C256 (widths `width * min(2**i, 8)`),
    then a stride-1 C512 and a stride-1 1-channel conv, zero padding 1 each,
    LeakyReLU(0.2), no normalization on the first layer. With `n_layers=3`
    (the paper's) each output logit sees a 70x70 patch of the input
    (`receptive_field` computes it from the layers); a 256x256 input gives a
    30x30 map. CycleGAN uses the same network with instance norm (Zhu et al.,
    2017, Sec. 7.2).

    Args:
        channels: int. Channels of the image being judged.
        condition_channels: int. If > 0, the network takes `[condition, image]`
            and concatenates them on channels (pix2pix's conditional D).
        width: int. Filters of the first conv.
        n_layers: int. Number of stride-2 convs (3: 70x70 patches).
        norm: str. "batch" (pix2pix), "instance" (CycleGAN) or "none".
        image_size: int or None. Static input size (None: any size).
        name: str. Model name.

    Returns:
        A functional `keras.Model` mapping images to (batch, h, w, 1) logits.
    """
    check_patchgan_size(image_size, n_layers)
    shape = (image_size, image_size)
    image = keras.Input((*shape, channels), name="image")
    inputs, h = image, image
    if condition_channels:
        condition = keras.Input((*shape, condition_channels), name="condition")
        inputs = [condition, image]
        h = layers.Concatenate(name="condition_image")([condition, image])
    for i in range(n_layers + 1):
        h = layers.ZeroPadding2D(1, name=f"pad{i}")(h)
        h = conv_block(h, width * min(2 ** i, 8), kernel_size=4, strides=2 if i < n_layers else 1,
                       padding="valid", norm=None if i == 0 else norm, name=f"down{i}")
    h = layers.ZeroPadding2D(1, name="pad_logits")(h)
    logits = layers.Conv2D(1, 4, padding="valid", kernel_initializer=dcgan_init(), name="logits_conv")(h)
    logits = layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model(inputs, logits, name=name)


def check_patchgan_size(image_size, n_layers):
    """Raise ValueError if `image_size` is too small for a PatchGAN of `n_layers` (< 3 * 2**n)."""
    if image_size is not None and image_size < 3 * 2 ** n_layers:
        raise ValueError(f"a PatchGAN with n_layers={n_layers} needs images of at least "
                         f"{3 * 2 ** n_layers} pixels, got {image_size}; lower n_layers")


def receptive_field(model):
    """Receptive field (pixels) of one output unit of a chain of convolutions / poolings.

    Computed from the layers' kernel sizes and strides, last layer first:
    r <- (r - 1) * stride + kernel, starting from r = 1. Only for models whose
    spatial layers form a single chain (padding and pointwise layers do not
    change it).
    """
    r = 1
    for layer in reversed(model.layers):
        cfg = layer.get_config()
        kernel = cfg.get("kernel_size") or cfg.get("pool_size")
        if kernel is None:
            continue
        strides = cfg.get("strides") or kernel
        dilation = cfg.get("dilation_rate", (1, 1))
        k = (kernel[0] - 1) * dilation[0] + 1
        r = (r - 1) * strides[0] + k
    return r
