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
NHWC order, so `final_linear_0`'s kernel is rosinality's weight (out, C * 4 * 4)
reshaped to (out, C, 4, 4), permuted to (4, 4, C, out) and reshaped to (16 C, out).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from kzoo import losses
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
from kzoo.models.adversarial import AdversarialModel
from kzoo.options import takes
from kzoo.options.stylegan2 import STYLEGAN2_OPTIONS
from kzoo.training import random_images, unpack, value_and_input_grad
from kzoo.zoo import register_model


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
    return keras.Model(z, keras.layers.Identity(dtype="float32", name="w")(h), name=name)


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
    h = keras.layers.Flatten(name="flatten")(h)  # NHWC order (no transpose: its gradient breaks XLA in R1)
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
        t.assign(np.array(ops.convert_to_numpy(s)))  # a copy: JAX must not see one buffer twice


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


@keras.saving.register_keras_serializable(package="kzoo")
class ConstantNoise(keras.layers.Layer):
    """Fixed per-layer noise maps, N(0, 1) (rosinality's `noises.noise_{i}` buffers), tiled over the batch.

    `randomize_noise=False` in rosinality's `Generator.forward` uses these; kzoo's
    `generator` endpoint (z -> image) does, so that it is deterministic and exports.

    Call arguments:
        z: any tensor with the batch as first axis. Returns the list of maps.
    """

    def __init__(self, image_size, **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.maps = [self.add_weight(name=f"noise_const_{i}", shape=(1, *s), trainable=False,
                                     initializer=keras.initializers.RandomNormal(0.0, 1.0))
                     for i, s in enumerate(noise_shapes(image_size))]
        self.built = True

    def call(self, z):
        batch = ops.shape(z)[0]
        return [ops.tile(ops.cast(m, z.dtype), (batch, 1, 1, 1)) for m in self.maps]

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size}


@keras.saving.register_keras_serializable(package="kzoo")
class BroadcastW(keras.layers.Layer):
    """w (batch, w_dim) -> ws (batch, num_ws, w_dim): the same w for every synthesis layer."""

    def __init__(self, num_ws, **kwargs):
        super().__init__(**kwargs)
        self.num_ws = num_ws

    def call(self, w):
        return ops.repeat(w[:, None, :], self.num_ws, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_ws, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "num_ws": self.num_ws}


@keras.saving.register_keras_serializable(package="kzoo")
class Truncation(keras.layers.Layer):
    """The truncation trick in W (Karras et al., 2019, Sec. 3.2): w_avg + psi (ws - w_avg).

    Holds `w_avg`, the tracked mean of w (non-trainable; the model updates it while
    training with decay `w_avg_beta`, NVlabs/stylegan2 `dlatent_avg_beta`).

    Call arguments:
        ws: (batch, num_ws, w_dim).
        psi: (batch, 1), in [0, 1]; 1 leaves ws unchanged.
    """

    def __init__(self, w_dim, **kwargs):
        super().__init__(**kwargs)
        self.w_dim = w_dim
        self.w_avg = self.add_weight(name="w_avg", shape=(w_dim,), initializer="zeros", trainable=False)
        self.built = True

    def call(self, ws, psi):
        avg = ops.cast(self.w_avg, ws.dtype)
        return avg + ops.reshape(ops.cast(psi, ws.dtype), (-1, 1, 1)) * (ws - avg)

    def get_config(self):
        return {**super().get_config(), "w_dim": self.w_dim}


def check_psi(psi):
    """`psi` as a float; ValueError unless it is in [0, 1]."""
    value = float(psi)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"truncation psi must be in [0, 1], got {psi}")
    return value


@keras.saving.register_keras_serializable(package="kzoo")
class StyleGAN2(AdversarialModel):
    """StyleGAN2 (config-e/f) with lazy R1, path-length and style-mixing regularisation, and a generator EMA.

    Networks are rosinality/stylegan2-pytorch's `Generator` and `Discriminator`
    (model.py, commit bef283a1), exactly (see the module docstring's key table):
    mapping z -> w (pixel norm, `n_mlp` equalised dense layers, lr multiplier 0.01),
    synthesis from a learned 4x4 constant with modulated/demodulated 3x3 convs, one
    noise input each, and skip ToRGB outputs; a residual discriminator with FIR
    down-sampling and a minibatch standard deviation feature (group 4, 1 feature).

    Training (rosinality train.py, NVlabs/stylegan2 training/loss.py): non-saturating
    logistic loss; R1 on reals, gamma / 2 * E|grad D(x)|^2, added every `r1_interval`
    discriminator steps times the interval (lazy regularisation, paper Sec. 3.1 --
    rosinality applies it as a separate optimizer step, kzoo adds it to that step's
    loss); with `path_weight` > 0, the path-length penalty (Sec. 3.2) on a batch
    `batch // path_batch_shrink` every `path_interval` generator steps, times the
    interval; style mixing with probability `mixing_prob` at a crossover uniform in
    [1, num_ws - 1]; each update draws fresh z, as rosinality's loop
    (`share_generator_pass = False`). After each step the inference generator is
    the exponential moving average of the trained one with decay
    0.5 ** (batch / (ema_kimg * 1000)) (NVlabs training_loop.py `Gs_beta`; rosinality
    `accum = 0.5 ** (32 / (10 * 1000))`, its batch 32), and `w_avg` tracks the mean
    w with decay `w_avg_beta`. Adam (lr 0.002, betas (0, 0.99)) with rosinality's
    lazy-regularisation correction of lr and betas is the recipe's.

    Inference API (the EMA generator, which the converter of rosinality's `g_ema`
    fills; `kzoo.latent` builds on it):

    - `model.mapping(z)`: the mapping network (keras.Model), z (batch, latent_dim) -> w.
    - `model.synthesis([ws, *noise])`: the synthesis network (keras.Model).
    - `model.synthesize(ws, noise="random" | "zero" | "const" | list, seed=None)`: images in
      about [-1, 1] from ws (batch, num_ws, w_dim) or w (batch, w_dim); numpy arrays
      and tensors mix freely (tensors stay differentiable); "const" is the fixed noise.
    - `model.w_avg`: the tracked mean w (a variable, (w_dim,)).
    - `model.num_ws`: how many w the synthesis reads (2 log2(image_size) - 2).
    - `model.truncate(ws, psi)`: w_avg + psi (ws - w_avg), psi in [0, 1].
    - `model.mix(ws_a, ws_b, crossover)`: ws_a's first `crossover` layers, ws_b's after.
    - `model(z)` / `model.generator`: z -> image with psi 1 and the fixed noise.

    Endpoints (`inference_parts`): `generator` (z -> image), `mapping` (z -> w) and
    `synthesis` (ws, truncation_psi, noise_0 .. -> image).

    Args:
        image_size, channels, latent_dim, n_mlp, lr_mlp, channel_multiplier, channel_base,
        channel_max: the networks (see `kzoo.options.stylegan2`).
        r1_gamma, r1_interval, path_weight, path_interval, path_batch_shrink, path_decay,
        mixing_prob, ema_kimg, w_avg_beta: training.
        mbstd_group_size, mbstd_num_features: the discriminator's minibatch std.
        adain: bool. StyleGAN 1's AdaIN styled convs instead of (de)modulation.
        seed: int or None. Seed of the model's noise generator.

    Example:
    >>> model = StyleGAN2(image_size=8, channels=1, latent_dim=8, n_mlp=2, channel_base=64,
    ...                   channel_max=8, channel_multiplier=1)
    >>> model(keras.random.normal((2, 8))).shape, model.num_ws
    (TensorShape([2, 8, 8, 1]), 4)

    References:
        Karras, Laine, Aittala, Hellsten, Lehtinen & Aila, "Analyzing and Improving the
        Image Quality of StyleGAN", CVPR 2020.
        Karras, Laine & Aila, "A Style-Based Generator Architecture for Generative
        Adversarial Networks", CVPR 2019.
    """

    loss_names = ("d_loss", "g_loss", "r1", "path_length")
    share_generator_pass = False  # rosinality's loop draws fresh z for the generator update

    @takes(STYLEGAN2_OPTIONS)
    def __init__(self, *, image_size, channels, latent_dim, n_mlp, lr_mlp, channel_multiplier, channel_base,
                 channel_max, r1_gamma, r1_interval, path_weight, path_interval, path_batch_shrink, path_decay,
                 mixing_prob, ema_kimg, w_avg_beta, mbstd_group_size, mbstd_num_features, adain, seed,
                 **kwargs):
        for name, value in (("r1_interval", r1_interval), ("path_interval", path_interval),
                            ("path_batch_shrink", path_batch_shrink), ("n_mlp", n_mlp)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name, value in (("mixing_prob", mixing_prob), ("w_avg_beta", w_avg_beta)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        # === Layers ===
        nets = {"image_size": image_size, "channels": channels, "channel_multiplier": channel_multiplier,
                "channel_base": channel_base, "channel_max": channel_max}
        g_nets = dict(nets, w_dim=latent_dim, adain=adain)
        g_mapping = mapping_network(latent_dim=latent_dim, n_mlp=n_mlp, lr_mul=lr_mlp, name="g_mapping")
        g_synthesis = synthesis_network(**g_nets, name="g_synthesis")
        mapping = mapping_network(latent_dim=latent_dim, n_mlp=n_mlp, lr_mul=lr_mlp)
        synthesis = synthesis_network(**g_nets)
        discriminator = discriminator_network(**nets, mbstd_group_size=mbstd_group_size,
                                              mbstd_num_features=mbstd_num_features)
        noise = ConstantNoise(image_size, name="synthesis_noise")
        truncation = Truncation(latent_dim, name="truncation")
        z = keras.Input((latent_dim,), name="z")
        ws = BroadcastW(num_ws(image_size), name="broadcast_w")(mapping(z))
        image = keras.layers.Identity(dtype="float32", name="image")(synthesis([ws, *noise(z)]))
        generator = keras.Model(z, image, name="generator")
        # === Model ===
        super().__init__(generator=generator, discriminator=discriminator, seed=seed, **kwargs)
        self.g_mapping, self.g_synthesis = g_mapping, g_synthesis
        self.mapping, self.synthesis = mapping, synthesis
        self.synthesis_noise, self.truncation = noise, truncation
        for net in (mapping, synthesis):
            net.trainable = False
        copy_weights(mapping, g_mapping)  # rosinality: accumulate(g_ema, generator, 0)
        copy_weights(synthesis, g_synthesis)
        self.path_mean = self.add_weight(name="path_mean", shape=(), initializer="zeros", trainable=False)
        # === Config ===
        self.image_size = image_size
        self.channels = channels
        self.latent_dim = latent_dim
        self.n_mlp = n_mlp
        self.lr_mlp = lr_mlp
        self.channel_multiplier = channel_multiplier
        self.channel_base = channel_base
        self.channel_max = channel_max
        self.r1_gamma = r1_gamma
        self.r1_interval = r1_interval
        self.path_weight = path_weight
        self.path_interval = path_interval
        self.path_batch_shrink = path_batch_shrink
        self.path_decay = path_decay
        self.mixing_prob = mixing_prob
        self.ema_kimg = ema_kimg
        self.w_avg_beta = w_avg_beta
        self.mbstd_group_size = mbstd_group_size
        self.mbstd_num_features = mbstd_num_features
        self.adain = adain

    # --- inference API ---------------------------------------------------------------------
    @property
    def num_ws(self):
        return num_ws(self.image_size)

    @property
    def w_avg(self):
        return self.truncation.w_avg

    def truncate(self, ws, psi):
        """w_avg + psi (ws - w_avg); psi in [0, 1] (ValueError otherwise)."""
        psi = check_psi(psi)
        ws = ops.convert_to_tensor(ws, "float32")
        avg = ops.convert_to_tensor(self.w_avg)
        return avg + psi * (ws - avg)

    def mix(self, ws_a, ws_b, crossover):
        """Style mixing: the first `crossover` ws from `ws_a`, the rest from `ws_b` (0 <= crossover <= num_ws)."""
        if isinstance(crossover, bool) or int(crossover) != crossover or not 0 <= crossover <= self.num_ws:
            raise ValueError(f"crossover layer must be an integer in [0, {self.num_ws}] (the synthesis "
                             f"reads {self.num_ws} ws), got {crossover}")
        ws_a, ws_b = (self._as_ws(w) for w in (ws_a, ws_b))
        keep = ops.reshape(ops.arange(self.num_ws) < int(crossover), (1, -1, 1))
        return ops.where(keep, ws_a, ws_b)

    def _as_ws(self, ws):
        ws = ops.convert_to_tensor(ws, "float32")
        if len(ws.shape) == 2:
            ws = ops.repeat(ws[:, None, :], self.num_ws, axis=1)
        if len(ws.shape) != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.latent_dim:
            raise ValueError(f"ws must have shape (batch, {self.num_ws}, {self.latent_dim}) or "
                             f"(batch, {self.latent_dim}), got {tuple(ws.shape)}")
        return ws

    def synthesize(self, ws, noise="random", seed=None, training=False):
        """Images from ws (batch, num_ws, w_dim) or w (batch, w_dim) with the EMA synthesis network.

        Args:
            ws: numpy array or tensor.
            noise: "random" (N(0, 1), seeded by `seed`), "zero", "const" (the fixed maps
                of the `generator` endpoint) or a list of `len(noise_shapes)` maps, each
                (batch or 1, res, res, 1), (res, res, 1) or (res, res), numpy or tensor.
            seed: int or None. Seed of the random noise.

        Returns:
            A tensor (batch, image_size, image_size, channels), about in [-1, 1].
        """
        ws = self._as_ws(ws)
        batch = ops.shape(ws)[0]
        shapes = noise_shapes(self.image_size)
        if isinstance(noise, str):
            if noise == "const":
                maps = self.synthesis_noise(ws)
            elif noise in ("random", "zero"):
                if noise == "random":
                    gen = keras.random.SeedGenerator(int(np.random.default_rng(seed).integers(2 ** 31)))
                    maps = [keras.random.normal((batch, *s), seed=gen) for s in shapes]
                else:
                    maps = [ops.zeros((batch, *s)) for s in shapes]
            else:
                raise ValueError(f'noise must be "random", "zero", "const" or a list of {len(shapes)} maps, '
                                 f"got {noise!r}")
        else:
            noise = list(noise)
            if len(noise) != len(shapes):
                raise ValueError(f"noise must hold {len(shapes)} maps (one per styled conv), got {len(noise)}")
            maps = []
            for i, (n, s) in enumerate(zip(noise, shapes)):
                n = ops.convert_to_tensor(n, "float32")
                n = ops.reshape(n, (-1, *s)) if len(n.shape) < 4 else n
                if tuple(n.shape[1:]) != s:
                    raise ValueError(f"noise_{i} must have shape (batch, {s[0]}, {s[1]}, 1), got {tuple(n.shape)}")
                maps.append(ops.broadcast_to(n, (batch, *s)))
        return self.synthesis([ws, *maps], training=training)

    # --- training ------------------------------------------------------------------------------
    @property
    def generator_networks(self):
        return [self.g_mapping, self.g_synthesis]

    def _train_ws(self, batch):
        """Mapped ws with style mixing (probability `mixing_prob`, crossover in [1, num_ws - 1])."""
        z = self.normal((2, batch, self.latent_dim))
        w1, w2 = self.g_mapping(z[0], training=True), self.g_mapping(z[1], training=True)
        n = self.num_ws
        mixed = self.uniform(()) < self.mixing_prob
        crossover = ops.where(mixed, self.randint((), 1, n), n)
        keep = ops.reshape(ops.arange(n) < crossover, (1, n, 1))
        ws = ops.where(keep, w1[:, None, :], w2[:, None, :])
        return ws, w1

    def _noise(self, batch):
        return [self.normal((batch, *s)) for s in noise_shapes(self.image_size)]

    def generate(self, data, training):
        real, _ = unpack(data)
        batch = ops.shape(real)[0]
        ws, w1 = self._train_ws(batch)
        if training and self.w_avg_beta < 1:
            avg = ops.mean(ops.cast(ops.stop_gradient(w1), "float32"), axis=0)
            self.w_avg.assign(avg + (self.w_avg - avg) * self.w_avg_beta)  # lerp(batch mean, w_avg, beta)
        return self.g_synthesis([ws, *self._noise(batch)], training=training)

    def _r1(self, real):
        def d_sum(x):
            return ops.sum(ops.cast(self.discriminator(x, training=True), "float32")), None

        _, grad = value_and_input_grad(d_sum, real)
        grad = ops.cast(grad, "float32")
        return ops.mean(ops.sum(ops.square(ops.reshape(grad, (ops.shape(grad)[0], -1))), axis=1))

    def discriminator_loss(self, data, fakes, training):
        real, _ = unpack(data)
        loss = losses.nonsaturating_d_loss(self.discriminate(real, training=training),
                                           self.discriminate(fakes, training=training))
        logs = {"d_loss": loss}
        if training and self.r1_gamma:
            due = ops.equal(ops.mod(self.d_optimizer.iterations, self.r1_interval), 0)
            r1 = ops.cond(due, lambda: self._r1(real), lambda: ops.zeros((), "float32"))
            loss = loss + (0.5 * self.r1_gamma * self.r1_interval) * r1
            logs["r1"] = r1
        return loss, logs

    def discriminate(self, images, labels=None, training=True):
        return self.discriminator(images, training=training)

    def _path_penalty(self, z, pl_noise, synthesis_noise, crossover):
        """rosinality g_path_regularize: |J_w^T y| per image, its running mean, the squared deviation."""
        w1, w2 = self.g_mapping(z[0], training=True), self.g_mapping(z[1], training=True)
        keep = ops.reshape(ops.arange(self.num_ws) < crossover, (1, self.num_ws, 1))
        ws = ops.where(keep, w1[:, None, :], w2[:, None, :])

        def projected(ws):
            image = ops.cast(self.g_synthesis([ws, *synthesis_noise], training=True), "float32")
            return ops.sum(image * pl_noise), None

        _, grad = value_and_input_grad(projected, ws)
        lengths = ops.sqrt(ops.mean(ops.sum(ops.square(ops.cast(grad, "float32")), axis=2), axis=1))
        mean = self.path_mean + self.path_decay * (ops.mean(lengths) - self.path_mean)
        return ops.mean(ops.square(lengths - mean)), mean, ops.mean(lengths)

    def generator_loss(self, data, fakes, training):
        loss = losses.nonsaturating_g_loss(self.discriminate(fakes, training=training))
        logs = {"g_loss": loss}
        if training and self.path_weight:
            real, _ = unpack(data)
            b = real.shape[0]
            batch = (max(1, b // self.path_batch_shrink) if b is not None
                     else ops.maximum(1, ops.shape(real)[0] // self.path_batch_shrink))
            z = self.normal((2, batch, self.latent_dim))
            n = self.num_ws
            crossover = ops.where(self.uniform(()) < self.mixing_prob, self.randint((), 1, n), n)
            size = self.image_size
            pl_noise = self.normal((batch, size, size, self.channels)) / float(size)  # / sqrt(H * W)
            synthesis_noise = self._noise(batch)
            due = ops.equal(ops.mod(self.g_optimizer.iterations, self.path_interval), 0)
            zero = ops.zeros((), "float32")
            penalty, mean, length = ops.cond(
                due, lambda: self._path_penalty(z, pl_noise, synthesis_noise, crossover),
                lambda: (zero, ops.convert_to_tensor(self.path_mean), zero))
            self.path_mean.assign(ops.stop_gradient(mean))
            loss = loss + (self.path_weight * self.path_interval) * penalty
            logs["path_length"] = length
        return loss, logs

    def train_step(self, data):
        logs = super().train_step(data)
        if self.ema_kimg:
            real, _ = unpack(data)
            images = ops.cast(ops.shape(real)[0], "float32")
            decay = ops.power(0.5, images / (self.ema_kimg * 1000.0))
            for ema, new in zip([*self.mapping.weights, *self.synthesis.weights],
                                [*self.g_mapping.weights, *self.g_synthesis.weights]):
                ema.assign(new + (ema - new) * ops.cast(decay, ema.dtype))
        else:
            for ema, new in zip([*self.mapping.weights, *self.synthesis.weights],
                                [*self.g_mapping.weights, *self.g_synthesis.weights]):
                ema.assign(new)
        return logs

    def sync_training_generator(self):
        """Copy the EMA (inference) generator into the trained one, e.g. after loading converted weights."""
        copy_weights(self.mapping, self.g_mapping)
        copy_weights(self.synthesis, self.g_synthesis)

    def sample_batch(self, batch_size=2, rng=None):
        """A random training batch of images in [-1, 1]."""
        return random_images(np.random.default_rng(rng), batch_size, self.image_size, self.image_size,
                             self.channels)

    def get_config(self):
        config = super().get_config()
        config.pop("d_steps")
        config.update({name: getattr(self, name) for name in STYLEGAN2_OPTIONS if name != "seed"})
        return config

    # --- deployment ----------------------------------------------------------------------------
    def inference_parts(self):
        """{"generator": z -> image, "mapping": z -> w, "synthesis": (ws, truncation_psi, noise_i) -> image}."""
        ws = keras.Input((self.num_ws, self.latent_dim), name="ws")
        psi = keras.Input((1,), name="truncation_psi")
        noises = [keras.Input(s, name=f"noise_{i}") for i, s in enumerate(noise_shapes(self.image_size))]
        image = self.synthesis([self.truncation(ws, psi), *noises])
        image = keras.layers.Identity(dtype="float32", name="image")(image)
        return {"generator": self.generator, "mapping": self.mapping,
                "synthesis": keras.Model([ws, psi, *noises], image, name="synthesis_truncated")}

    def card(self):
        """The model card: `generator` (z -> image), `mapping` (z -> w), `synthesis` (ws, psi, noise -> image)."""
        from kzoo.card import Endpoint, ModelCard, Tensor, docstring_references, latent
        from kzoo.card import image as image_tensor

        out = (image_tensor("image", self.channels, self.image_size, clip=True,
                     description="linear output, about in [-1, 1]: clip"),)
        ws = Tensor("ws", "tensor", (self.num_ws, self.latent_dim),
                    description="one w per synthesis layer (the mapping's w repeated, or mixed)")
        psi = Tensor("truncation_psi", "tensor", (1,), range=(0.0, 1.0),
                     description="truncation psi in [0, 1]: w_avg + psi (w - w_avg); 1 = none")
        noise = tuple(Tensor(f"noise_{i}", "tensor", s, description="N(0, 1) noise map (or zeros)")
                      for i, s in enumerate(noise_shapes(self.image_size)))
        endpoints = (
            Endpoint("generator", inputs=(latent("z", self.latent_dim),), outputs=out),
            Endpoint("mapping", inputs=(latent("z", self.latent_dim),),
                     outputs=(Tensor("w", "tensor", (self.latent_dim,), description="intermediate latent w"),)),
            Endpoint("synthesis", inputs=(ws, psi, *noise), outputs=out),
        )
        return ModelCard(task="unconditional-image-generation",
                         summary="draws new images from random latent vectors through a style-based generator "
                                 "(mapping z -> w, synthesis ws -> image, truncation and noise inputs)",
                         endpoints=endpoints, references=docstring_references(type(self)))


TINY = {"image_size": 8, "channels": 1, "latent_dim": 8, "n_mlp": 2, "channel_base": 64, "channel_max": 8,
        "channel_multiplier": 1}


@register_model(StyleGAN2, tiny=TINY)
def stylegan2(**overrides):
    """StyleGAN2 config-f at 256x256 (rosinality train.py defaults)."""
    return StyleGAN2(**overrides)


@register_model(StyleGAN2, tiny=TINY)
def stylegan2_digits(**overrides):
    """StyleGAN2 sized for 32x32 grayscale digits (the quick recipe)."""
    return StyleGAN2(**{"image_size": 32, "channels": 1, "latent_dim": 64, "n_mlp": 4, "channel_base": 1024,
                        "channel_max": 32, "channel_multiplier": 1, "path_weight": 0.0, "ema_kimg": 1.0,
                        **overrides})
