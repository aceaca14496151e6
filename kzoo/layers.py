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
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # keras.ops.argmax guards against -0.0 (flush-to-zero) with a Bitcast that
            # tf2onnx cannot convert; class scores need no such guard.
            return tf.argmax(x, axis=self.axis, output_type=tf.int32)
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

# --- image-to-image (pix2pix, CycleGAN) ---

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


def resnet_block(x, filters, *, norm="instance", name=None):
    """Residual block with reflection padding: x + [pad-conv3-norm-ReLU-pad-conv3-norm](x).

    The block of Johnson et al. (2016) as used by CycleGAN's generator (Zhu et al.,
    2017, Sec. 7.2: "R256"), N(0, 0.02) initialised, no dropout.
    """
    h = x
    for i in (1, 2):
        h = ReflectionPadding2D(1, name=f"{name}_pad{i}")(h)
        h = layers.Conv2D(filters, 3, padding="valid", use_bias=norm in (None, "none"),
                          kernel_initializer=dcgan_init(), name=f"{name}_conv{i}")(h)
        norm_layer = normalization(norm, name=f"{name}_norm{i}")
        if norm_layer is not None:
            h = norm_layer(h)
        if i == 1:
            h = layers.ReLU(name=f"{name}_relu")(h)
    return layers.Add(name=f"{name}_add")([x, h])


def patchgan_discriminator(*, channels=3, condition_channels=0, width=64, n_layers=3,
                           norm="batch", image_size=None, name="discriminator"):
    """PatchGAN discriminator: a fully convolutional map of real/fake logits, one per patch.

    The architecture of Isola et al. (2017, Sec. 6.1.2) as in the authors' code:
    `n_layers` 4x4 stride-2 convs C64-C128-C256 (widths `width * min(2**i, 8)`),
    then a stride-1 C512 and a stride-1 1-channel conv, zero padding 1 each,
    LeakyReLU(0.2), no normalization on the first layer. With `n_layers=3`
    (the paper's) each output logit sees a 70x70 patch of the input
    (`receptive_field` computes it from the layers); a 256x256 input gives a
    30x30 map. CycleGAN uses the same network with instance norm (Zhu et al.,
    2017, Sec. 7.2).

    Args:
        channels: int. Channels of the image being judged.
        condition_channels: int. If > 0, the network takes `[condition, image]`
            and concatenates them on channels (pix2pix's conditional D).
        width: int. Filters of the first conv.
        n_layers: int. Number of stride-2 convs (3: 70x70 patches).
        norm: str. "batch" (pix2pix), "instance" (CycleGAN) or "none".
        image_size: int or None. Static input size (None: any size).
        name: str. Model name.

    Returns:
        A functional `keras.Model` mapping images to (batch, h, w, 1) logits.
    """
    check_patchgan_size(image_size, n_layers)
    shape = (image_size, image_size)
    image = keras.Input((*shape, channels), name="image")
    inputs, h = image, image
    if condition_channels:
        condition = keras.Input((*shape, condition_channels), name="condition")
        inputs = [condition, image]
        h = layers.Concatenate(name="condition_image")([condition, image])
    for i in range(n_layers + 1):
        h = layers.ZeroPadding2D(1, name=f"pad{i}")(h)
        h = conv_block(h, width * min(2 ** i, 8), kernel_size=4, strides=2 if i < n_layers else 1,
                       padding="valid", norm=None if i == 0 else norm, name=f"down{i}")
    h = layers.ZeroPadding2D(1, name="pad_logits")(h)
    logits = layers.Conv2D(1, 4, padding="valid", kernel_initializer=dcgan_init(), name="logits_conv")(h)
    logits = layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model(inputs, logits, name=name)


def check_patchgan_size(image_size, n_layers):
    """Raise ValueError if `image_size` is too small for a PatchGAN of `n_layers` (< 3 * 2**n)."""
    if image_size is not None and image_size < 3 * 2 ** n_layers:
        raise ValueError(f"a PatchGAN with n_layers={n_layers} needs images of at least "
                         f"{3 * 2 ** n_layers} pixels, got {image_size}; lower n_layers")


def receptive_field(model):
    """Receptive field (pixels) of one output unit of a chain of convolutions / poolings.

    Computed from the layers' kernel sizes and strides, last layer first:
    r <- (r - 1) * stride + kernel, starting from r = 1. Only for models whose
    spatial layers form a single chain (padding and pointwise layers do not
    change it).
    """
    r = 1
    for layer in reversed(model.layers):
        cfg = layer.get_config()
        kernel = cfg.get("kernel_size") or cfg.get("pool_size")
        if kernel is None:
            continue
        strides = cfg.get("strides") or kernel
        dilation = cfg.get("dilation_rate", (1, 1))
        k = (kernel[0] - 1) * dilation[0] + 1
        r = (r - 1) * strides[0] + k
    return r


@keras.saving.register_keras_serializable(package="kzoo")
class ImageHistoryPool(layers.Layer):
    """A buffer of previously generated images for the discriminator (Shrivastava et al., 2017).

    Holds up to `pool_size` images in non-trainable variables (saved and restored
    with the model). Called on a batch of fresh fakes, it returns the batch the
    discriminator should see, following CycleGAN's `ImagePool`: while the pool is
    filling, each fake is stored and returned as is; once full, each fake is, with
    probability 1/2, swapped with a random stored image (the stored one is
    returned, the fake takes its slot), else returned as is. Randomness comes
    from the `keras.random.SeedGenerator` passed in, so the pool works inside a
    compiled `train_step`. (Fakes of one batch are handled at once: two fakes
    drawing the same slot both return its old image and one of them stays.)

    Args:
        pool_size: int. Images kept (50 in Zhu et al., 2017); 0 disables the pool.
        image_shape: (height, width, channels) of the images.

    Call arguments:
        images: (batch, height, width, channels) generated images.
        seed_generator: `keras.random.SeedGenerator` for the draws.
    """

    def __init__(self, pool_size=50, image_shape=(256, 256, 3), **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.images = self.add_weight(shape=(max(self.pool_size, 1), *self.image_shape),
                                      initializer="zeros", trainable=False,
                                      aggregation="only_first_replica", name="images")
        self.count = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False,
                                     aggregation="only_first_replica", name="count")
        self.built = True

    def call(self, images, seed_generator=None):
        if self.pool_size == 0:
            return images
        ops = keras.ops
        images = ops.cast(images, self.images.dtype)
        n = ops.shape(images)[0]
        position = ops.cast(self.count, "int32") + ops.arange(n, dtype="int32")
        filling = position < self.pool_size
        swap = ops.logical_and(
            ops.logical_not(filling),
            keras.random.uniform((n,), seed=seed_generator) < 0.5)
        slot = keras.random.randint((n,), 0, self.pool_size, dtype="int32", seed=seed_generator)
        slot = ops.where(filling, position, slot)
        old = ops.take(self.images, slot, axis=0)
        keep = ops.reshape(ops.logical_or(filling, swap), (-1, 1, 1, 1))
        self.images.assign(ops.scatter_update(self.images, ops.expand_dims(slot, -1),
                                              ops.where(keep, images, old)))
        self.count.assign(ops.minimum(self.count + ops.cast(n, "int32"), self.pool_size))
        return ops.where(ops.reshape(swap, (-1, 1, 1, 1)), old, images)

    def reset_state(self):
        """Empty the pool (a hub preset keeps no training state)."""
        self.images.assign(keras.ops.zeros_like(self.images))
        self.count.assign(0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "image_shape": self.image_shape}


# --- diffusion (DDPM) ---

@keras.saving.register_keras_serializable(package="kzoo")
class SinusoidalTimeEmbedding(layers.Layer):
    """Sinusoidal embedding of integer timesteps, as in the Transformer.

    emb(t) = [sin(t w_0) .. sin(t w_{h-1}), cos(t w_0) .. cos(t w_{h-1})] with
    w_i = max_period^(-i / (h - 1)) and h = dim // 2 (zero-padded to `dim` if odd),
    exactly as Ho et al.'s reference DDPM code (`get_timestep_embedding`).

    Args:
        dim: int. Embedding size (>= 2).
        max_period: float. Longest wavelength, 10000 as in Vaswani et al.

    Call arguments:
        timesteps: integer or float tensor of shape (batch,).

    Returns:
        float tensor of shape (batch, dim).

    Example:
    >>> SinusoidalTimeEmbedding(8)(keras.ops.array([0, 10])).shape
    (2, 8)

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, Sec. 3.5.
        Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020, App. B.
    """

    def __init__(self, dim, max_period=10000.0, **kwargs):
        super().__init__(**kwargs)
        if dim < 2:
            raise ValueError(f"time embedding size must be >= 2, got {dim}")
        self.dim = int(dim)
        self.max_period = float(max_period)

    def call(self, timesteps):
        import math

        from keras import ops

        half = self.dim // 2
        scale = math.log(self.max_period) / max(half - 1, 1)
        freqs = ops.exp(ops.arange(half, dtype="float32") * -scale)
        args = ops.cast(ops.reshape(timesteps, (-1, 1)), "float32") * freqs[None, :]
        emb = ops.concatenate([ops.sin(args), ops.cos(args)], axis=-1)
        if self.dim % 2:
            emb = ops.pad(emb, [[0, 0], [0, 1]])
        return ops.cast(emb, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "max_period": self.max_period}


def _group_norm(groups, name):
    # Ho et al. use tf.contrib group_norm: 32 groups, epsilon 1e-6.
    return layers.GroupNormalization(groups=groups, epsilon=1e-6, name=name)


@keras.saving.register_keras_serializable(package="kzoo")
class TimeResidualBlock(layers.Layer):
    """Residual block conditioned on a time embedding (Ho et al.'s `resnet_block`).

    GroupNorm -> swish -> 3x3 conv -> + Dense(swish(temb)) -> GroupNorm -> swish ->
    dropout -> 3x3 conv (zero-initialised), plus the input (through a 1x1 conv when
    the width changes). Follows the Wide ResNet / PixelCNN++ block of the DDPM
    reference code.

    Args:
        filters: int. Output channels.
        dropout: float. Dropout rate before the second conv (0.1 for CIFAR-10).
        groups: int. Group-norm groups (32); must divide the input and output widths.

    Call arguments:
        inputs: `[x, temb]`, x of shape (batch, H, W, C), temb of shape (batch, E).
        training: bool. Dropout is active only in training.

    Returns:
        Tensor of shape (batch, H, W, filters).

    Example:
    >>> block = TimeResidualBlock(8, groups=4)
    >>> block([keras.ops.ones((2, 4, 4, 4)), keras.ops.ones((2, 16))]).shape
    (2, 4, 4, 8)

    References:
        Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020, App. B.
        Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016.
    """

    def __init__(self, filters, dropout=0.0, groups=32, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.dropout = float(dropout)
        self.groups = int(groups)
        self.norm1 = _group_norm(self.groups, "norm1")
        self.conv1 = layers.Conv2D(self.filters, 3, padding="same", name="conv1")
        self.temb_proj = layers.Dense(self.filters, name="temb_proj")
        self.norm2 = _group_norm(self.groups, "norm2")
        self.drop = layers.Dropout(self.dropout, name="dropout")
        self.conv2 = layers.Conv2D(self.filters, 3, padding="same", kernel_initializer="zeros",
                                   name="conv2")
        self.skip = None

    def build(self, input_shape):
        x_shape, temb_shape = input_shape
        out_shape = (*x_shape[:-1], self.filters)
        self.norm1.build(x_shape)
        self.conv1.build(x_shape)
        self.temb_proj.build(temb_shape)
        self.norm2.build(out_shape)
        self.conv2.build(out_shape)
        if x_shape[-1] != self.filters:
            self.skip = layers.Conv2D(self.filters, 1, name="skip")
            self.skip.build(x_shape)

    def call(self, inputs, training=None):
        from keras import ops

        x, temb = inputs
        h = self.conv1(ops.silu(self.norm1(x)))
        h = h + self.temb_proj(ops.silu(temb))[:, None, None, :]
        h = self.conv2(self.drop(ops.silu(self.norm2(h)), training=training))
        return (self.skip(x) if self.skip is not None else x) + h

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "dropout": self.dropout,
                "groups": self.groups}


@keras.saving.register_keras_serializable(package="kzoo")
class SpatialSelfAttention(layers.Layer):
    """Single-head self-attention over the positions of a 2D feature map, residual.

    GroupNorm -> 1x1 projections q, k, v -> softmax(q kᵀ / sqrt(C)) v -> 1x1 output
    projection (zero-initialised) -> + input, as Ho et al.'s `attn_block`
    (after Wang et al.'s non-local block). The softmax runs in float32.

    Args:
        groups: int. Group-norm groups (32).

    Call arguments:
        x: tensor of shape (batch, H, W, C).

    Returns:
        Tensor of the same shape.

    Example:
    >>> SpatialSelfAttention(groups=4)(keras.ops.ones((2, 4, 4, 8))).shape
    (2, 4, 4, 8)

    References:
        Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020, App. B.
        Wang et al., "Non-local Neural Networks", CVPR 2018.
    """

    def __init__(self, groups=32, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)
        self.norm = _group_norm(self.groups, "norm")

    def build(self, input_shape):
        channels = input_shape[-1]
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
        logits = ops.matmul(q, ops.transpose(k, (0, 2, 1))) * (float(channels) ** -0.5)
        weights = ops.cast(ops.softmax(ops.cast(logits, "float32"), axis=-1), v.dtype)
        h = self.proj_out(ops.matmul(weights, v))
        return x + ops.reshape(h, shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}
