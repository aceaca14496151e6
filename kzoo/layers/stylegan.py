"""StyleGAN2 building blocks (Karras et al., CVPR 2020), architecture-exact to rosinality's port.

Every layer here expresses one module of rosinality/stylegan2-pytorch `model.py`
(commit bef283a1c24087da704d16c30abc8e36e63efa0e), in NHWC, so that a `g_ema`
checkpoint of that repository maps onto `kzoo.models.stylegan2` by a key table:

| rosinality module                    | kzoo layer            | weights (kzoo <- torch)                          |
| ------------------------------------ | --------------------- | ------------------------------------------------ |
| `PixelNorm`                          | `PixelNorm`           | none                                             |
| `EqualLinear` (`lr_mul`, fused lrelu)| `EqualDense`          | `kernel` <- `weight`.T; `bias` <- `bias`         |
| `EqualConv2d`                        | `EqualConv2D`         | `kernel` <- `weight`.permute(2, 3, 1, 0); `bias` |
| `FusedLeakyReLU`                     | `FusedLeakyReLU`      | `bias` <- `bias`                                 |
| `ModulatedConv2d`                    | `ModulatedConv2D`     | `kernel` <- `weight`[0].permute(2, 3, 1, 0);     |
|                                      |                       | `modulation/kernel`, `modulation/bias` as above  |
| `NoiseInjection`                     | `NoiseInjection`      | `weight` <- `weight` (shape (1,))                |
| `ConstantInput`                      | `ConstantInput`       | `constant` <- `input`.permute(0, 2, 3, 1)        |
| `StyledConv`                         | `StyledConv`          | `conv`, `noise`, `activate` as above             |
| `ToRGB`                              | `ToRGB`               | `conv` as above; `bias` <- `bias`.reshape(-1)    |
| `Upsample` / `Downsample` / `Blur`   | `upfirdn` (function)  | none (the FIR kernel is a constant)              |

Equalised learning rate (Karras et al., 2018, Sec. 4.1): weights are stored as drawn
from N(0, 1) (divided by `lr_mul`) and multiplied at run time by the He constant
1/sqrt(fan_in) (times `lr_mul`), as rosinality's `EqualLinear`/`EqualConv2d`/
`ModulatedConv2d` do (`self.scale`). The fused leaky ReLU is bias, then
leaky ReLU with slope 0.2, times sqrt(2) (rosinality `op/fused_act.py`,
`fused_leaky_relu(input, bias, negative_slope=0.2, scale=2 ** 0.5)`).

FIR resampling follows rosinality's `upfirdn2d`: the 1-D kernel [1, 3, 3, 1] becomes
its outer product normalised to sum 1 (`make_kernel`), times factor**2 when
up-sampling; up-sampling inserts zeros, the result is padded by (pad0, pad1) on both
axes and convolved with the kernel (symmetric, so flipping does not matter), then
down-sampled by taking every factor-th sample.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

LRELU_SLOPE = 0.2  # rosinality op/fused_act.py: negative_slope=0.2
LRELU_GAIN = math.sqrt(2.0)  # scale=2 ** 0.5
BLUR_KERNEL = (1, 3, 3, 1)  # rosinality model.py: blur_kernel=[1, 3, 3, 1]
EPS = 1e-8  # PixelNorm, ModulatedConv2d demodulation, minibatch stddev


def fir_kernel(k=BLUR_KERNEL, gain=1.0):
    """The 2-D FIR kernel of rosinality's `make_kernel`: outer product, sum 1, times `gain`."""
    k = np.asarray(k, dtype="float32")
    if k.ndim == 1:
        k = np.outer(k, k)
    return (k / k.sum() * gain).astype("float32")


def upfirdn(x, kernel, *, up=1, down=1, pad=(0, 0)):
    """rosinality's `upfirdn2d` in NHWC: zero-insert by `up`, pad, FIR filter, keep every `down`-th.

    Args:
        x: tensor (batch, height, width, channels).
        kernel: 2-D numpy array (the filter, applied to every channel alone).
        up, down: int. Up-/down-sampling factors.
        pad: (pad0, pad1). Zeros added before/after on each spatial axis (after up-sampling).
    """
    channels = x.shape[-1]
    if up > 1:
        b, h, w = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
        x = ops.reshape(x, (b, h, 1, w, 1, channels))
        x = ops.pad(x, ((0, 0), (0, 0), (0, up - 1), (0, 0), (0, up - 1), (0, 0)))
        x = ops.reshape(x, (b, h * up, w * up, channels))
    p0, p1 = pad
    if p0 or p1:
        x = ops.pad(x, ((0, 0), (p0, p1), (p0, p1), (0, 0)))
    k = np.ascontiguousarray(kernel[::-1, ::-1])  # upfirdn2d convolves (flips); ours correlates
    k = np.tile(k[:, :, None, None], (1, 1, channels, 1))
    return ops.depthwise_conv(x, ops.convert_to_tensor(k, dtype=x.dtype), strides=down, padding="valid")


def _normal(lr_mul=1.0):
    return keras.initializers.RandomNormal(0.0, 1.0 / lr_mul)


def fused_leaky_relu(x, bias=None):
    """Bias, leaky ReLU (slope 0.2), times sqrt(2)."""
    if bias is not None:
        x = x + bias
    return ops.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN


@keras.saving.register_keras_serializable(package="kzoo")
class PixelNorm(keras.layers.Layer):
    """x / sqrt(mean(x**2 over the last axis) + 1e-8) (Karras et al., 2018, Sec. 4.2)."""

    def call(self, x):
        return x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + EPS)


@keras.saving.register_keras_serializable(package="kzoo")
class FusedLeakyReLU(keras.layers.Layer):
    """Per-channel bias, then leaky ReLU (0.2) times sqrt(2) (rosinality `FusedLeakyReLU`)."""

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(input_shape[-1],), initializer="zeros")

    def call(self, x):
        return fused_leaky_relu(x, self.bias)


@keras.saving.register_keras_serializable(package="kzoo")
class EqualDense(keras.layers.Layer):
    """Fully connected layer with equalised learning rate (rosinality `EqualLinear`).

    Args:
        units: int. Output features.
        lr_mul: float. Learning-rate multiplier: weights are drawn N(0, 1/lr_mul) and
            scaled by lr_mul/sqrt(fan_in) at run time, the bias by lr_mul
            (0.01 in the mapping network, Karras et al., 2019, Sec. C).
        bias_init: float. Initial (stored) bias; 1 for a style modulation.
        activation: None or "lrelu" (the fused leaky ReLU).
    """

    def __init__(self, units, *, lr_mul=1.0, bias_init=0.0, activation=None, **kwargs):
        super().__init__(**kwargs)
        if activation not in (None, "lrelu"):
            raise ValueError(f"activation must be None or 'lrelu', got {activation!r}")
        self.units = units
        self.lr_mul = lr_mul
        self.bias_init = bias_init
        self.activation = activation

    def build(self, input_shape):
        fan_in = input_shape[-1]
        self.scale = self.lr_mul / math.sqrt(fan_in)
        self.kernel = self.add_weight(name="kernel", shape=(fan_in, self.units), initializer=_normal(self.lr_mul))
        self.bias = self.add_weight(name="bias", shape=(self.units,),
                                    initializer=keras.initializers.Constant(self.bias_init))

    def call(self, x):
        out = ops.matmul(x, self.kernel * self.scale)
        bias = self.bias * self.lr_mul
        return fused_leaky_relu(out, bias) if self.activation else out + bias

    def get_config(self):
        return {**super().get_config(), "units": self.units, "lr_mul": self.lr_mul,
                "bias_init": self.bias_init, "activation": self.activation}


@keras.saving.register_keras_serializable(package="kzoo")
class EqualConv2D(keras.layers.Layer):
    """Convolution with equalised learning rate (rosinality `EqualConv2d`, and its `ConvLayer`).

    With `downsample`, the input is first blurred by the [1, 3, 3, 1] FIR filter padded
    by ((p + 1) // 2, p // 2), p = 2 + kernel_size - 1, and the conv has stride 2 and
    no padding; otherwise stride 1 with "same" zero padding kernel_size // 2.
    With `activate`, the output goes through `FusedLeakyReLU` (whose bias replaces
    the conv's, as in `ConvLayer`).

    Args:
        filters: int. Output channels.
        kernel_size: int.
        downsample: bool.
        use_bias: bool.
        activate: bool.
    """

    def __init__(self, filters, kernel_size, *, downsample=False, use_bias=True, activate=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.downsample = downsample
        self.use_bias = use_bias
        self.activate = activate

    def build(self, input_shape):
        fan_in = input_shape[-1] * self.kernel_size ** 2
        self.scale = 1.0 / math.sqrt(fan_in)
        k = self.kernel_size
        self.kernel = self.add_weight(name="kernel", shape=(k, k, input_shape[-1], self.filters),
                                      initializer=_normal())
        self.bias = (self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
                     if self.use_bias else None)

    def call(self, x):
        kernel = self.kernel * self.scale
        if self.downsample:
            p = len(BLUR_KERNEL) - 2 + self.kernel_size - 1
            x = upfirdn(x, fir_kernel(), pad=((p + 1) // 2, p // 2))
            x = ops.conv(x, kernel, strides=2, padding="valid")
        else:
            x = _same_conv(x, kernel, self.kernel_size)
        if self.activate:
            return fused_leaky_relu(x, self.bias)
        return x + self.bias if self.bias is not None else x

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "downsample": self.downsample, "use_bias": self.use_bias, "activate": self.activate}


def _same_conv(x, kernel, kernel_size):
    """Stride-1 conv with symmetric zero padding kernel_size // 2 (PyTorch's `padding=k // 2`)."""
    p = kernel_size // 2
    if p:
        x = ops.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    return ops.conv(x, kernel, padding="valid")


@keras.saving.register_keras_serializable(package="kzoo")
class ModulatedConv2D(keras.layers.Layer):
    """StyleGAN2's weight (de)modulated convolution (Karras et al., 2020, Sec. 2.2, Eq. 1-3).

    The style s = `modulation`(w) (an `EqualDense` with bias init 1) scales the input
    channels; with `demodulate`, each output channel is divided by
    sqrt(sum((scale * weight * s)**2) + 1e-8) over input channels and taps. Computed
    as rosinality's non-fused path (`fused=False`: modulate the activations, convolve
    with the shared weight, demodulate the output), which equals the grouped one.
    `upsample`: a stride-2 transposed convolution, then the [1, 3, 3, 1] blur
    (times 4) padded by ((p + 1) // 2 + 1, p // 2 + 1), p = 2 - (kernel_size - 1).
    With `adain` (StyleGAN 1, Karras et al., 2019, for comparison) there is no
    modulation/demodulation: the plain conv's output goes through the caller's
    noise, bias and activation, then instance normalisation and `x * (y_s + 1) + y_b`
    (NVlabs/stylegan `style_mod`, `instance_norm`): see `StyledConv`.

    Args:
        filters: int. Output channels.
        kernel_size: int.
        demodulate: bool.
        upsample: bool.
        modulate: bool. False for AdaIN (no `modulation` sub-layer).

    Call arguments:
        x: (batch, height, width, in_channels).
        w: (batch, w_dim).
    """

    def __init__(self, filters, kernel_size, *, demodulate=True, upsample=False, modulate=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        self.modulate = modulate
        self.modulation = None

    def build(self, x_shape, w_shape=None):
        in_channels = x_shape[-1]
        k = self.kernel_size
        self.scale = 1.0 / math.sqrt(in_channels * k * k)
        self.kernel = self.add_weight(name="kernel", shape=(k, k, in_channels, self.filters),
                                      initializer=_normal())
        if self.modulate:
            self.modulation = EqualDense(in_channels, bias_init=1.0, name="modulation")
            self.modulation.build(w_shape)

    def call(self, x, w=None):
        kernel = self.kernel * self.scale
        if self.modulate:
            style = self.modulation(w)  # (B, in)
            x = x * style[:, None, None, :]
        if self.upsample:
            # conv_transpose wants (k, k, out, in); stride 2, no padding: 2H + 1, then blur to 2H.
            x = ops.conv_transpose(x, ops.transpose(kernel, (0, 1, 3, 2)), strides=2, padding="valid")
            p = len(BLUR_KERNEL) - 2 - (self.kernel_size - 1)
            x = upfirdn(x, fir_kernel(gain=4.0), pad=((p + 1) // 2 + 1, p // 2 + 1))
        else:
            x = _same_conv(x, kernel, self.kernel_size)
        if self.modulate and self.demodulate:
            # sum over (k, k, in) of (kernel * s)^2 = sum_in s_in^2 * sum_kk kernel^2
            sq = ops.sum(ops.square(kernel), axis=(0, 1))  # (in, out)
            demod = ops.rsqrt(ops.matmul(ops.square(style), sq) + EPS)  # (B, out)
            x = x * demod[:, None, None, :]
        return x

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "demodulate": self.demodulate, "upsample": self.upsample, "modulate": self.modulate}


@keras.saving.register_keras_serializable(package="kzoo")
class NoiseInjection(keras.layers.Layer):
    """x + weight * noise, one learned scalar `weight` initialised to 0 (rosinality `NoiseInjection`).

    Call arguments:
        x: (batch, height, width, channels).
        noise: (batch, height, width, 1), N(0, 1) per pixel, broadcast over channels.
    """

    def build(self, x_shape, noise_shape=None):
        self.weight = self.add_weight(name="weight", shape=(1,), initializer="zeros")

    def call(self, x, noise):
        return x + self.weight * noise


@keras.saving.register_keras_serializable(package="kzoo")
class ConstantInput(keras.layers.Layer):
    """The learned 4x4 input of the synthesis network, repeated over the batch (N(0, 1) init).

    Call arguments:
        ws: any tensor with the batch as first axis (the ws).
    """

    def __init__(self, channels, *, size=4, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.size = size

    def build(self, input_shape):
        self.constant = self.add_weight(name="constant", shape=(1, self.size, self.size, self.channels),
                                        initializer=_normal())

    def call(self, ws):
        batch = ops.shape(ws)[0]
        return ops.tile(ops.cast(self.constant, ws.dtype), (batch, 1, 1, 1))

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "size": self.size}


@keras.saving.register_keras_serializable(package="kzoo")
class StyledConv(keras.layers.Layer):
    """Modulated conv, noise, fused bias + leaky ReLU (rosinality `StyledConv`), fed w number `w_index`.

    With `adain` (StyleGAN 1's block, for comparison): plain equalised conv, noise,
    bias + leaky ReLU, instance normalisation (eps 1e-8), then AdaIN
    `x * (y_s + 1) + y_b` with (y_s, y_b) = `style`(w), an `EqualDense` to
    2 * filters (NVlabs/stylegan training/networks_stylegan.py `layer_epilogue`,
    `style_mod`; its noise has one weight per channel, here one scalar as in StyleGAN2).

    Args:
        filters: int.
        kernel_size: int.
        w_index: int. Which of the ws (axis 1) this layer reads.
        upsample: bool.
        adain: bool.

    Call arguments:
        x: (batch, height, width, in_channels).
        ws: (batch, num_ws, w_dim).
        noise: (batch, height', width', 1) at the output resolution.
    """

    def __init__(self, filters, kernel_size, *, w_index, upsample=False, adain=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.w_index = w_index
        self.upsample = upsample
        self.adain = adain
        self.conv = ModulatedConv2D(filters, kernel_size, upsample=upsample, modulate=not adain, name="conv")
        self.noise = NoiseInjection(name="noise")
        self.activate = FusedLeakyReLU(name="activate")
        self.style = EqualDense(2 * filters, name="style") if adain else None

    def build(self, x_shape, ws_shape=None, noise_shape=None):
        w_shape = (ws_shape[0], ws_shape[-1])
        self.conv.build(x_shape, w_shape)
        out_shape = (*x_shape[:-1], self.filters)
        self.noise.build(out_shape)
        self.activate.build(out_shape)
        if self.style is not None:
            self.style.build(w_shape)

    def call(self, x, ws, noise):
        w = ws[:, self.w_index]
        x = self.conv(x, w)
        x = self.activate(self.noise(x, noise))
        if self.adain:
            x = x - ops.mean(x, axis=(1, 2), keepdims=True)
            x = x * ops.rsqrt(ops.mean(ops.square(x), axis=(1, 2), keepdims=True) + EPS)
            style = self.style(w)
            x = x * (style[:, None, None, :self.filters] + 1.0) + style[:, None, None, self.filters:]
        return x

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "w_index": self.w_index, "upsample": self.upsample, "adain": self.adain}


@keras.saving.register_keras_serializable(package="kzoo")
class ToRGB(keras.layers.Layer):
    """1x1 modulated conv without demodulation, plus bias, plus the up-sampled skip (rosinality `ToRGB`).

    The skip is up-sampled by `upfirdn(up=2)` with the [1, 3, 3, 1] kernel times 4,
    padded by ((p + 1) // 2 + 1, p // 2), p = 2 (rosinality `Upsample`).

    Args:
        channels: int. Image channels (rosinality: 3).
        w_index: int.

    Call arguments:
        x: features; ws: (batch, num_ws, w_dim); skip: the previous image or None.
    """

    def __init__(self, channels, *, w_index, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.w_index = w_index
        self.conv = ModulatedConv2D(channels, 1, demodulate=False, name="conv")

    def build(self, x_shape, ws_shape=None, skip_shape=None):
        self.conv.build(x_shape, (ws_shape[0], ws_shape[-1]))
        self.bias = self.add_weight(name="bias", shape=(self.channels,), initializer="zeros")

    def call(self, x, ws, skip=None):
        out = self.conv(x, ws[:, self.w_index]) + self.bias
        if skip is not None:
            out = out + upsample2x(skip)
        return out

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "w_index": self.w_index}


def upsample2x(x):
    """rosinality `Upsample([1, 3, 3, 1])`: upfirdn2d, up 2, kernel * 4, pad (2, 1)."""
    p = len(BLUR_KERNEL) - 2
    return upfirdn(x, fir_kernel(gain=4.0), up=2, pad=((p + 1) // 2 + 1, p // 2))


@keras.saving.register_keras_serializable(package="kzoo")
class MinibatchStdDev(keras.layers.Layer):
    """Minibatch standard deviation feature (Karras et al., 2018, Sec. 3; rosinality `Discriminator`).

    The batch is split into groups of min(batch, `group_size`) taken with stride
    batch // group (rosinality's `view(group, -1, ...)`: sample i is in group
    i % (batch // group)); per group, the std over the group of every feature
    (biased variance + 1e-8, then sqrt) is averaged over the channels of each of
    `num_features` channel groups and H, W, and appended as `num_features` constant channels.
    The batch must be divisible by the group size.

    Args:
        group_size: int. 4 in the paper (NVlabs/stylegan2 `mbstd_group_size=4`).
        num_features: int. 1 (`mbstd_num_features=1`).
    """

    def __init__(self, group_size=4, num_features=1, **kwargs):
        super().__init__(**kwargs)
        self.group_size = group_size
        self.num_features = num_features

    def call(self, x):
        b = ops.shape(x)[0]
        h, w, c = x.shape[1], x.shape[2], x.shape[3]
        g = min(x.shape[0], self.group_size) if x.shape[0] is not None else ops.minimum(b, self.group_size)
        f = self.num_features
        y = ops.reshape(x, (g, -1, h, w, f, c // f))
        y = ops.sqrt(ops.var(y, axis=0) + EPS)  # (b/g, h, w, f, c/f)
        y = ops.mean(y, axis=(1, 2, 4))  # (b/g, f)
        y = ops.tile(y, (g, 1))  # sample i gets group i % (b/g)
        y = ops.broadcast_to(ops.cast(y, x.dtype)[:, None, None, :], (b, h, w, f))
        return ops.concatenate([x, y], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.num_features)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size, "num_features": self.num_features}


@keras.saving.register_keras_serializable(package="kzoo")
class ResBlock(keras.layers.Layer):
    """The residual discriminator block (Karras et al., 2020, Fig. 7c; rosinality `ResBlock`).

    conv 3x3 + lrelu, then conv 3x3 with blur down-sampling + lrelu, plus a 1x1
    blur-down-sampled skip without bias or activation, summed and divided by sqrt(2).
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv1 = None

    def build(self, input_shape):
        in_channels = input_shape[-1]
        self.conv1 = EqualConv2D(in_channels, 3, activate=True, name="conv1")
        self.conv2 = EqualConv2D(self.filters, 3, downsample=True, activate=True, name="conv2")
        self.skip = EqualConv2D(self.filters, 1, downsample=True, use_bias=False, name="skip")
        self.conv1.build(input_shape)
        self.conv2.build(input_shape)
        self.skip.build(input_shape)

    def call(self, x):
        out = self.conv2(self.conv1(x))
        return (out + self.skip(x)) * (1.0 / math.sqrt(2.0))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] // 2, input_shape[2] // 2, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}
