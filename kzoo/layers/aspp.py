"""Atrous Spatial Pyramid Pooling (DeepLabv3 / DeepLabV3+)."""

from __future__ import annotations

import keras
from keras import layers, ops

from kzoo.layers.conv import conv_norm_act


@keras.saving.register_keras_serializable(package="kzoo")
class SpatialBroadcast(layers.Layer):
    """Spread a (batch, 1, 1, C) map over the height and width of a reference map.

    Bilinear upsampling of a 1x1 map is this constant broadcast; unlike
    `UpSampling2D(size)` it follows the reference's size at run time, so a
    network using it stays fully convolutional (any input size).

    Call arguments:
        inputs: `[pooled, reference]`: (batch, 1, 1, C) and (batch, H, W, C').

    Returns:
        (batch, H, W, C).

    Example:
    >>> y = SpatialBroadcast()([keras.ops.ones((2, 1, 1, 3)), keras.ops.zeros((2, 5, 4, 8))])
    >>> tuple(y.shape)
    (2, 5, 4, 3)
    """

    def call(self, inputs):
        pooled, reference = inputs
        return pooled * ops.ones_like(reference[..., :1], dtype=pooled.dtype)

    def compute_output_shape(self, input_shapes):
        pooled, reference = input_shapes
        return (reference[0], reference[1], reference[2], pooled[-1])


@keras.saving.register_keras_serializable(package="kzoo")
class ResizeLike(layers.Layer):
    """Bilinear resize of a map to the height and width of a reference map, at run time.

    Half-pixel centres (`tf.image.resize`), which is PyTorch's
    `F.interpolate(mode="bilinear", align_corners=False)` (torchvision's segmentation
    models upsample their logits to the input size so). Unlike `Resizing(h, w)` it
    follows the reference's size, so the network takes any input size.

    Call arguments:
        inputs: `[x, reference]`: (batch, h, w, C) and (batch, H, W, C').

    Returns:
        (batch, H, W, C), float32 where `x` is.

    Example:
    >>> y = ResizeLike()([keras.ops.ones((2, 3, 3, 4)), keras.ops.zeros((2, 12, 10, 3))])
    >>> tuple(y.shape)
    (2, 12, 10, 4)
    """

    def call(self, inputs):
        x, reference = inputs
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf  # the run-time size, also when traced with unknown sizes

            out = tf.image.resize(x, tf.shape(reference)[1:3], method="bilinear")
            return tf.cast(out, x.dtype)
        size = ops.shape(reference)[1:3]
        return ops.image.resize(x, size, interpolation="bilinear", antialias=False)

    def compute_output_shape(self, input_shapes):
        x, reference = input_shapes
        return (x[0], reference[1], reference[2], x[-1])


def aspp(x, *, filters=256, rates=(6, 12, 18), norm="batch", dropout=0.1, name="aspp"):
    """Atrous Spatial Pyramid Pooling (Chen et al., DeepLabv3, 2017, Sec. 3.3).

    Parallel branches on the backbone features: one 1x1 conv, one 3x3 conv per
    atrous rate in `rates` (6, 12, 18 at output stride 16), and image-level pooling
    (global average -> 1x1 conv -> bilinear upsampling back to the feature size,
    which for a 1x1 map is a broadcast: `SpatialBroadcast`, so any feature size
    works); each with batch norm and ReLU. Their concatenation goes through a 1x1
    conv (`filters`), batch norm, ReLU and dropout (0.1, as in the reference code).
    """
    branches = [conv_norm_act(x, filters, 1, norm=norm, name=f"{name}_1x1")]
    for rate in rates:
        branches.append(conv_norm_act(x, filters, 3, dilation_rate=rate, norm=norm,
                                      name=f"{name}_rate{rate}"))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = conv_norm_act(pooled, filters, 1, norm=norm, name=f"{name}_pool_proj")
    branches.append(SpatialBroadcast(name=f"{name}_pool_up")([pooled, x]))
    y = layers.Concatenate(name=f"{name}_concat")(branches)
    y = conv_norm_act(y, filters, 1, norm=norm, name=f"{name}_project")
    if dropout:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    return y
