"""DeepLabV3+ (Chen et al., 2018): atrous backbone, ASPP and a light decoder."""

from __future__ import annotations

import re

import keras
import numpy as np
from keras import layers

from kzoo.errors import KzooError
from kzoo.layers import CaffeImageInput, aspp, conv_norm_act
from kzoo.layers.aspp import ResizeLike, SpatialBroadcast
from kzoo.models.segmentation import SegmentationModel
from kzoo.options import takes
from kzoo.options.deeplab import DEEPLAB_OPTIONS, DEEPLAB_V3_OPTIONS, TORCH_BN
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


TORCHVISION_BACKBONES = ("torchvision_resnet", "torchvision_mobilenet_v3_large")


def torchvision_backbone(image, name, *, blocks=(3, 4, 6, 3), width=64, width_mult=1.0,
                         weights=None):
    """torchvision's dilated ResNet (`blocks`, stage width `width`; ResNet-50: (3, 4, 6, 3),
    64) or MobileNetV3-Large (`width_mult`), exactly as `DeepLabV3` builds them, as a
    DeepLabV3+ encoder -> (low-level features at stride 4, high-level features, their
    stride: 8 or 16). `weights`: a local torchvision .pth whose backbone it loads (a
    DeepLabV3 file such as deeplabv3_resnet50_coco-cd0a2569.pth, or an ImageNet
    classification file); nothing is downloaded. Images in [-1, 1] are normalised to
    torchvision's input inside."""
    import os

    if image.shape[-1] != 3:
        raise ValueError(f"{name} needs 3-channel images, got {image.shape[-1]}")
    if weights is not None and not os.path.isfile(str(weights)):
        raise ValueError(f"backbone weights must be a local file (nothing is downloaded here); "
                         f"{weights!r} does not exist")
    x = _imagenet_normalize(image)
    if name == "torchvision_mobilenet_v3_large":
        feats, stride = tv_mobilenet_v3_large(x, width_mult=width_mult), 16
    else:
        feats, stride = tv_dilated_resnet(x, blocks=tuple(blocks), planes=width), 8
    if weights is not None:
        load_backbone(keras.Model(image, feats["out"]), weights)
    return feats["low"], feats["out"], stride


# --- torchvision's parameter layout of these layers -----------------------------------
# (Keras layer `backbone_layer1_0_conv1` holds torch's `backbone.layer1.0.conv1.*`.) Here
# rather than in `kzoo.hub.convert.torchvision`, which imports this module, so that
# `DeepLabV3Plus(backbone_weights=PTH)` loads a torchvision backbone without an import circle.


def torch_by_layer(state, names):
    """{keras layer name: {torch parameter: array}} of the torch `names` (no counters)."""
    by_layer = {}
    for name in names:
        if name.endswith(".num_batches_tracked"):
            continue
        module, _, param = name.rpartition(".")
        by_layer.setdefault(module.replace(".", "_"), {})[param] = np.asarray(state[name],
                                                                             np.float32)
    return by_layer


def assign_torch_weights(network, by_layer, what):
    """Set every layer of `by_layer` in `network`; every weighted layer must be covered."""
    import keras

    for layer_name, values in by_layer.items():
        try:
            layer = network.get_layer(layer_name)
        except ValueError:
            raise KzooError(f"{what}: kzoo's network has no layer {layer_name} (kzoo builder "
                            "and converter disagree)") from None
        try:
            if isinstance(layer, keras.layers.BatchNormalization):
                weights = [values[t] for t, _ in TORCH_BN]
            elif isinstance(layer, keras.layers.DepthwiseConv2D):
                weights = [values["weight"].transpose(2, 3, 0, 1)]
            else:
                weights = [values["weight"].transpose(2, 3, 1, 0)]
                if "bias" in values:
                    weights.append(values["bias"])
            layer.set_weights(weights)
        except (KeyError, ValueError) as e:
            raise KzooError(f"{what}: {layer_name}: {str(e).splitlines()[0]}") from None
    for layer in network.layers:
        if layer.weights and layer.name not in by_layer:
            raise KzooError(f"{what}: kzoo layer {layer.name} has weights the state dict does "
                            "not provide")


_CLASSIFIER_BACKBONE = re.compile(r"(conv1|bn1|layer[1-4])\.")


def load_backbone(network, path):
    """Load the torchvision backbone of the .pth `path` into `network` (a model of
    `kzoo.models.deeplab.torchvision_backbone`'s layers, named `backbone_*`), in place.

    `path` holds a torchvision DeepLabV3 state dict (`backbone.*`) or an ImageNet
    classification ResNet (`conv1`, `layer1`...) / MobileNetV3 (`features.*`) one; the
    heads (`classifier.*`, `aux_classifier.*`, `fc.*`) are not read.
    """
    from kzoo.hub.convert.torchfile import load_state_dict  # a reader: imports no kzoo model

    state = {}
    for name, value in load_state_dict(path).items():
        if name.startswith("backbone."):
            state[name] = value
        elif name.startswith("features."):
            state["backbone." + name[len("features."):]] = value
        elif _CLASSIFIER_BACKBONE.match(name):
            state["backbone." + name] = value
    wanted = {layer.name for layer in network.layers if layer.weights}
    by_layer = {k: v for k, v in torch_by_layer(state, list(state)).items() if k in wanted}
    assign_torch_weights(network, by_layer, f"{path} (backbone)")
    return network


def deeplab_v3_plus_network(*, image_size=512, channels=3, num_classes=21, backbone="resnet",
                            backbone_weights=None, blocks=(3, 4, 23, 3), width=64, width_mult=1.0,
                            multi_grid=(1, 2, 4), aspp_filters=256, aspp_rates=(6, 12, 18),
                            low_level_filters=48, decoder_filters=256, norm="batch",
                            name="deeplab_v3_plus"):
    """DeepLabV3+: image -> per-pixel logits at the input size (see `DeepLabV3Plus`)."""
    if image_size % OUTPUT_STRIDE:
        raise ValueError(f"image_size must be a multiple of {OUTPUT_STRIDE}, got {image_size}")
    image = keras.Input((image_size, image_size, channels), name="image")
    high_stride = OUTPUT_STRIDE
    if backbone == "resnet":
        low_level, high_level = atrous_resnet(image, blocks=blocks, width=width,
                                              multi_grid=multi_grid, norm=norm)
    elif backbone in TORCHVISION_BACKBONES:
        low_level, high_level, high_stride = torchvision_backbone(
            image, backbone, blocks=blocks, width=width, width_mult=width_mult,
            weights=backbone_weights)
    else:
        low_level, high_level = applications_backbone(image, backbone, backbone_weights)
    # === Encoder head: ASPP at output stride 16 (8: torchvision's dilated ResNet) ===
    x = aspp(high_level, filters=aspp_filters, rates=aspp_rates, norm=norm)
    # === Decoder (Chen et al., 2018, Sec. 3.1 and Fig. 2) ===
    x = layers.UpSampling2D(high_stride // 4, interpolation="bilinear",
                            name=f"decoder_up{high_stride // 4}")(x)
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
        backbone: str. "resnet" (from scratch), "resnet50" or "resnet101"
            (keras.applications), or torchvision's DeepLabV3 backbones
            "torchvision_resnet" (dilated, output stride 8: the decoder upsamples x2, and
            the ASPP rates should double, (12, 24, 36); `blocks` (3, 4, 6, 3) and `width`
            64 are ResNet-50, (3, 4, 23, 3) ResNet-101) or
            "torchvision_mobilenet_v3_large" (output stride 16), for fine-tuning from the
            published torchvision weights (`torchvision_backbone`).
        backbone_weights: str or None. Local weights file of a keras.applications
            backbone (include_top=False) or a torchvision .pth (a DeepLabV3 file such as
            deeplabv3_resnet50_coco-cd0a2569.pth). Not used when loading a saved model.
        blocks: tuple of 4 ints. Bottleneck blocks per stage ("resnet",
            "torchvision_resnet").
        width: int. Channels of the stem and first stage ("resnet"); the first stage's
            bottleneck width ("torchvision_resnet").
        width_mult: float. MobileNetV3's width multiplier ("torchvision_mobilenet_v3_large").
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
                 width_mult, multi_grid, aspp_filters, aspp_rates, low_level_filters, decoder_filters, norm,
                 class_weights, ignore_label, **kwargs):
        blocks, multi_grid, aspp_rates = tuple(blocks), tuple(multi_grid), tuple(aspp_rates)
        if len(blocks) != 4:
            raise ValueError(f"blocks must list 4 stages, got {blocks}")
        # === Layers ===
        network = deeplab_v3_plus_network(
            image_size=image_size, channels=channels, num_classes=num_classes, backbone=backbone,
            backbone_weights=backbone_weights, blocks=blocks, width=width, width_mult=width_mult,
            multi_grid=multi_grid,
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
        self.width_mult = float(width_mult)
        self.multi_grid = multi_grid
        self.aspp_filters = aspp_filters
        self.aspp_rates = aspp_rates
        self.low_level_filters = low_level_filters
        self.decoder_filters = decoder_filters
        self.norm = norm

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "channels": self.channels,
                "backbone": self.backbone, "backbone_weights": self.backbone_weights,
                "blocks": self.blocks, "width": self.width, "width_mult": self.width_mult,
                "multi_grid": self.multi_grid,
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


# === DeepLabV3 (no decoder), architecture-exact to torchvision's segmentation models ===
#
# torchvision 0.28.0, torchvision/models/segmentation/deeplabv3.py (`DeepLabV3`, `DeepLabHead`,
# `ASPP`, `_deeplabv3_resnet`, `_deeplabv3_mobilenetv3`), segmentation/fcn.py (`FCNHead`, the
# auxiliary head), segmentation/_utils.py (`_SimpleSegmentationModel.forward`: bilinear
# upsampling of the logits to the input size, align_corners=False), models/resnet.py
# (`ResNet(Bottleneck, ...)`, replace_stride_with_dilation=[False, True, True]: output stride 8)
# and models/mobilenetv3.py (`mobilenet_v3_large(dilated=True)`: output stride 16). Every Keras
# layer is named after its torchvision module path with "." -> "_" (`backbone.layer1.0.conv1`
# -> `backbone_layer1_0_conv1`), so `kzoo.hub.convert.torchvision` maps names one to one.
# PyTorch pads strided convs and the max pool symmetrically, Keras' "same" does not: those
# layers pad explicitly (zero padding before the max pool equals PyTorch's -inf padding, its
# input being a ReLU output).

DEEPLABV3_BACKBONES = ("resnet50", "resnet101", "mobilenet_v3_large")
RESNET_BLOCKS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}
# torchvision/transforms/_presets.py `SemanticSegmentation` (mean, std defaults), the preset of
# every DeepLabV3_*_Weights (deeplabv3.py: `partial(SemanticSegmentation, resize_size=520)`)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCH_BN_EPS = 1e-5  # nn.BatchNorm2d's default (ResNet, ASPP, heads)
MOBILENET_BN_EPS = 1e-3  # mobilenetv3.py: partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
# mobilenetv3.py `_mobilenet_v3_conf("mobilenet_v3_large", dilated=True)`: (input, kernel,
# expanded, out, use_se, activation, stride, dilation) before width_mult; C4 (index 12) on is
# dilated by 2 and keeps stride 1.
MOBILENET_V3_LARGE = (
    (16, 3, 16, 16, False, "RE", 1, 1), (16, 3, 64, 24, False, "RE", 2, 1),
    (24, 3, 72, 24, False, "RE", 1, 1), (24, 5, 72, 40, True, "RE", 2, 1),
    (40, 5, 120, 40, True, "RE", 1, 1), (40, 5, 120, 40, True, "RE", 1, 1),
    (40, 3, 240, 80, False, "HS", 2, 1), (80, 3, 200, 80, False, "HS", 1, 1),
    (80, 3, 184, 80, False, "HS", 1, 1), (80, 3, 184, 80, False, "HS", 1, 1),
    (80, 3, 480, 112, True, "HS", 1, 1), (112, 3, 672, 112, True, "HS", 1, 1),
    (112, 5, 672, 160, True, "HS", 2, 2), (160, 5, 960, 160, True, "HS", 1, 2),
    (160, 5, 960, 160, True, "HS", 1, 2))


def make_divisible(v, divisor=8):
    """torchvision/models/_utils.py `_make_divisible` (from the TF MobileNet code)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def mobilenet_v3_large_config(width_mult=1.0):
    """`[(in, kernel, expanded, out, use_se, activation, stride, dilation)]` at `width_mult`
    (`InvertedResidualConfig.adjust_channels`), and the last conv's channels (6 x out)."""
    adjust = lambda c: make_divisible(c * width_mult)  # noqa: E731
    blocks = [(adjust(i), k, adjust(e), adjust(o), se, act, s, d)
              for i, k, e, o, se, act, s, d in MOBILENET_V3_LARGE]
    return blocks, 6 * blocks[-1][3]


def _imagenet_normalize(image):
    """[-1, 1] -> torchvision's input: [0, 1] normalised by the ImageNet mean/std."""
    return layers.Rescaling(scale=[0.5 / s for s in IMAGENET_STD],
                            offset=[(0.5 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)],
                            name="imagenet_normalize")(image)


def _tv(name):
    return name.replace(".", "_")


def _tv_conv(x, filters, kernel, prefix, *, strides=1, dilation=1, bias=False, groups=1):
    """A torch Conv2d(padding=(kernel - 1) // 2 * dilation): "same" at stride 1, explicit
    symmetric zero padding then "valid" when strided."""
    padding = "same"
    if strides > 1:
        pad = (kernel - 1) // 2 * dilation
        if pad:
            x = layers.ZeroPadding2D(pad, name=_tv(prefix) + "_pad")(x)
        padding = "valid"
    if groups > 1:
        return layers.DepthwiseConv2D(kernel, strides=strides, dilation_rate=dilation,
                                      padding=padding, use_bias=bias, name=_tv(prefix))(x)
    return layers.Conv2D(filters, kernel, strides=strides, dilation_rate=dilation, padding=padding,
                         use_bias=bias, name=_tv(prefix))(x)


def _tv_bn(x, prefix, eps=TORCH_BN_EPS):
    return layers.BatchNormalization(epsilon=eps, momentum=0.9, name=_tv(prefix))(x)


def _act(x, kind, name):
    kind = {"RE": "relu", "HS": "hard_swish", "HSIG": "hard_sigmoid"}.get(kind, kind)
    return layers.Activation(kind, name=name)(x)


def _tv_bottleneck(x, prefix, planes, *, strides, dilation, downsample):
    """torchvision's `Bottleneck` (ResNet v1.5: the stride on the 3x3 conv)."""
    h = _tv_conv(x, planes, 1, f"{prefix}.conv1")
    h = _act(_tv_bn(h, f"{prefix}.bn1"), "relu", _tv(prefix) + "_relu1")
    h = _tv_conv(h, planes, 3, f"{prefix}.conv2", strides=strides, dilation=dilation)
    h = _act(_tv_bn(h, f"{prefix}.bn2"), "relu", _tv(prefix) + "_relu2")
    h = _tv_conv(h, 4 * planes, 1, f"{prefix}.conv3")
    h = _tv_bn(h, f"{prefix}.bn3")
    if downsample:
        x = layers.Conv2D(4 * planes, 1, strides=strides, use_bias=False,
                          name=_tv(prefix) + "_downsample_0")(x)
        x = _tv_bn(x, f"{prefix}.downsample.1")
    return _act(layers.Add(name=_tv(prefix) + "_add")([h, x]), "relu", _tv(prefix) + "_out")


def tv_dilated_resnet(x, *, blocks=(3, 4, 6, 3), stem=64, planes=64):
    """torchvision's ResNet(Bottleneck, blocks, replace_stride_with_dilation=[False, True,
    True]) up to layer4 -> {"low": layer1 (stride 4), "aux": layer3, "out": layer4}
    features, output stride 8 (`resnet.py`:
    `_make_layer` multiplies the dilation by the stride it drops; a stage's first block keeps
    the previous dilation). `planes` is 64 in torchvision (stages 64, 128, 256, 512 x 4)."""
    x = _tv_conv(x, stem, 7, "backbone.conv1", strides=2)
    x = _act(_tv_bn(x, "backbone.bn1"), "relu", "backbone_relu")
    x = layers.ZeroPadding2D(1, name="backbone_maxpool_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="backbone_maxpool")(x)
    inplanes, dilation, features = stem, 1, []
    for stage, n in enumerate(blocks):
        width = planes * 2 ** stage
        strides, previous = (1 if stage == 0 else 2), dilation
        if stage >= 2:  # replace_stride_with_dilation [False, True, True]
            dilation, strides = dilation * strides, 1
        for b in range(n):
            prefix = f"backbone.layer{stage + 1}.{b}"
            first = b == 0
            x = _tv_bottleneck(x, prefix, width, strides=strides if first else 1,
                               dilation=previous if first else dilation,
                               downsample=first and (strides != 1 or inplanes != 4 * width))
            inplanes = 4 * width
        features.append(x)
    return {"low": features[0], "aux": features[2], "out": features[3]}


def tv_mobilenet_v3_large(x, *, width_mult=1.0):
    """torchvision's `mobilenet_v3_large(dilated=True).features` -> {"low", "aux", "out"}
    features: the last stride-4 block's output (index 3), the C2 block's (index 4, stride 8)
    and the last conv's (index 16, stride 16), the latter two as `_deeplabv3_mobilenetv3`
    takes them."""
    config, last = mobilenet_v3_large_config(width_mult)
    eps = MOBILENET_BN_EPS
    x = _tv_conv(x, config[0][0], 3, "backbone.0.0", strides=2)
    x = _act(_tv_bn(x, "backbone.0.1", eps), "HS", "backbone_0_act")
    aux = low = None
    total_stride = 2
    for i, (cin, k, exp, cout, se, act, stride, dilation) in enumerate(config, start=1):
        p, j, inp = f"backbone.{i}.block", 0, x
        if exp != cin:
            x = _tv_conv(x, exp, 1, f"{p}.0.0")
            x = _act(_tv_bn(x, f"{p}.0.1", eps), act, _tv(p) + "_0_act")
            j = 1
        x = _tv_conv(x, exp, k, f"{p}.{j}.0", strides=1 if dilation > 1 else stride,
                     dilation=dilation, groups=exp)
        x = _act(_tv_bn(x, f"{p}.{j}.1", eps), act, _tv(p) + f"_{j}_act")
        j += 1
        if se:  # ops/misc.py SqueezeExcitation(exp, make_divisible(exp // 4)), Hardsigmoid
            s = layers.GlobalAveragePooling2D(keepdims=True, name=_tv(p) + f"_{j}_avgpool")(x)
            s = layers.Conv2D(make_divisible(exp // 4), 1, name=_tv(p) + f"_{j}_fc1")(s)
            s = _act(s, "relu", _tv(p) + f"_{j}_relu")
            s = layers.Conv2D(exp, 1, name=_tv(p) + f"_{j}_fc2")(s)
            s = _act(s, "HSIG", _tv(p) + f"_{j}_hardsigmoid")
            x = layers.Multiply(name=_tv(p) + f"_{j}_scale")([x, s])
            j += 1
        x = _tv_conv(x, cout, 1, f"{p}.{j}.0")
        x = _tv_bn(x, f"{p}.{j}.1", eps)
        if stride == 1 and cin == cout:
            x = layers.Add(name=_tv(p) + "_add")([x, inp])
        if i == 4:
            aux = x
        if stride > 1 and dilation == 1:
            total_stride *= 2
        if total_stride == 4:
            low = x  # ends as the last stride-4 block (index 3): DeepLabV3+'s low-level features
    n = len(config) + 1
    x = _tv_conv(x, last, 1, f"backbone.{n}.0")
    x = _act(_tv_bn(x, f"backbone.{n}.1", eps), "HS", f"backbone_{n}_act")
    return {"low": low, "aux": aux, "out": x}


def tv_deeplab_head(x, num_classes, *, filters=256, rates=(12, 24, 36), prefix="classifier"):
    """torchvision's `DeepLabHead`: ASPP (1x1, three atrous 3x3, image pooling; 1x1 project,
    dropout 0.5), 3x3 conv + BN + ReLU, 1x1 classifier. `filters` is 256 in torchvision."""
    p = f"{prefix}.0"
    branches = []
    for i in range(len(rates) + 1):
        h = _tv_conv(x, filters, 3 if i else 1, f"{p}.convs.{i}.0",
                     dilation=rates[i - 1] if i else 1)
        branches.append(_act(_tv_bn(h, f"{p}.convs.{i}.1"), "relu", _tv(p) + f"_convs_{i}_act"))
    i = len(rates) + 1
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=_tv(p) + f"_convs_{i}_0")(x)
    pooled = layers.Conv2D(filters, 1, use_bias=False, name=_tv(p) + f"_convs_{i}_1")(pooled)
    pooled = _act(_tv_bn(pooled, f"{p}.convs.{i}.2"), "relu", _tv(p) + f"_convs_{i}_act")
    # bilinear upsampling of a 1x1 map (align_corners=False) is a broadcast
    branches.append(SpatialBroadcast(name=_tv(p) + f"_convs_{i}_up")([pooled, x]))
    h = layers.Concatenate(name=_tv(p) + "_concat")(branches)
    h = _tv_conv(h, filters, 1, f"{p}.project.0")
    h = _act(_tv_bn(h, f"{p}.project.1"), "relu", _tv(p) + "_project_act")
    h = layers.Dropout(0.5, name=_tv(p) + "_project_3")(h)
    h = _tv_conv(h, filters, 3, f"{prefix}.1")
    h = _act(_tv_bn(h, f"{prefix}.2"), "relu", _tv(prefix) + "_3")
    return _tv_conv(h, num_classes, 1, f"{prefix}.4", bias=True)


def tv_fcn_head(x, num_classes, prefix="aux_classifier"):
    """torchvision's `FCNHead` (segmentation/fcn.py): 3x3 conv to in/4 + BN + ReLU, dropout
    0.1, 1x1 classifier."""
    h = _tv_conv(x, x.shape[-1] // 4, 3, f"{prefix}.0")
    h = _act(_tv_bn(h, f"{prefix}.1"), "relu", _tv(prefix) + "_2")
    h = layers.Dropout(0.1, name=_tv(prefix) + "_3")(h)
    return _tv_conv(h, num_classes, 1, f"{prefix}.4", bias=True)


def deeplab_v3_network(*, image_size=520, num_classes=21, backbone="resnet50", blocks=None,
                       stem=64, planes=64, width_mult=1.0, aspp_filters=256,
                       aspp_rates=(12, 24, 36), aux=False, name="deeplab_v3"):
    """DeepLabV3 as torchvision builds it: image in [-1, 1] -> logits at the input size
    (and, with `aux`, the auxiliary FCN head's logits as a second output)."""
    if backbone not in DEEPLABV3_BACKBONES:
        raise ValueError(f"unknown DeepLabV3 backbone {backbone!r}; use one of "
                         f"{', '.join(DEEPLABV3_BACKBONES)}")
    image = keras.Input((image_size, image_size, 3), name="image")
    x = _imagenet_normalize(image)
    if backbone == "mobilenet_v3_large":
        feats = tv_mobilenet_v3_large(x, width_mult=width_mult)
    else:
        feats = tv_dilated_resnet(x, blocks=tuple(blocks or RESNET_BLOCKS[backbone]), stem=stem,
                                  planes=planes)
    aux_features, features = feats["aux"], feats["out"]
    outputs = [tv_deeplab_head(features, num_classes, filters=aspp_filters, rates=aspp_rates)]
    if aux:
        outputs.append(tv_fcn_head(aux_features, num_classes))
    logits = [ResizeLike(dtype="float32", name=n)([o, image])
              for n, o in zip(("logits", "aux_logits"), outputs)]
    return keras.Model(image, logits if aux else logits[0], name=name)


# torchvision/models/_meta.py `_VOC_CATEGORIES`, the `categories` of every DeepLabV3_*_Weights
VOC_CLASSES = ("__background__", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")


TINY_V3_RESNET = {"image_size": 40, "blocks": (1, 1, 1, 1), "stem": 8, "planes": 2,
                  "aspp_filters": 8, "num_classes": 3, "class_names": None}
TINY_V3_MOBILENET = {"image_size": 40, "width_mult": 0.1, "aspp_filters": 8, "num_classes": 3,
                     "class_names": None}


@keras.saving.register_keras_serializable(package="kzoo")
class DeepLabV3(SegmentationModel):
    """DeepLabV3 (no decoder) exactly as torchvision builds it, for its published weights.

    Backbone: torchvision's ResNet-50/101 with `replace_stride_with_dilation=[False, True,
    True]` (output stride 8: layer3 and layer4 dilated by 2 and 4 instead of strided) or
    MobileNetV3-Large with `dilated=True` (output stride 16: its last stage dilated by 2).
    Head: `DeepLabHead` -- ASPP (1x1, 3x3 at rates 12, 24, 36, image pooling; 256 channels;
    1x1 projection, dropout 0.5), a 3x3 conv (256), a 1x1 classifier -- and the logits are
    upsampled bilinearly (align_corners=False) to the input size. The optional auxiliary
    `FCNHead` (3x3 conv to in/4 channels, dropout 0.1, 1x1 classifier) reads layer3 (ResNet)
    or the stride-8 C2 block (MobileNetV3); it only adds a training loss, weighted 0.5 as in
    torchvision's references/segmentation/train.py `criterion`.

    Inputs follow kzoo (RGB in [-1, 1]); the network's first layer maps them to
    torchvision's input, [0, 1] normalised by the ImageNet mean (0.485, 0.456, 0.406) and
    std (0.229, 0.224, 0.225) (`SemanticSegmentation` preset), so the converted weights see
    exactly what they were trained on. Batch norm uses torchvision's epsilons (1e-5; 1e-3
    in MobileNetV3). Layers are named after torchvision's module paths (see
    `kzoo.hub.convert.torchvision`).

    Args:
        image_size: int. The size the network is built and checked at (520: torchvision's
            preset resizes the shorter side to 520); it takes any height and width.
        num_classes: int. Output classes (21: background + the 20 VOC classes).
        backbone: str. "resnet50", "resnet101" or "mobilenet_v3_large".
        blocks: tuple of 4 ints or None. Bottlenecks per ResNet stage (None: the backbone's).
        stem: int. Channels of the ResNet stem (64).
        planes: int. Bottleneck width of the first ResNet stage (64; x2 per stage).
        width_mult: float. MobileNetV3 width multiplier (1.0).
        aspp_filters: int. Channels of ASPP and the head's 3x3 conv (256).
        aspp_rates: tuple of ints. ASPP atrous rates (12, 24, 36).
        aux: bool. Build the auxiliary FCN head (its loss is added in training).
        aux_weight: float. Weight of the auxiliary loss (0.5).
        class_names: tuple of str or None. One name a class (the card lists them).
        class_weights: sequence of floats or None. Per-class loss weights.
        ignore_label: int. Label excluded from loss and metrics (255).

    Example:
    >>> model = DeepLabV3(image_size=40, backbone="mobilenet_v3_large", width_mult=0.1,
    ...                   aspp_filters=8)
    >>> model(keras.ops.zeros((1, 40, 40, 3))).shape
    TensorShape([1, 40, 40, 21])

    References:
        Chen, Papandreou, Schroff & Adam, "Rethinking Atrous Convolution for Semantic
        Image Segmentation", arXiv:1706.05587, 2017.
        He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.
        Howard et al., "Searching for MobileNetV3", ICCV 2019.
    """

    @takes(DEEPLAB_V3_OPTIONS)
    def __init__(self, *, image_size, num_classes, backbone, blocks, stem, planes, width_mult,
                 aspp_filters, aspp_rates, aux, aux_weight, class_names, class_weights, ignore_label,
                 **kwargs):
        blocks = tuple(blocks) if blocks is not None else None
        aspp_rates = tuple(aspp_rates)
        if class_names is not None:
            class_names = tuple(str(n) for n in class_names)
            if len(class_names) != num_classes:
                raise ValueError(f"class_names has {len(class_names)} names for {num_classes} "
                                 "classes")
        # === Layers ===
        full = deeplab_v3_network(image_size=image_size, num_classes=num_classes,
                                  backbone=backbone, blocks=blocks, stem=stem, planes=planes,
                                  width_mult=width_mult, aspp_filters=aspp_filters,
                                  aspp_rates=aspp_rates, aux=aux)
        network = keras.Model(full.input, full.outputs[0], name="deeplab_v3") if aux else full
        # === Model ===
        super().__init__(network=network, num_classes=num_classes, class_weights=class_weights,
                         ignore_label=ignore_label, **kwargs)
        self.aux_network = full if aux else None
        # === Config ===
        self.image_size = image_size
        self.channels = 3
        self.backbone = backbone
        self.blocks = blocks
        self.stem = stem
        self.planes = planes
        self.width_mult = float(width_mult)
        self.aspp_filters = aspp_filters
        self.aspp_rates = aspp_rates
        self.aux = bool(aux)
        self.aux_weight = float(aux_weight)
        self.class_names = class_names

    @property
    def size_multiple(self):
        """1: explicit PyTorch padding and run-time resizing take any input size, as
        torchvision's model does (its weights meta: min_size (1, 1))."""
        return 1

    def optimizer_variables(self, name):
        return (self.aux_network or self.network).trainable_variables

    def train_step(self, data):
        if self.aux_network is None:
            return super().train_step(data)
        images, labels = self._labels(data)

        def loss_fn():
            logits, aux_logits = self.aux_network(images, training=True)
            loss = (self.segmentation_loss(labels, logits)
                    + self.aux_weight * self.segmentation_loss(labels, aux_logits))
            return loss, {"loss": loss, "logits": logits}

        logs = self.optimize(loss_fn)
        return self._track(labels, logs["logits"], logs["loss"])

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "backbone": self.backbone,
                "blocks": self.blocks, "stem": self.stem, "planes": self.planes,
                "width_mult": self.width_mult, "aspp_filters": self.aspp_filters,
                "aspp_rates": self.aspp_rates, "aux": self.aux, "aux_weight": self.aux_weight,
                "class_names": self.class_names}

    def card(self):
        """The segmentation card, with the class names and the input normalisation."""
        import dataclasses

        card = super().card()
        names = self.class_names
        endpoint = card.endpoints[0]
        image = dataclasses.replace(
            endpoint.inputs[0],
            description="RGB in [-1, 1]; the network maps it to [0, 1] normalised by the "
                        f"ImageNet mean {IMAGENET_MEAN} and std {IMAGENET_STD} "
                        "(torchvision's SemanticSegmentation preset)")
        outputs = tuple(dataclasses.replace(t, class_names=names) for t in endpoint.outputs)
        endpoint = dataclasses.replace(endpoint, inputs=(image,), outputs=outputs)
        return dataclasses.replace(card, summary="labels every pixel of an image with a class "
                                   "(DeepLabV3, torchvision's architecture)",
                                   endpoints=(endpoint,))


@register_model(DeepLabV3, tiny=TINY_V3_RESNET)
def deeplab_v3_resnet50(**overrides):
    """torchvision's deeplabv3_resnet50 (COCO with the 21 VOC classes; aux head)."""
    return DeepLabV3(**{"backbone": "resnet50", "aux": True, "class_names": VOC_CLASSES,
                        **overrides})


@register_model(DeepLabV3, tiny=TINY_V3_RESNET)
def deeplab_v3_resnet101(**overrides):
    """torchvision's deeplabv3_resnet101 (COCO with the 21 VOC classes; aux head)."""
    return DeepLabV3(**{"backbone": "resnet101", "aux": True, "class_names": VOC_CLASSES,
                        **overrides})


@register_model(DeepLabV3, tiny=TINY_V3_MOBILENET)
def deeplab_v3_mobilenet_v3_large(**overrides):
    """torchvision's deeplabv3_mobilenet_v3_large (COCO with the 21 VOC classes; aux head)."""
    return DeepLabV3(**{"backbone": "mobilenet_v3_large", "aux": True,
                        "class_names": VOC_CLASSES, **overrides})
