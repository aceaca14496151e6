"""U-Net (Ronneberger, Fischer & Brox, 2015) for semantic segmentation."""

from __future__ import annotations

import keras
from keras import layers

from kzoo.layers import conv_norm_act
from kzoo.models.segmentation import SegmentationModel
from kzoo.options import takes
from kzoo.options.unet import UNET_OPTIONS
from kzoo.zoo import register_model

TINY = {"image_size": 16, "channels": 3, "num_classes": 3, "depth": 2, "width": 4}


def unet_network(*, image_size=512, channels=1, num_classes=2, depth=4, width=64, norm=None,
                 dropout=0.5, name="unet"):
    """U-Net: image -> per-pixel logits, an encoder-decoder with skip connections.

    Contracting path: `depth` stages of two 3x3 conv + ReLU then 2x2 max pooling,
    channels doubling from `width`; a bottleneck of two 3x3 convs at
    `width * 2**depth` followed by dropout ("drop-out layers at the end of the
    contracting path"). Expanding path: a 2x2 up-convolution halving the channels,
    concatenation with the skip features of the same stage, two 3x3 convs + ReLU;
    a final 1x1 conv to `num_classes` logits. He-normal init (paper, Sec. 3).

    Unlike the paper's unpadded convolutions (572 -> 388 output, overlap-tile),
    convolutions are zero-padded so the output has the input's size;
    `image_size` must be divisible by `2**depth`.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if image_size % (2 ** depth):
        raise ValueError(f"image_size {image_size} must be divisible by 2**depth = {2 ** depth}")
    image = keras.Input((image_size, image_size, channels), name="image")
    h, skips = image, []
    for i in range(depth):
        h = conv_norm_act(h, width * 2 ** i, norm=norm, name=f"down{i}_a")
        h = conv_norm_act(h, width * 2 ** i, norm=norm, name=f"down{i}_b")
        skips.append(h)
        h = layers.MaxPooling2D(2, name=f"down{i}_pool")(h)
    h = conv_norm_act(h, width * 2 ** depth, norm=norm, name="bottleneck_a")
    h = conv_norm_act(h, width * 2 ** depth, norm=norm, name="bottleneck_b")
    if dropout:
        h = layers.Dropout(dropout, name="bottleneck_dropout")(h)
    for i in reversed(range(depth)):
        h = layers.Conv2DTranspose(width * 2 ** i, 2, strides=2, kernel_initializer="he_normal",
                                   name=f"up{i}_upconv")(h)
        h = layers.Concatenate(name=f"up{i}_skip")([skips[i], h])
        h = conv_norm_act(h, width * 2 ** i, norm=norm, name=f"up{i}_a")
        h = conv_norm_act(h, width * 2 ** i, norm=norm, name=f"up{i}_b")
    logits = layers.Conv2D(num_classes, 1, dtype="float32", name="logits")(h)
    return keras.Model(image, logits, name=name)


@keras.saving.register_keras_serializable(package="kzoo")
class UNet(SegmentationModel):
    """U-Net segmentation model with the shared segmentation training step.

    Paper defaults (Ronneberger et al., 2015): depth 4 (four poolings), width 64
    (64 -> 1024 channels), no normalization, dropout 0.5 at the end of the
    contracting path, one-channel input, two classes; trained with SGD, momentum
    0.99 (the recipe's defaults). `norm="batch"` adds batch norm after every conv
    (a common later addition that speeds up training from scratch).

    Args:
        image_size: int. Input height and width; divisible by `2**depth`.
        channels: int. Input channels.
        num_classes: int. Output classes.
        depth: int. Number of down-/up-sampling stages.
        width: int. Channels of the first stage; doubled at each stage.
        norm: str or None. "batch", "instance", "layer" or None.
        dropout: float. Dropout rate after the bottleneck.
        class_weights: sequence of floats or None. Per-class loss weights.
        ignore_label: int. Label excluded from loss and metrics (255).

    Call arguments:
        inputs: images (batch, image_size, image_size, channels) in [-1, 1].

    Returns:
        Logits (batch, image_size, image_size, num_classes).

    Example:
    >>> model = UNet(image_size=16, channels=3, num_classes=3, depth=2, width=4)
    >>> model(keras.ops.zeros((2, 16, 16, 3))).shape
    TensorShape([2, 16, 16, 3])

    References:
        Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical
        Image Segmentation", MICCAI 2015.
    """

    @takes(UNET_OPTIONS)
    def __init__(self, *, image_size, channels, num_classes, depth, width, norm, dropout, class_weights,
                 ignore_label, **kwargs):
        # === Layers ===
        network = unet_network(image_size=image_size, channels=channels, num_classes=num_classes,
                               depth=depth, width=width, norm=norm, dropout=dropout)
        # === Model ===
        super().__init__(network=network, num_classes=num_classes, class_weights=class_weights,
                         ignore_label=ignore_label, **kwargs)
        # === Config ===
        self.image_size = image_size
        self.channels = channels
        self.depth = depth
        self.width = width
        self.norm = norm
        self.dropout = dropout

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "channels": self.channels,
                "depth": self.depth, "width": self.width, "norm": self.norm,
                "dropout": self.dropout}

    @property
    def size_multiple(self):
        """2**depth: every pooling halves the size and the up path mirrors it (fully convolutional)."""
        return 2 ** self.depth


@register_model(UNet, tiny=TINY)
def unet(**overrides):
    """U-Net at the paper's configuration (depth 4, width 64)."""
    return UNet(**overrides)


@register_model(UNet, tiny=TINY)
def unet_shapes(**overrides):
    """A small batch-normalised U-Net for 64x64 colour scenes (builtin:shapes, quick recipe)."""
    return UNet(**{"image_size": 64, "channels": 3, "num_classes": 5, "depth": 3, "width": 16,
                   "norm": "batch", "dropout": 0.0, **overrides})
