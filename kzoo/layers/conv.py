"""Convolution building blocks: initialisation, normalization, conv-norm-activation."""

from __future__ import annotations

import keras
from keras import layers


def dcgan_init(seed=None):
    """N(0, 0.02) weight initialisation (Radford et al., 2016, Sec. 4)."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02, seed=seed)


@keras.saving.register_keras_serializable(package="kzoo")
class LayerNormalization(layers.LayerNormalization):
    """`keras.layers.LayerNormalization` whose gradient differentiates again exactly on every backend.

    Keras' TensorFlow backend takes the statistics from `tf.nn.moments`, which
    stops the gradient through the mean inside the variance: first derivatives are
    unchanged (the dropped term sums to zero), but a second derivative misses a
    term, so a gradient penalty through a layer-normalised critic (WGAN-GP) was
    differentiated inexactly on TensorFlow (on a 6-unit example, d penalty / d w =
    6.76 on TensorFlow vs 6.37 on JAX and by finite differences). Here the variance
    is `mean((x - mean(x))^2)` on every backend. Same weights, config and outputs
    as the Keras layer (rounding aside); `rms_scaling` is not supported.

    Example:
    >>> x = keras.ops.convert_to_tensor([[1.0, 2.0, 3.0]])
    >>> [round(float(v), 4) for v in keras.ops.convert_to_numpy(LayerNormalization(epsilon=0.0)(x))[0]]
    [-1.2247, 0.0, 1.2247]
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.rms_scaling:
            raise ValueError("kzoo's LayerNormalization does not support rms_scaling=True")

    def call(self, inputs):
        from keras import ops

        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        axes = self.axis
        mean = ops.mean(x, axis=axes, keepdims=True)
        centered = x - mean
        outputs = centered * ops.rsqrt(ops.mean(ops.square(centered), axis=axes, keepdims=True)
                                       + self.epsilon)
        shape = [1] * len(x.shape)
        for a in axes:
            shape[a] = x.shape[a]
        if self.gamma is not None:
            outputs = outputs * ops.reshape(ops.cast(self.gamma, x.dtype), shape)
        if self.beta is not None:
            outputs = outputs + ops.reshape(ops.cast(self.beta, x.dtype), shape)
        return ops.cast(outputs, self.compute_dtype)


def normalization(kind: str | None, name=None):
    """'batch', 'layer' (over H, W, C of each example), 'instance' or None."""
    if kind in (None, "none"):
        return None
    if kind == "batch":
        return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)
    if kind == "layer":
        return LayerNormalization(axis=(-3, -2, -1), epsilon=1e-5, name=name)
    if kind == "instance":
        return layers.GroupNormalization(groups=-1, epsilon=1e-5, center=False, scale=False, name=name)
    raise ValueError(f"unknown normalization {kind!r}; use batch, layer, instance or none")


def conv_block(x, filters, *, kernel_size=4, strides=2, norm="batch", activation="leaky_relu",
               transpose=False, padding="same", upsample="transpose", name=None):
    """Conv (or transposed conv) -> optional norm -> activation, DCGAN-initialised.

    The conv has no bias when a normalization follows (the norm's offset does its job).
    With `transpose`, `upsample` picks how the block upsamples (`upsample_conv`).
    """
    if transpose:
        x = upsample_conv(x, filters, kernel_size=kernel_size, strides=strides, padding=padding,
                          use_bias=norm in (None, "none"), upsample=upsample, name=name)
    else:
        x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
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


UPSAMPLE_MODES = ("transpose", "resize", "bilinear")


def upsample_conv(x, filters, *, kernel_size=4, strides=2, padding="same", use_bias=True,
                  upsample="transpose", resize_kernel_size=3, name=None):
    """Upsample by `strides` with a learned conv: transposed conv, or resize then conv.

    - "transpose": a `kernel_size` transposed convolution of stride `strides` (the
      papers' layer). When the kernel size is not divisible by the stride its
      windows overlap unevenly, which prints a checkerboard of period `strides`
      on the output (Odena et al., 2016).
    - "resize": nearest-neighbour upsampling by `strides`, then a stride-1
      `resize_kernel_size` conv ("same" padding): every output pixel gets the same
      number of contributions, so no checkerboard (Odena et al.'s recommendation).
    - "bilinear": the same with bilinear upsampling.

    A stride-1 transposed conv (e.g. DCGAN's 1x1 -> 4x4 projection) is a dense
    projection, not an upsampling: it stays a transposed conv in every mode.
    The conv is DCGAN-initialised and named `{name}_conv` (the resize layer
    `{name}_resize`). Returns the conv's output (no norm, no activation).

    Args:
        x: the input tensor (batch, h, w, c).
        filters: int. Output channels.
        kernel_size: int. Kernel of the transposed conv.
        strides: int. Upsampling factor.
        padding: str. Padding of the transposed conv.
        use_bias: bool. Whether the conv has a bias.
        upsample: str. "transpose", "resize" or "bilinear".
        resize_kernel_size: int. Kernel of the conv after a resize.
        name: str or None. Prefix of the layer names.

    Example:
    >>> x = keras.Input((4, 4, 8))
    >>> upsample_conv(x, 2, upsample="resize", name="up").shape
    (None, 8, 8, 2)

    References:
        Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts",
        Distill, 2016.
    """
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {upsample!r}")
    conv_name = f"{name}_conv" if name else None
    if upsample == "transpose" or strides == 1:
        return layers.Conv2DTranspose(filters, kernel_size, strides=strides, padding=padding,
                                      use_bias=use_bias, kernel_initializer=dcgan_init(),
                                      name=conv_name)(x)
    interpolation = "nearest" if upsample == "resize" else "bilinear"
    x = layers.UpSampling2D(strides, interpolation=interpolation,
                            name=f"{name}_resize" if name else None)(x)
    return layers.Conv2D(filters, resize_kernel_size, padding="same", use_bias=use_bias,
                         kernel_initializer=dcgan_init(), name=conv_name)(x)
