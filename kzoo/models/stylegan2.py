"""StyleGAN2 (Karras et al., CVPR 2020), config-e/f, architecture-exact to rosinality/stylegan2-pytorch.

The generator is two functional networks, named after rosinality's `Generator`
(model.py, commit bef283a1c24087da704d16c30abc8e36e63efa0e) so that a `g_ema`
state dict maps onto them by a table (layers and weights: `kzoo.layers.stylegan`):

| rosinality key                        | kzoo network / layer / weight                      |
| ------------------------------------- | -------------------------------------------------- |
| `style.{i}.weight`, `.bias` (i=1..n)  | `mapping` / `style_{i}` / `kernel` (.T), `bias`     |
| `input.input`                         | `synthesis` / `input` / `constant` (NCHW -> NHWC)  |
| `conv1.*`                             | `synthesis` / `conv1` / ...                        |
| `to_rgb1.*`                           | `synthesis` / `to_rgb1` / ...                      |
| `convs.{j}.*`                         | `synthesis` / `convs_{j}` / ...                    |
| `to_rgbs.{j}.*`                       | `synthesis` / `to_rgbs_{j}` / ...                  |
| `noises.noise_{l}` (buffers)          | `synthesis_noise` / `noise_const_{l}` (NHWC)       |

Inside a styled conv: `conv.weight` -> `conv/kernel` (`weight[0].permute(2, 3, 1, 0)`),
`conv.modulation.weight` -> `conv/modulation/kernel` (transposed),
`conv.modulation.bias` -> `conv/modulation/bias`, `noise.weight` -> `noise/weight`,
`activate.bias` -> `activate/bias`; in a ToRGB `bias` (1, C, 1, 1) -> `bias` (C,).
The discriminator follows rosinality's `Discriminator` the same way (`convs_0` the
1x1 from-RGB `ConvLayer`, `convs_{i}` the `ResBlock`s with `conv1`, `conv2`, `skip`,
`final_conv`, `final_linear_0`, `final_linear_1`); its features are flattened in
NCHW order, as rosinality's `view(batch, -1)`, so `final_linear_0`'s kernel is
rosinality's weight transposed with no reordering.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from kzoo.layers.stylegan import (
    ConstantInput,
    EqualConv2D,
    EqualDense,
    MinibatchStdDev,
    PixelNorm,
    ResBlock,
    StyledConv,
    ToRGB,
)


def log2_size(image_size):
    n = math.log2(image_size) if image_size > 0 else 0.5
    if image_size < 8 or n != int(n):
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    return int(n)


def channel_table(image_size, *, channel_multiplier=2, channel_base=16384, channel_max=512):
    """Channels at each resolution 4 .. image_size: min(channel_max, channel_base * multiplier / res).

    With the defaults this is rosinality's table (model.py `Generator.channels`: 512
    up to 32x32, then 256, 128, 64, 32, 16 times `channel_multiplier` at 64 .. 1024).

    Example:
    >>> channel_table(256, channel_multiplier=2)
    {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128}
    """
    log2 = log2_size(image_size)
    return {2 ** i: int(min(channel_max, channel_base * channel_multiplier // 2 ** i)) for i in range(2, log2 + 1)}


def num_ws(image_size):
    """Number of w vectors the synthesis network reads: 2 log2(size) - 2 (rosinality `n_latent`)."""
    return 2 * log2_size(image_size) - 2


def noise_shapes(image_size):
    """(res, res, 1) of each noise input, one per styled conv (rosinality `noises.noise_{i}`)."""
    return [(2 ** ((i + 5) // 2),) * 2 + (1,) for i in range(2 * (log2_size(image_size) - 2) + 1)]


def mapping_network(*, latent_dim=512, n_mlp=8, lr_mul=0.01, name="mapping"):
    """z -> w: pixel norm, then `n_mlp` equalised dense layers with lr multiplier and fused lrelu."""
    z = keras.Input((latent_dim,), name="z")
    h = PixelNorm(name="pixel_norm")(z)
    for i in range(1, n_mlp + 1):
        h = EqualDense(latent_dim, lr_mul=lr_mul, activation="lrelu", name=f"style_{i}")(h)
    return keras.Model(z, h, name=name)


def synthesis_network(*, image_size=256, channels=3, w_dim=512, channel_multiplier=2, channel_base=16384,
                      channel_max=512, adain=False, name="synthesis"):
    """ws (batch, num_ws, w_dim) and one noise map per styled conv -> image (linear, about [-1, 1]).

    Inputs: `ws`, then `noise_0` .. `noise_{L-1}` of shapes `noise_shapes(image_size)`.
    """
    ch = channel_table(image_size, channel_multiplier=channel_multiplier, channel_base=channel_base,
                       channel_max=channel_max)
    log2 = log2_size(image_size)
    ws = keras.Input((num_ws(image_size), w_dim), name="ws")
    noises = [keras.Input(s, name=f"noise_{i}") for i, s in enumerate(noise_shapes(image_size))]
    x = ConstantInput(ch[4], name="input")(ws)
    x = StyledConv(ch[4], 3, w_index=0, adain=adain, name="conv1")(x, ws, noises[0])
    skip = ToRGB(channels, w_index=1, name="to_rgb1")(x, ws)
    for j, i in enumerate(range(3, log2 + 1)):
        k = 2 * j + 1  # first w of this resolution (rosinality's `i` in forward)
        x = StyledConv(ch[2 ** i], 3, w_index=k, upsample=True, adain=adain, name=f"convs_{2 * j}")(
            x, ws, noises[k])
        x = StyledConv(ch[2 ** i], 3, w_index=k + 1, adain=adain, name=f"convs_{2 * j + 1}")(
            x, ws, noises[k + 1])
        skip = ToRGB(channels, w_index=k + 2, name=f"to_rgbs_{j}")(x, ws, skip)
    image = keras.layers.Activation("linear", dtype="float32", name="image")(skip)
    return keras.Model([ws, *noises], image, name=name)


def discriminator_network(*, image_size=256, channels=3, channel_multiplier=2, channel_base=16384,
                          channel_max=512, mbstd_group_size=4, mbstd_num_features=1, name="discriminator"):
    """Residual discriminator (Karras et al., 2020, Fig. 7c; rosinality `Discriminator`): image -> logit."""
    ch = channel_table(image_size, channel_multiplier=channel_multiplier, channel_base=channel_base,
                       channel_max=channel_max)
    log2 = log2_size(image_size)
    image = keras.Input((image_size, image_size, channels), name="image")
    h = EqualConv2D(ch[image_size], 1, activate=True, name="convs_0")(image)
    for n, i in enumerate(range(log2, 2, -1), start=1):
        h = ResBlock(ch[2 ** (i - 1)], name=f"convs_{n}")(h)
    h = MinibatchStdDev(mbstd_group_size, mbstd_num_features, name="mbstd")(h)
    h = EqualConv2D(ch[4], 3, activate=True, name="final_conv")(h)
    h = keras.layers.Permute((3, 1, 2), name="to_nchw")(h)  # flatten in rosinality's NCHW order
    h = keras.layers.Flatten(name="flatten")(h)
    h = EqualDense(ch[4], activation="lrelu", name="final_linear_0")(h)
    logit = EqualDense(1, name="final_linear_1")(h)
    logit = keras.layers.Activation("linear", dtype="float32", name="logit")(logit)
    return keras.Model(image, logit, name=name)


def rosinality_generator_parameters(image_size, *, latent_dim=512, n_mlp=8, channel_multiplier=2,
                                    channels=3):
    """The parameter count of rosinality's `Generator` (its `nn.Parameter`s; noise buffers excluded),
    computed from its module definitions and channel table (model.py)."""
    ch = channel_table(image_size, channel_multiplier=channel_multiplier)

    def modconv(cin, cout, k):  # weight (1, out, in, k, k) + modulation EqualLinear(style_dim, in)
        return cout * cin * k * k + latent_dim * cin + cin

    def styled(cin, cout):  # ModulatedConv2d + NoiseInjection (1) + FusedLeakyReLU bias
        return modconv(cin, cout, 3) + 1 + cout

    def to_rgb(cin):
        return modconv(cin, channels, 1) + channels

    total = n_mlp * (latent_dim * latent_dim + latent_dim) + ch[4] * 16
    total += styled(ch[4], ch[4]) + to_rgb(ch[4])
    cin = ch[4]
    for i in range(3, log2_size(image_size) + 1):
        cout = ch[2 ** i]
        total += styled(cin, cout) + styled(cout, cout) + to_rgb(cout)
        cin = cout
    return total


def copy_weights(source, target):
    """Assign every weight of network `source` to the same weight of `target` (same architecture)."""
    for s, t in zip(source.weights, target.weights):
        t.assign(s)


def as_numpy_noise(noise, batch, image_size, rng=None):
    """Per-layer noise maps for `image_size`: "random" (N(0, 1)), "zero", or a list of arrays."""
    shapes = noise_shapes(image_size)
    if isinstance(noise, str):
        if noise == "zero":
            return [np.zeros((batch, *s), "float32") for s in shapes]
        if noise == "random":
            rng = np.random.default_rng(rng)
            return [rng.standard_normal((batch, *s)).astype("float32") for s in shapes]
        raise ValueError(f'noise must be "random", "zero" or a list of {len(shapes)} arrays, got {noise!r}')
    noise = list(noise)
    if len(noise) != len(shapes):
        raise ValueError(f"noise must hold {len(shapes)} maps (one per styled conv), got {len(noise)}")
    out = []
    for i, (n, s) in enumerate(zip(noise, shapes)):
        n = np.asarray(ops.convert_to_numpy(n), dtype="float32")
        if n.ndim == 2:
            n = n[None, :, :, None]
        elif n.ndim == 3:
            n = n[None] if n.shape[-1] == 1 else n[..., None]
        if tuple(n.shape[1:]) != s:
            raise ValueError(f"noise_{i} must have shape (batch, {s[0]}, {s[1]}, 1), got {n.shape}")
        out.append(np.broadcast_to(n, (batch, *s)).astype("float32"))
    return out
