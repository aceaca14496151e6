"""Resampling layers: sub-pixel upsampling (PixelShuffle), its inverse (PixelUnshuffle) and reflection padding."""

from __future__ import annotations

import keras
from keras import layers


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


@keras.saving.register_keras_serializable(package="kzoo")
class PixelUnshuffle(keras.layers.Layer):
    """The inverse of `PixelShuffle`: space to depth by a factor `scale`.

    (B, H * r, W * r, C) -> (B, H, W, C * r**2), channels in TensorFlow's
    `space_to_depth` order `(i*r + j) * C + c` (PyTorch's `F.pixel_unshuffle` and
    BasicSR's `pixel_unshuffle` give `c * r**2 + i*r + j`: a converter permutes the
    next conv's input channels). Real-ESRGAN's x2 `RRDBNet` feeds its input through
    it (r = 2) so that the x4 trunk upscales by 2 overall.

    Args:
        scale: int. Downsampling factor r >= 1; height and width must be multiples of it.

    Example:
    >>> PixelUnshuffle(2)(keras.ops.zeros((1, 6, 10, 2))).shape
    TensorShape([1, 3, 5, 8])
    """

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        if int(scale) < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        self.scale = int(scale)

    def call(self, inputs):
        from keras import ops

        r = self.scale
        c = inputs.shape[-1]
        shape = ops.shape(inputs)
        b, h, w = shape[0], shape[1] // r, shape[2] // r
        x = ops.reshape(inputs, (b, h, r, w, r, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # (b, h, w, i, j, c)
        return ops.reshape(x, (b, h, w, r * r * c))

    def compute_output_shape(self, input_shape):
        b, h, w, ch = input_shape
        r = self.scale
        return (b, None if h is None else h // r, None if w is None else w // r, ch * r * r)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="kzoo")
class ReflectionPadding2D(layers.Layer):
    """Pad height and width by mirroring the image at its border (no edge repeat).

    Used before the convolutions of CycleGAN's ResNet generator to avoid the
    border artifacts of zero padding (Zhu et al., 2017, Sec. 7.2).

    Args:
        padding: int. Pixels added on each side of height and width.
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x):
        p = self.padding
        return keras.ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        grow = lambda d: None if d is None else d + 2 * self.padding  # noqa: E731
        return (n, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}
