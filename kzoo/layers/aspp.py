"""Atrous Spatial Pyramid Pooling (DeepLabv3 / DeepLabV3+)."""

from __future__ import annotations

from keras import layers

from kzoo.layers.conv import conv_norm_act


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
