"""DeepLabV3+ (Chen et al., 2018): atrous backbone, ASPP and a light decoder."""

from __future__ import annotations

import keras
from keras import layers

from kzoo.layers import CaffeImageInput, aspp, conv_norm_act
from kzoo.models.segmentation import SegmentationModel
from kzoo.options import takes
from kzoo.options.deeplab import DEEPLAB_OPTIONS
from kzoo.zoo import register_model

TINY = {"image_size": 32, "channels": 3, "num_classes": 3, "blocks": (1, 1, 1, 1), "width": 4,
        "aspp_filters": 8, "low_level_filters": 4, "decoder_filters": 8}
OUTPUT_STRIDE = 16
APPLICATIONS = ("resnet50", "resnet101")  # keras.applications backbones (caffe-style input)


def bottleneck(x, filters, *, strides=1, dilation_rate=1, norm="batch", name):
    """ResNet bottleneck (He et al., 2016): 1x1 -> 3x3 (strided or atrous) -> 1x1 (4x), + shortcut."""
    shortcut = x
    if strides != 1 or x.shape[-1] != 4 * filters:
        shortcut = conv_norm_act(x, 4 * filters, 1, strides=strides, norm=norm, activation=None,
                                 name=f"{name}_shortcut")
    h = conv_norm_act(x, filters, 1, norm=norm, name=f"{name}_1")
    h = conv_norm_act(h, filters, 3, strides=strides, dilation_rate=dilation_rate, norm=norm,
                      name=f"{name}_2")
    h = conv_norm_act(h, 4 * filters, 1, norm=norm, activation=None, name=f"{name}_3")
    h = layers.Add(name=f"{name}_add")([shortcut, h])
    return layers.Activation("relu", name=f"{name}_out")(h)


def atrous_resnet(image, *, blocks=(3, 4, 23, 3), width=64, multi_grid=(1, 2, 4), norm="batch"):
    """A ResNet trained from scratch at output stride 16 -> (low-level, high-level) features.

    Stem (7x7/2 conv, 3x3/2 max pool), then four stages of bottlenecks with
    `width * (1, 2, 4, 8)` channels (x4 out). Stages 2 and 3 stride by 2; the last
    stage keeps stride 1 and uses atrous rate 2 instead, times the multi-grid unit
    rates (Chen et al., DeepLabv3, Sec. 3.2 / 4.1), so the features stay at 1/16.
    The low-level features are the output of stage 1 (stride 4).
    """
    h = conv_norm_act(image, width, 7, strides=2, norm=norm, name="stem")
    h = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(h)
    low_level = None
    for stage, n in enumerate(blocks):
        for b in range(n):
            strides, rate = 1, 1
            if stage in (1, 2) and b == 0:
                strides = 2
            if stage == 3:
                rate = 2 * multi_grid[b % len(multi_grid)]
            h = bottleneck(h, width * 2 ** stage, strides=strides, dilation_rate=rate, norm=norm,
                           name=f"stage{stage + 1}_block{b + 1}")
        if stage == 0:
            low_level = h
    return low_level, h


def applications_backbone(image, name, weights=None):
    """A keras.applications ResNet with its last stage made atrous (stride 1, rate 2).

    `weights`: None (random) or the path of a local weights file for the
    include_top=False network; nothing is ever downloaded. The model is cloned with
    the conv5 strides set to 1 and its 3x3 convs dilated by 2, and the weights are
    copied over (strides and rates do not change kernel shapes).
    """
    import os

    if name not in APPLICATIONS:
        raise ValueError(f"unknown backbone {name!r}; use 'resnet' (from scratch) or one of "
                         f"{', '.join(APPLICATIONS)}")
    if weights is not None and not os.path.isfile(str(weights)):
        raise ValueError(f"backbone weights must be a local file (nothing is downloaded here); "
                         f"{weights!r} does not exist")
    if image.shape[-1] != 3:
        raise ValueError(f"{name} needs 3-channel images, got {image.shape[-1]}")
    builder = {"resnet50": keras.applications.ResNet50,
               "resnet101": keras.applications.ResNet101}[name]
    base = builder(include_top=False, weights=weights, input_shape=tuple(image.shape[1:]))

    def dilate(layer):
        config = layer.get_config()
        if layer.name.startswith("conv5_") and isinstance(layer, layers.Conv2D):
            config["strides"] = (1, 1)
            if tuple(config["kernel_size"]) != (1, 1):
                config["dilation_rate"] = (2, 2)
        return layer.__class__.from_config(config)

    atrous = keras.models.clone_model(base, clone_function=dilate)
    atrous.set_weights(base.get_weights())
    features = keras.Model(atrous.input, [atrous.get_layer("conv2_block3_out").output, atrous.output],
                           name=f"{name}_atrous")
    low_level, high_level = features(CaffeImageInput(name="caffe_input")(image))
    return low_level, high_level


def deeplab_v3_plus_network(*, image_size=512, channels=3, num_classes=21, backbone="resnet",
                            backbone_weights=None, blocks=(3, 4, 23, 3), width=64,
                            multi_grid=(1, 2, 4), aspp_filters=256, aspp_rates=(6, 12, 18),
                            low_level_filters=48, decoder_filters=256, norm="batch",
                            name="deeplab_v3_plus"):
    """DeepLabV3+: image -> per-pixel logits at the input size (see `DeepLabV3Plus`)."""
    if image_size % OUTPUT_STRIDE:
        raise ValueError(f"image_size must be a multiple of {OUTPUT_STRIDE}, got {image_size}")
    image = keras.Input((image_size, image_size, channels), name="image")
    if backbone == "resnet":
        low_level, high_level = atrous_resnet(image, blocks=blocks, width=width,
                                              multi_grid=multi_grid, norm=norm)
    else:
        low_level, high_level = applications_backbone(image, backbone, backbone_weights)
    # === Encoder head: ASPP at output stride 16 ===
    x = aspp(high_level, filters=aspp_filters, rates=aspp_rates, norm=norm)
    # === Decoder (Chen et al., 2018, Sec. 3.1 and Fig. 2) ===
    x = layers.UpSampling2D(4, interpolation="bilinear", name="decoder_up4")(x)
    low = conv_norm_act(low_level, low_level_filters, 1, norm=norm, name="decoder_low_level")
    x = layers.Concatenate(name="decoder_concat")([x, low])
    x = conv_norm_act(x, decoder_filters, 3, norm=norm, name="decoder_conv1")
    x = conv_norm_act(x, decoder_filters, 3, norm=norm, name="decoder_conv2")
    x = layers.Conv2D(num_classes, 1, name="classifier")(x)
    logits = layers.UpSampling2D(4, interpolation="bilinear", dtype="float32", name="logits")(x)
    return keras.Model(image, logits, name=name)


@keras.saving.register_keras_serializable(package="kzoo")
class DeepLabV3Plus(SegmentationModel):
    """DeepLabV3+ segmentation model with the shared segmentation training step.

    Encoder: an atrous backbone at output stride 16 -- by default a ResNet-101
    layout (bottleneck blocks 3, 4, 23, 3) trained from scratch, its last stage
    dilated (rate 2 x multi-grid 1, 2, 4) instead of strided -- followed by ASPP
    (`kzoo.layers.aspp`: 1x1 + 3x3 at rates 6, 12, 18 + image pooling, 256
    channels). Decoder: low-level (stride 4) features reduced to 48 channels by a
    1x1 conv, concatenated with the x4 bilinearly upsampled ASPP output, two 3x3
    convs of 256 channels, a 1x1 classifier and x4 bilinear upsampling to the
    input size. Batch norm and ReLU throughout. Paper training (the recipe's
    defaults): SGD momentum 0.9, poly learning rate from 0.007, 513 crops (512
    here: a multiple of 16), 21 VOC classes.

    No ImageNet weights can be downloaded here: `backbone="resnet50"` or
    `"resnet101"` builds the keras.applications network instead (last stage made
    atrous) and `backbone_weights` loads it from a local file the user has.

    Args:
        image_size: int. Input height and width, a multiple of 16.
        channels: int. Input channels (3 for keras.applications backbones).
        num_classes: int. Output classes.
        backbone: str. "resnet" (from scratch), "resnet50" or "resnet101".
        backbone_weights: str or None. Local weights file of a keras.applications
            backbone (include_top=False). Not used when loading a saved model.
        blocks: tuple of 4 ints. Bottleneck blocks per stage ("resnet" only).
        width: int. Channels of the stem and first stage ("resnet" only).
        multi_grid: tuple of ints. Unit rates of the last stage's blocks.
        aspp_filters: int. Channels of every ASPP branch and its projection.
        aspp_rates: tuple of ints. Atrous rates of the 3x3 ASPP branches.
        low_level_filters: int. Channels the low-level features are reduced to.
        decoder_filters: int. Channels of the decoder's two 3x3 convs.
        norm: str. Normalization after each conv ("batch").
        class_weights: sequence of floats or None. Per-class loss weights.
        ignore_label: int. Label excluded from loss and metrics (255).

    Call arguments:
        inputs: images (batch, image_size, image_size, channels) in [-1, 1].

    Returns:
        Logits (batch, image_size, image_size, num_classes).

    Example:
    >>> model = DeepLabV3Plus(image_size=32, num_classes=3, blocks=(1, 1, 1, 1), width=4,
    ...                       aspp_filters=8, low_level_filters=4, decoder_filters=8)
    >>> model(keras.ops.zeros((2, 32, 32, 3))).shape
    TensorShape([2, 32, 32, 3])

    References:
        Chen, Zhu, Papandreou, Schroff & Adam, "Encoder-Decoder with Atrous Separable
        Convolution for Semantic Image Segmentation", ECCV 2018.
        Chen, Papandreou, Schroff & Adam, "Rethinking Atrous Convolution for Semantic
        Image Segmentation", arXiv:1706.05587, 2017 (ASPP, multi-grid).
    """

    @takes(DEEPLAB_OPTIONS)
    def __init__(self, *, image_size, channels, num_classes, backbone, backbone_weights, blocks, width,
                 multi_grid, aspp_filters, aspp_rates, low_level_filters, decoder_filters, norm,
                 class_weights, ignore_label, **kwargs):
        blocks, multi_grid, aspp_rates = tuple(blocks), tuple(multi_grid), tuple(aspp_rates)
        if len(blocks) != 4:
            raise ValueError(f"blocks must list 4 stages, got {blocks}")
        # === Layers ===
        network = deeplab_v3_plus_network(
            image_size=image_size, channels=channels, num_classes=num_classes, backbone=backbone,
            backbone_weights=backbone_weights, blocks=blocks, width=width, multi_grid=multi_grid,
            aspp_filters=aspp_filters, aspp_rates=aspp_rates, low_level_filters=low_level_filters,
            decoder_filters=decoder_filters, norm=norm)
        # === Model ===
        super().__init__(network=network, num_classes=num_classes, class_weights=class_weights,
                         ignore_label=ignore_label, **kwargs)
        # === Config ===
        self.image_size = image_size
        self.channels = channels
        self.backbone = backbone
        self.backbone_weights = backbone_weights
        self.blocks = blocks
        self.width = width
        self.multi_grid = multi_grid
        self.aspp_filters = aspp_filters
        self.aspp_rates = aspp_rates
        self.low_level_filters = low_level_filters
        self.decoder_filters = decoder_filters
        self.norm = norm

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "channels": self.channels,
                "backbone": self.backbone, "backbone_weights": self.backbone_weights,
                "blocks": self.blocks, "width": self.width, "multi_grid": self.multi_grid,
                "aspp_filters": self.aspp_filters, "aspp_rates": self.aspp_rates,
                "low_level_filters": self.low_level_filters,
                "decoder_filters": self.decoder_filters, "norm": self.norm}

    @classmethod
    def from_config(cls, config):
        # A saved model carries its own weights: the backbone file is not needed (or read).
        return cls(**{**config, "backbone_weights": None})

    @property
    def size_multiple(self):
        """The output stride, 16: the decoder joins stride-4 and stride-16 features.

        None (fixed size) for networks saved before the ASPP image-pooling branch
        broadcast to the run-time feature size (their `aspp_pool_up` is an
        `UpSampling2D` by the built size, e.g. the hub's `deeplab-shapes@1`).
        """
        try:
            pool_up = self.network.get_layer("aspp_pool_up")
        except ValueError:
            pool_up = None
        if isinstance(pool_up, keras.layers.UpSampling2D):
            return None
        return OUTPUT_STRIDE


@register_model(DeepLabV3Plus, tiny=TINY)
def deeplab_v3_plus(**overrides):
    """DeepLabV3+ at the paper's configuration (ResNet-101 layout from scratch, OS 16)."""
    return DeepLabV3Plus(**overrides)


@register_model(DeepLabV3Plus, tiny=TINY)
def deeplab_v3_plus_shapes(**overrides):
    """A slim DeepLabV3+ for small colour scenes (builtin:shapes, quick recipe)."""
    return DeepLabV3Plus(**{"image_size": 64, "channels": 3, "num_classes": 5,
                            "blocks": (1, 1, 1, 1), "width": 16, "aspp_filters": 64,
                            "low_level_filters": 24, "decoder_filters": 64, **overrides})
