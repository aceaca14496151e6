"""Shared building blocks: the one home for layers used by several models."""

from __future__ import annotations

import keras
from keras import layers


def dcgan_init(seed=None):
    """N(0, 0.02) weight initialisation (Radford et al., 2016, Sec. 4)."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02, seed=seed)


def normalization(kind: str | None, name=None):
    """'batch', 'layer' (over H, W, C of each example), 'instance' or None."""
    if kind in (None, "none"):
        return None
    if kind == "batch":
        return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)
    if kind == "layer":
        return layers.LayerNormalization(axis=(-3, -2, -1), epsilon=1e-5, name=name)
    if kind == "instance":
        return layers.GroupNormalization(groups=-1, epsilon=1e-5, center=False, scale=False, name=name)
    raise ValueError(f"unknown normalization {kind!r}; use batch, layer, instance or none")


def conv_block(x, filters, *, kernel_size=4, strides=2, norm="batch", activation="leaky_relu",
               transpose=False, padding="same", name=None):
    """Conv (or transposed conv) -> optional norm -> activation, DCGAN-initialised.

    The conv has no bias when a normalization follows (the norm's offset does its job).
    """
    conv_cls = layers.Conv2DTranspose if transpose else layers.Conv2D
    x = conv_cls(filters, kernel_size, strides=strides, padding=padding,
                 use_bias=norm in (None, "none"), kernel_initializer=dcgan_init(),
                 name=f"{name}_conv" if name else None)(x)
    norm_layer = normalization(norm, name=f"{name}_norm" if name else None)
    if norm_layer is not None:
        x = norm_layer(x)
    return activation_layer(activation, name=f"{name}_act" if name else None)(x)


def activation_layer(kind, name=None):
    if kind == "leaky_relu":
        return layers.LeakyReLU(negative_slope=0.2, name=name)
    return layers.Activation(kind, name=name)


# --- segmentation ---

def conv_norm_act(x, filters, kernel_size=3, *, strides=1, dilation_rate=1, norm="batch",
                  activation="relu", name=None):
    """Conv (He-normal init, Ronneberger et al. 2015 Sec. 3) -> optional norm -> activation."""
    x = layers.Conv2D(filters, kernel_size, strides=strides, dilation_rate=dilation_rate,
                      padding="same", use_bias=norm in (None, "none"),
                      kernel_initializer="he_normal", name=f"{name}_conv" if name else None)(x)
    norm_layer = normalization(norm, name=f"{name}_norm" if name else None)
    if norm_layer is not None:
        x = norm_layer(x)
    if activation is None:
        return x
    return activation_layer(activation, name=f"{name}_act" if name else None)(x)


def aspp(x, *, filters=256, rates=(6, 12, 18), norm="batch", dropout=0.1, name="aspp"):
    """Atrous Spatial Pyramid Pooling (Chen et al., DeepLabv3, 2017, Sec. 3.3).

    Parallel branches on the backbone features: one 1x1 conv, one 3x3 conv per
    atrous rate in `rates` (6, 12, 18 at output stride 16), and image-level pooling
    (global average -> 1x1 conv -> bilinear upsampling back to the feature size);
    each with batch norm and ReLU. Their concatenation goes through a 1x1 conv
    (`filters`), batch norm, ReLU and dropout (0.1, as in the reference code).
    The feature map must have a static height and width.
    """
    h, w = x.shape[1], x.shape[2]
    if h is None or w is None:
        raise ValueError("aspp needs features with a static height and width")
    branches = [conv_norm_act(x, filters, 1, norm=norm, name=f"{name}_1x1")]
    for rate in rates:
        branches.append(conv_norm_act(x, filters, 3, dilation_rate=rate, norm=norm,
                                      name=f"{name}_rate{rate}"))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = conv_norm_act(pooled, filters, 1, norm=norm, name=f"{name}_pool_proj")
    branches.append(layers.UpSampling2D((h, w), interpolation="bilinear",
                                        name=f"{name}_pool_up")(pooled))
    y = layers.Concatenate(name=f"{name}_concat")(branches)
    y = conv_norm_act(y, filters, 1, norm=norm, name=f"{name}_project")
    if dropout:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    return y


@keras.saving.register_keras_serializable(package="kzoo")
class ArgMax(layers.Layer):
    """Index of the largest value along `axis` as int32 (segmentation labels)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, x):
        return keras.ops.cast(keras.ops.argmax(x, axis=self.axis), "int32")

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        shape.pop(self.axis)
        return tuple(shape)

    def compute_output_spec(self, x):
        shape = list(x.shape)
        shape.pop(self.axis)
        return keras.KerasTensor(tuple(shape), dtype="int32")

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}

# --- super-resolution (SRGAN) ---

@keras.saving.register_keras_serializable(package="kzoo")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel convolution's rearrangement: depth to space by a factor `scale`.

    Moves blocks of `scale**2` channels into `scale x scale` spatial blocks,
    (B, H, W, C * r**2) -> (B, H * r, W * r, C). A convolution producing
    `C * r**2` channels followed by this layer is the efficient sub-pixel
    convolution of Shi et al. (2016), the upsampling of SRResNet/SRGAN.
    Channel order is TensorFlow's `depth_to_space` (NHWC):
    `out[b, h*r + i, w*r + j, c] = in[b, h, w, (i*r + j) * C + c]` (PyTorch's
    `nn.PixelShuffle` orders channels as `c * r**2 + i*r + j` instead).
    Written with `keras.ops` reshape/transpose, so it works for any height and
    width and exports to ONNX as plain Reshape/Transpose.

    Args:
        scale: int. Upsampling factor r >= 1.

    Call arguments:
        inputs: tensor of shape (batch, height, width, channels * scale**2).

    Returns:
        Tensor of shape (batch, height * scale, width * scale, channels).

    Example:
    >>> PixelShuffle(2)(keras.ops.zeros((1, 3, 5, 8))).shape
    TensorShape([1, 6, 10, 2])

    References:
        Shi et al., "Real-Time Single Image and Video Super-Resolution Using an
        Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016.
    """

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        if int(scale) < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        self.scale = int(scale)

    def call(self, inputs):
        from keras import ops

        r = self.scale
        channels = inputs.shape[-1]
        if channels is None or channels % (r * r):
            raise ValueError(f"PixelShuffle({r}) needs channels divisible by {r * r}, got {channels}")
        c = channels // (r * r)
        shape = ops.shape(inputs)
        b, h, w = shape[0], shape[1], shape[2]
        x = ops.reshape(inputs, (b, h, w, r, r, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # (b, h, i, w, j, c)
        return ops.reshape(x, (b, h * r, w * r, c))

    def compute_output_shape(self, input_shape):
        b, h, w, ch = input_shape
        r = self.scale
        return (b, None if h is None else h * r, None if w is None else w * r, ch // (r * r))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
