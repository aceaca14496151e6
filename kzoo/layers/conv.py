"""Convolution building blocks: initialisation, normalization, conv-norm-activation."""

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
    """The activation `kind` as a layer: "leaky_relu" (slope 0.2, DCGAN) or a Keras activation name."""
    if kind == "leaky_relu":
        return layers.LeakyReLU(negative_slope=0.2, name=name)
    return layers.Activation(kind, name=name)


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
