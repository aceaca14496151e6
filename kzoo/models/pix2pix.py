"""pix2pix (Isola et al., 2017): a U-Net generator and a PatchGAN judging (input, output) pairs."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from kzoo import losses
from kzoo.layers import (check_patchgan_size, conv_block, dcgan_init, normalization,
                         patchgan_discriminator)
from kzoo.layers.color import AB_SCALE, L_CENTER, LabToRGB, RGBToLab, gray_to_lightness, rgb_to_lab
from kzoo.layers.conv import upsample_conv
from kzoo.models.adversarial import AdversarialModel
from kzoo.options import takes
from kzoo.options.pix2pix import PIX2PIX_OPTIONS
from kzoo.training import random_images
from kzoo.zoo import register_model

TINY = {"image_size": 16, "input_channels": 1, "output_channels": 3, "width": 4, "n_layers": 2}


def unet_levels(image_size):
    """Stride-2 levels that take `image_size` down to a 1x1 bottleneck (8 at 256x256)."""
    n = math.log2(image_size)
    if image_size < 4 or n != int(n):
        raise ValueError(f"image_size must be a power of two >= 4, got {image_size}")
    return int(n)


def unet_generator(*, input_channels=3, output_channels=3, width=64, levels=8, dropout_blocks=3,
                   dropout=0.5, image_size=None, norm="batch", exact=None, upsample="transpose",
                   name="generator"):
    """pix2pix's U-Net generator ("U-Net-256" at `levels=8`), fully convolutional.

    Encoder: `levels` 4x4 stride-2 convs C64-C128-C256-C512-C512-C512-C512-C512
    (filters `width * min(2**i, 8)`), LeakyReLU(0.2), batch norm in every block
    but the first and the 1x1 bottleneck (the authors' code leaves it out there,
    where a batch of one would normalize a single value to zero). Decoder: 4x4
    stride-2 transposed convs back up, batch norm, dropout 0.5 in the first
    `dropout_blocks` blocks, ReLU, each concatenated with the mirrored encoder
    activation (the skip connections); a last transposed conv to
    `output_channels` with tanh. N(0, 0.02) init (Isola et al., 2017, Sec. 6.1.1).

    Inputs of any size divisible by `2**levels` work (`image_size=None`).

    `upsample="resize"` (or "bilinear") replaces each transposed conv by a resize
    then a 3x3 conv, free of checkerboard artefacts (`kzoo.layers.conv.upsample_conv`).

    `exact="junyanz"` builds, layer for layer, the authors' PyTorch `UnetGenerator`
    (pytorch-CycleGAN-and-pix2pix `models/networks.py`; `levels` 8: "unet_256",
    7: "unet_128"), so its published weights load unchanged
    (`kzoo.hub.convert.junyanz`): each block applies its activation *before* its
    conv (LeakyReLU(0.2) down, ReLU up; the skip carries the pre-activation
    encoder output, concatenated as [skip, decoder]); convs followed by batch norm
    have no bias (with `norm="instance"`, instance norm without affine parameters,
    every conv has one), the last up-conv always has one; the innermost block has
    no norm on its down conv; dropout (`dropout`, 0 for none) follows the norm of
    the `levels - 5` decoder blocks next to the innermost. Batch norm uses its
    running statistics at inference, as `net.eval()` does; the authors' default
    test.py (no `--eval`) keeps train mode instead, which
    `kzoo.layers.test_mode.with_test_mode(generator, "authors")` reproduces.

    Args:
        norm: str. "batch" (the paper's) or "instance" (junyanz's `--norm instance`).
        exact: None or "junyanz". None: the kzoo layout above.
        upsample: str. "transpose" (the paper's), "resize" or "bilinear".
    """
    if exact == "junyanz" and upsample != "transpose":
        raise ValueError(f"exact='junyanz' upsamples by transposed convs, got upsample={upsample!r}")
    if exact == "junyanz":
        return _junyanz_unet(input_channels, output_channels, width, levels, dropout, image_size,
                             norm, name)
    if exact is not None:
        raise ValueError(f"exact must be None or 'junyanz', got {exact!r}")
    image = keras.Input((image_size, image_size, input_channels), name="image")
    h, skips = image, []
    for i in range(levels):
        bottleneck = i == levels - 1
        h = conv_block(h, width * min(2 ** i, 8), norm=None if i == 0 or bottleneck else norm,
                       name=f"down{i}")
        skips.append(h)
    for j, i in enumerate(range(levels - 2, -1, -1)):
        h = upsample_conv(h, width * min(2 ** i, 8), use_bias=False, upsample=upsample, name=f"up{i}")
        h = normalization(norm, name=f"up{i}_norm")(h)
        if j < dropout_blocks:
            h = layers.Dropout(dropout, name=f"up{i}_dropout")(h)
        h = layers.ReLU(name=f"up{i}_relu")(h)
        h = layers.Concatenate(name=f"skip{i}")([h, skips[i]])
    h = upsample_conv(h, output_channels, upsample=upsample, name="out")
    out = layers.Activation("tanh", dtype="float32", name="output")(h)
    return keras.Model(image, out, name=name)


def _junyanz_unet(input_channels, output_channels, width, levels, dropout, image_size, norm, name):
    """`unet_generator(exact="junyanz")`: junyanz's nested `UnetSkipConnectionBlock`s, unrolled."""
    if levels < 5:
        raise ValueError(f"junyanz's UnetGenerator has at least 5 levels, got {levels}")
    bias = norm == "instance"  # networks.py: use_bias = norm_layer == InstanceNorm2d
    init = dcgan_init()
    image = keras.Input((image_size, image_size, input_channels), name="image")
    h, skips = image, []
    for i in range(levels):
        if i > 0:
            h = layers.LeakyReLU(negative_slope=0.2, name=f"down{i}_act")(h)
        h = layers.Conv2D(width * min(2 ** i, 8), 4, strides=2, padding="same", use_bias=bias,
                          kernel_initializer=init, name=f"down{i}_conv")(h)
        if 0 < i < levels - 1:
            h = normalization(norm, name=f"down{i}_norm")(h)
        skips.append(h)
    for j, i in enumerate(range(levels - 2, -1, -1)):
        h = layers.ReLU(name=f"up{i}_relu")(h)
        h = layers.Conv2DTranspose(width * min(2 ** i, 8), 4, strides=2, padding="same",
                                   use_bias=bias, kernel_initializer=init, name=f"up{i}_conv")(h)
        h = normalization(norm, name=f"up{i}_norm")(h)
        if dropout and 1 <= j <= levels - 5:
            h = layers.Dropout(dropout, name=f"up{i}_dropout")(h)
        h = layers.Concatenate(name=f"skip{i}")([skips[i], h])
    h = layers.ReLU(name="out_relu")(h)
    h = layers.Conv2DTranspose(output_channels, 4, strides=2, padding="same",
                               kernel_initializer=init, name="out_conv")(h)
    out = layers.Activation("tanh", dtype="float32", name="output")(h)
    return keras.Model(image, out, name=name)


def lab_colorizer(ab_generator, name="generator"):
    """Gray image in [-1, 1] -> RGB in [-1, 1] around a U-Net `ab_generator` (scaled L -> ab).

    The input's lightness L (`RGBToLab` of a 1-channel image) feeds the U-Net;
    `LabToRGB` recombines the same L with the predicted ab, so the output's
    lightness is the input's. Fully convolutional like the U-Net.
    """
    ab_generator.name = "ab_generator"
    gray = keras.Input((None, None, 1), name="image")
    lightness = RGBToLab(name="lightness")(gray)
    ab = ab_generator(lightness)
    rgb = LabToRGB(name="output")([lightness, ab])
    return keras.Model(gray, rgb, name=name)


@keras.saving.register_keras_serializable(package="kzoo")
class Pix2Pix(AdversarialModel):
    """pix2pix: image-to-image translation with a conditional GAN plus an L1 term.

    The generator is a U-Net (`unet_generator`); the discriminator a 70x70
    PatchGAN (`kzoo.layers.patchgan_discriminator`) with batch norm that sees the
    input concatenated with the real or the generated output. Losses (Isola et
    al., 2017, Eq. 4 and Sec. 3.3): the generator minimises the non-saturating
    cGAN loss plus `l1_weight` (100) times the L1 distance to the target; the
    discriminator's loss is halved "to slow down the rate at which D learns
    relative to G". Trained with Adam(2e-4, beta1 0.5), batch 1, random jitter
    and mirroring (the recipe's defaults). Batches are `(input, target)` pairs.

    At inference dropout is off (deterministic outputs), where the authors keep
    it on as the generator's only noise source (their test.py without `--eval`;
    `kzoo export --mode authors` exports that behaviour for `exact="junyanz"`,
    see `kzoo.layers.test_mode`).

    `color="lab"` is the paper's colourisation set-up (Isola et al., 2017,
    Sec. 4; Zhang et al., 2016): the U-Net (`ab_generator`) maps the lightness
    L of the gray input to the a*b* channels of CIE Lab, the PatchGAN judges
    (L, ab) pairs and the L1 term (x `l1_weight`) is on ab; the target's ab
    come from its RGB in the graph (`kzoo.layers.color`). The `generator`
    endpoint stays gray image -> RGB image in [-1, 1]: in-graph layers take the
    input to L (`RGBToLab`) and recombine that L with the predicted ab
    (`LabToRGB`), so the output keeps the input's lightness exactly (inside
    the sRGB gamut), and a = b = 0 would give back the gray input.

    Args:
        image_size: int. Training size, a power of two; sets the U-Net depth.
        input_channels: int. Channels of the input image.
        output_channels: int. Channels of the output image.
        width: int. Filters of the first conv of G and D.
        levels: int or None. U-Net levels; None: log2(image_size) (8 at 256,
            down to a 1x1 bottleneck).
        n_layers: int. PatchGAN stride-2 layers (3: 70x70 patches).
        l1_weight: float. lambda of the L1 term.
        color: str. "rgb": translate images as they are; "lab": colourise a gray
            image by predicting its Lab ab channels from L (needs 1 input and 3
            output channels).
        upsample: str. U-Net decoder upsampling: "transpose" (paper), "resize"
            (nearest-neighbour then conv) or "bilinear" (Odena et al., 2016).
        seed: int or None. Seed of the model's noise generator.
        norm: str. Normalization of G and D: "batch" (the paper's) or "instance".
        exact: str or None. "junyanz": the generator of the authors' PyTorch
            code, layer for layer (`unet_generator`), for their published weights.

    Call arguments:
        inputs: (batch, h, w, input_channels) images in [-1, 1]; h and w any
            multiple of `2**levels` (the network is fully convolutional).

    Returns:
        (batch, h, w, output_channels) images in [-1, 1].

    Example:
    >>> model = Pix2Pix(image_size=16, input_channels=1, output_channels=3, width=4, n_layers=2)
    >>> model(keras.ops.zeros((2, 32, 32, 1))).shape
    TensorShape([2, 32, 32, 3])

    References:
        Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with Conditional
        Adversarial Networks", CVPR 2017.
        Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016.
        Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts",
        Distill 2016.
    """

    loss_names = ("d_loss", "g_loss", "g_gan", "g_l1")
    # what an option implies for the recipes' option resolution (`kzoo.recipes.config.implied`):
    # the authors' UnetGenerator upsamples by transposed convs
    implied_options = PIX2PIX_OPTIONS.implied

    @takes(PIX2PIX_OPTIONS)
    def __init__(self, *, image_size, input_channels, output_channels, width, levels, n_layers, l1_weight,
                 color, upsample, seed, norm, exact, **kwargs):
        # === Layers ===
        depth = levels or unet_levels(image_size)
        if color not in ("rgb", "lab"):
            raise ValueError(f"color must be rgb or lab, got {color!r}")
        if color == "lab" and (input_channels, output_channels) != (1, 3):
            raise ValueError(f"color='lab' colourises gray images: it needs 1 input and 3 output "
                             f"channels, got {input_channels} and {output_channels}")
        # The network's own input and output: L -> ab in Lab mode.
        net_in, net_out = (1, 2) if color == "lab" else (input_channels, output_channels)
        generator = unet_generator(input_channels=net_in, output_channels=net_out, width=width,
                                   levels=depth, norm=norm, exact=exact, upsample=upsample)
        if color == "lab":
            generator = lab_colorizer(generator)
        discriminator = patchgan_discriminator(channels=net_out, condition_channels=net_in,
                                               width=width, n_layers=n_layers, norm=norm)
        check_patchgan_size(image_size, n_layers)
        # === Model ===
        super().__init__(generator=generator, discriminator=discriminator, seed=seed, **kwargs)
        # === Config ===
        self.image_size = image_size
        self.input_channels = input_channels
        self.output_channels = output_channels
        self.width = width
        self.levels = levels
        self.n_layers = n_layers
        self.l1_weight = l1_weight
        self.norm = norm
        self.exact = exact
        self.color = color
        self.upsample = upsample

    @property
    def translator(self):
        """The network the losses train: the generator, or in Lab mode its L -> ab U-Net."""
        return self.generator.get_layer("ab_generator") if self.color == "lab" else self.generator

    def training_pair(self, data):
        """`(input, target)` as the losses see them: as given, or in Lab mode (L, ab), scaled."""
        source, target = (ops.convert_to_tensor(t) for t in data)
        if self.color == "lab":
            source = gray_to_lightness((ops.cast(source, "float32") + 1.0) / 2.0) / L_CENTER - 1.0
            target = rgb_to_lab((ops.cast(target, "float32") + 1.0) / 2.0)[..., 1:] / AB_SCALE
        return source, target

    def generate(self, data, training):
        """G(x) for the batch's inputs x (in Lab mode: the L -> ab U-Net on the scaled L)."""
        source, _ = self.training_pair(data)
        return self.translator(source, training=training)

    def discriminator_loss(self, data, fakes, training):
        source, target = self.training_pair(data)
        real_logits = self.discriminator([source, target], training=training)
        fake_logits = self.discriminator([source, fakes], training=training)
        loss = 0.5 * losses.nonsaturating_d_loss(real_logits, fake_logits)
        return loss, {"d_loss": loss}

    def generator_loss(self, data, fakes, training):
        source, target = self.training_pair(data)
        gan = losses.nonsaturating_g_loss(self.discriminator([source, fakes], training=training))
        l1 = losses.l1(target, fakes)
        loss = gan + self.l1_weight * l1
        return loss, {"g_loss": loss, "g_gan": gan, "g_l1": l1}

    def sample_batch(self, batch_size=2, rng=None):
        """A random `(input, target)` training pair at `image_size` (tests, examples)."""
        rng = np.random.default_rng(rng)
        size = self.image_size
        return (random_images(rng, batch_size, size, size, self.input_channels),
                random_images(rng, batch_size, size, size, self.output_channels))

    def get_config(self):
        config = super().get_config()
        config.pop("d_steps")
        config.update(image_size=self.image_size, input_channels=self.input_channels,
                      output_channels=self.output_channels, width=self.width, levels=self.levels,
                      n_layers=self.n_layers, l1_weight=self.l1_weight, color=self.color,
                      upsample=self.upsample, norm=self.norm, exact=self.exact)
        return config

    def card(self):
        """The model card: `generator`, an image of any size divisible by 2**levels -> its translation."""
        from kzoo.card import ModelCard, docstring_references, image_to_image

        depth = self.levels or unet_levels(self.image_size)
        generator = image_to_image("generator", self.input_channels, self.output_channels,
                                   size_multiple=2 ** depth, base_size=self.image_size)
        summary = "translates an input image into its paired target domain"
        if self.color == "lab":
            summary = ("colourises a gray image: predicts the a*b* channels of CIE Lab from its "
                       "lightness L and keeps L exactly (Isola et al. 2017, Sec. 4; Zhang et al. 2016)")
        return ModelCard(task="image-to-image-translation", summary=summary,
                         endpoints=(generator,), references=docstring_references(type(self)))


@register_model(Pix2Pix, tiny=TINY)
def pix2pix(**overrides):
    """pix2pix at the paper's 256x256 configuration (U-Net-256, 70x70 PatchGAN)."""
    return Pix2Pix(**overrides)


@register_model(Pix2Pix, tiny={**TINY, "color": "lab", "upsample": "resize"})
def pix2pix_colorize(**overrides):
    """pix2pix as the paper's colouriser: gray L -> Lab ab at 256x256 (Isola et al. 2017, Sec. 4)."""
    return Pix2Pix(**{"input_channels": 1, "output_channels": 3, "color": "lab", **overrides})
