"""Diffusion U-Net blocks: sinusoidal time embedding, time-conditioned residual block, attention."""

from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="kzoo")
class SinusoidalTimeEmbedding(layers.Layer):
    """Sinusoidal embedding of integer timesteps, as in the Transformer.

    emb(t) = [sin(t w_0) .. sin(t w_{h-1}), cos(t w_0) .. cos(t w_{h-1})] with
    w_i = max_period^(-i / (h - s)), h = dim // 2 and the frequency shift s = 1
    (zero-padded to `dim` if odd), exactly as Ho et al.'s reference DDPM code
    (`get_timestep_embedding`). diffusers' `Timesteps` adds two options, read from a
    `UNet2DModel` config: `freq_shift` s (0 or 1) and `flip_sin_to_cos` (cosines first).

    Args:
        dim: int. Embedding size (>= 2).
        max_period: float. Longest wavelength, 10000 as in Vaswani et al.
        flip_sin_to_cos: bool. Put the cosines first (diffusers' option; False in Ho et al.).
        freq_shift: float. s in the exponent's denominator h - s (1 in Ho et al.).

    Call arguments:
        timesteps: integer or float tensor of shape (batch,).

    Returns:
        float tensor of shape (batch, dim).

    Example:
    >>> tuple(SinusoidalTimeEmbedding(8)(keras.ops.array([0, 10])).shape)
    (2, 8)

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, Sec. 3.5.
        Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020, App. B.
    """

    def __init__(self, dim, max_period=10000.0, flip_sin_to_cos=False, freq_shift=1, **kwargs):
        super().__init__(**kwargs)
        if dim < 2:
            raise ValueError(f"time embedding size must be >= 2, got {dim}")
        self.dim = int(dim)
        self.max_period = float(max_period)
        self.flip_sin_to_cos = bool(flip_sin_to_cos)
        self.freq_shift = float(freq_shift)

    def call(self, timesteps):
        import math

        from keras import ops

        half = self.dim // 2
        denominator = half - self.freq_shift
        scale = math.log(self.max_period) / (denominator if denominator > 0 else 1.0)
        freqs = ops.exp(ops.arange(half, dtype="float32") * -scale)
        args = ops.cast(ops.reshape(timesteps, (-1, 1)), "float32") * freqs[None, :]
        waves = [ops.sin(args), ops.cos(args)]
        emb = ops.concatenate(waves[::-1] if self.flip_sin_to_cos else waves, axis=-1)
        if self.dim % 2:
            emb = ops.pad(emb, [[0, 0], [0, 1]])
        return ops.cast(emb, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "max_period": self.max_period,
                "flip_sin_to_cos": self.flip_sin_to_cos, "freq_shift": self.freq_shift}


def _group_norm(groups, name, epsilon=1e-6):
    # Ho et al. use tf.contrib group_norm: 32 groups, epsilon 1e-6 (diffusers' norm_eps).
    return layers.GroupNormalization(groups=groups, epsilon=epsilon, name=name)


@keras.saving.register_keras_serializable(package="kzoo")
class TimeResidualBlock(layers.Layer):
    """Residual block conditioned on a time embedding (Ho et al.'s `resnet_block`).

    GroupNorm -> swish -> 3x3 conv -> + Dense(swish(temb)) -> GroupNorm -> swish ->
    dropout -> 3x3 conv (zero-initialised), plus the input (through a 1x1 conv when
    the width changes). Follows the Wide ResNet / PixelCNN++ block of the DDPM
    reference code.

    With `time_conditioned=False` the block has no time projection and is called on
    x alone: diffusers' `ResnetBlock2D` with `temb_channels=None`, the block of the
    autoencoders' `Encoder`/`Decoder` (Rombach et al.'s KL autoencoder).

    Args:
        filters: int. Output channels.
        dropout: float. Dropout rate before the second conv (0.1 for CIFAR-10).
        groups: int. Group-norm groups (32); must divide the input and output widths.
        epsilon: float. Group-norm epsilon (1e-6; diffusers' `norm_eps`).
        time_conditioned: bool. Add the projected time embedding (True) or not.

    Call arguments:
        inputs: `[x, temb]`, x of shape (batch, H, W, C), temb of shape (batch, E);
            x alone when not `time_conditioned`.
        training: bool. Dropout is active only in training.

    Returns:
        Tensor of shape (batch, H, W, filters).

    Example:
    >>> block = TimeResidualBlock(8, groups=4)
    >>> tuple(block([keras.ops.ones((2, 4, 4, 4)), keras.ops.ones((2, 16))]).shape)
    (2, 4, 4, 8)

    References:
        Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020, App. B.
        Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016.
    """

    def __init__(self, filters, dropout=0.0, groups=32, epsilon=1e-6, time_conditioned=True,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.time_conditioned = bool(time_conditioned)
        self.dropout = float(dropout)
        self.groups = int(groups)
        self.epsilon = float(epsilon)
        self.norm1 = _group_norm(self.groups, "norm1", self.epsilon)
        self.conv1 = layers.Conv2D(self.filters, 3, padding="same", name="conv1")
        self.temb_proj = layers.Dense(self.filters, name="temb_proj") if time_conditioned else None
        self.norm2 = _group_norm(self.groups, "norm2", self.epsilon)
        self.drop = layers.Dropout(self.dropout, name="dropout")
        self.conv2 = layers.Conv2D(self.filters, 3, padding="same", kernel_initializer="zeros",
                                   name="conv2")
        self.skip = None

    def build(self, input_shape):
        x_shape, temb_shape = input_shape if self.time_conditioned else (input_shape, None)
        out_shape = (*x_shape[:-1], self.filters)
        self.norm1.build(x_shape)
        self.conv1.build(x_shape)
        if self.temb_proj is not None:
            self.temb_proj.build(temb_shape)
        self.norm2.build(out_shape)
        self.conv2.build(out_shape)
        if x_shape[-1] != self.filters:
            self.skip = layers.Conv2D(self.filters, 1, name="skip")
            self.skip.build(x_shape)

    def call(self, inputs, training=None):
        from keras import ops

        x, temb = inputs if self.time_conditioned else (inputs, None)
        h = self.conv1(ops.silu(self.norm1(x)))
        if self.temb_proj is not None:
            h = h + self.temb_proj(ops.silu(temb))[:, None, None, :]
        h = self.conv2(self.drop(ops.silu(self.norm2(h)), training=training))
        return (self.skip(x) if self.skip is not None else x) + h

    def compute_output_shape(self, input_shape):
        x_shape = input_shape[0] if self.time_conditioned else input_shape
        return (*x_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "dropout": self.dropout,
                "groups": self.groups, "epsilon": self.epsilon,
                "time_conditioned": self.time_conditioned}


@keras.saving.register_keras_serializable(package="kzoo")
class SpatialSelfAttention(layers.Layer):
    """Self-attention over the positions of a 2D feature map, residual.

    GroupNorm -> 1x1 projections q, k, v -> softmax(q kᵀ / sqrt(d)) v -> 1x1 output
    projection (zero-initialised) -> + input, as Ho et al.'s `attn_block`
    (after Wang et al.'s non-local block): one head, d = C. With `heads` > 1 the
    channels split into heads of d = C / heads attended separately, as diffusers'
    `Attention` with `attention_head_dim` = d. The softmax runs in float32.

    Args:
        groups: int. Group-norm groups (32).
        epsilon: float. Group-norm epsilon (1e-6; diffusers' `norm_eps`).
        heads: int. Attention heads (1 in Ho et al.); must divide the channels.

    Call arguments:
        x: tensor of shape (batch, H, W, C).

    Returns:
        Tensor of the same shape.

    Example:
    >>> tuple(SpatialSelfAttention(groups=4)(keras.ops.ones((2, 4, 4, 8))).shape)
    (2, 4, 4, 8)

    References:
        Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020, App. B.
        Wang et al., "Non-local Neural Networks", CVPR 2018.
    """

    def __init__(self, groups=32, epsilon=1e-6, heads=1, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)
        self.epsilon = float(epsilon)
        self.heads = int(heads)
        self.norm = _group_norm(self.groups, "norm", self.epsilon)

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.heads < 1 or channels % self.heads:
            raise ValueError(f"{self.heads} attention heads do not divide {channels} channels")
        self.q = layers.Dense(channels, name="q")
        self.k = layers.Dense(channels, name="k")
        self.v = layers.Dense(channels, name="v")
        self.proj_out = layers.Dense(channels, kernel_initializer="zeros", name="proj_out")
        self.norm.build(input_shape)
        for layer in (self.q, self.k, self.v, self.proj_out):
            layer.build(input_shape)

    def call(self, x):
        from keras import ops

        shape = ops.shape(x)
        channels = x.shape[-1]
        h = ops.reshape(self.norm(x), (shape[0], -1, channels))
        q, k, v = self.q(h), self.k(h), self.v(h)
        depth = channels // self.heads
        if self.heads > 1:  # (batch, positions, C) -> (batch, heads, positions, d)
            q, k, v = (ops.transpose(ops.reshape(a, (shape[0], -1, self.heads, depth)), (0, 2, 1, 3))
                       for a in (q, k, v))
        logits = ops.matmul(q, ops.swapaxes(k, -1, -2)) * (float(depth) ** -0.5)
        weights = ops.cast(ops.softmax(ops.cast(logits, "float32"), axis=-1), v.dtype)
        h = ops.matmul(weights, v)
        if self.heads > 1:
            h = ops.reshape(ops.transpose(h, (0, 2, 1, 3)), (shape[0], -1, channels))
        return x + ops.reshape(self.proj_out(h), shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "epsilon": self.epsilon,
                "heads": self.heads}
