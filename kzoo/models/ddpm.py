"""DDPM (Ho, Jain & Abbeel, 2020): the ε-prediction U-Net and its training model.

The noise schedule and the samplers live in `kzoo.diffusion` (model-free); this
module holds the network, the `train_step` and the exponential moving average.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from kzoo import diffusion, losses
from kzoo.layers import SinusoidalTimeEmbedding, SpatialSelfAttention, TimeResidualBlock
from kzoo.options import takes
from kzoo.options.ddpm import DDPM_OPTIONS
from kzoo.training import TrainingModel, random_images, unpack
from kzoo.zoo import register_model

SAMPLE_BATCH = 64  # eps-network batch when sampling many images (see benchmarks/ddpm.py)

TINY = {"image_size": 8, "channels": 1, "width": 8, "channel_mults": (1, 2),
        "num_res_blocks": 1, "attention_resolutions": (4,), "norm_groups": 4,
        "num_timesteps": 50}


def ddpm_unet(*, image_size=32, channels=3, width=128, channel_mults=(1, 2, 2, 2),
              num_res_blocks=2, attention_resolutions=(16,), dropout=0.1, norm_groups=32,
              norm_eps=1e-6, attention_head_dim=None, mid_attention=True, flip_sin_to_cos=False,
              freq_shift=1, downsample_padding=0, center_input_sample=False, name="eps_model"):
    """The ε-prediction U-Net of Ho et al. (2020, App. B), as a functional model.

    A PixelCNN++-style U-Net: a 3x3 input conv; per resolution level
    `num_res_blocks` time-conditioned residual blocks (self-attention after each at
    the resolutions in `attention_resolutions`) and a stride-2 3x3 conv down; a
    middle of residual block, attention, residual block; the mirrored up path with
    `num_res_blocks + 1` blocks per level on skip-concatenated features and
    nearest-neighbour upsampling + 3x3 conv; GroupNorm, swish and a zero-initialised
    3x3 conv out. The timestep enters through a sinusoidal embedding of size `width`
    and two dense layers of size 4 x `width`. CIFAR-10: 32x32, width 128, multipliers
    (1, 2, 2, 2), 2 blocks, attention at 16x16, dropout 0.1 (35.7M parameters).

    The same network is diffusers' `UNet2DModel` with `DownBlock2D`/`AttnDownBlock2D`
    and `UpBlock2D`/`AttnUpBlock2D` blocks (google/ddpm-cifar10-32 is Ho et al.'s
    checkpoint in that format); the remaining options are the fields of its
    `config.json` that Ho et al. fixed: `norm_eps`, `attention_head_dim`,
    `mid_attention` (`add_attention`), `flip_sin_to_cos`, `freq_shift`,
    `downsample_padding` (0: pad right/bottom by one before the stride-2 conv, which
    is TensorFlow's "same"; 1: pad one on every side) and `center_input_sample`
    (x -> 2x - 1 first). `kzoo.hub.convert.diffusers` maps a diffusers checkpoint
    onto it. Layer names: `conv_in`, `time_dense0/1`, `down{level}_res{j}`,
    `down{level}_attn{j}`, `down{level}_downsample`, `mid_res0`, `mid_attn`,
    `mid_res1`, `up{level}_res{j}`, `up{level}_attn{j}`, `up{level}_upsample_conv`,
    `norm_out`, `conv_out`.

    Inputs are named `x_t` (batch, S, S, channels) and `t` (batch,) int32; the
    output `eps` is float32.
    """
    channel_mults = tuple(channel_mults)
    levels = len(channel_mults)
    if levels < 1 or image_size % 2 ** (levels - 1):
        raise ValueError(f"image_size {image_size} must be divisible by 2^{levels - 1} "
                         f"for {levels} resolution levels")
    bad = [width * m for m in channel_mults if (width * m) % norm_groups]
    if width % norm_groups or bad:
        raise ValueError(f"norm_groups {norm_groups} must divide every width "
                         f"({width} x {channel_mults})")
    if downsample_padding not in (0, 1):
        raise ValueError(f"downsample_padding must be 0 or 1, got {downsample_padding}")
    x_in = keras.Input((image_size, image_size, channels), name="x_t")
    t_in = keras.Input((), dtype="int32", name="t")

    def res_block(h, filters, block_name):
        return TimeResidualBlock(filters, dropout=dropout, groups=norm_groups, epsilon=norm_eps,
                                 name=block_name)([h, temb])

    def attend(h, block_name):
        if attention_head_dim and h.shape[-1] % attention_head_dim:
            raise ValueError(f"attention_head_dim {attention_head_dim} must divide the "
                             f"{h.shape[-1]} channels of {block_name}")
        heads = h.shape[-1] // attention_head_dim if attention_head_dim else 1
        return SpatialSelfAttention(groups=norm_groups, epsilon=norm_eps, heads=heads,
                                    name=block_name)(h)

    def maybe_attend(h, resolution, block_name):
        return attend(h, block_name) if resolution in attention_resolutions else h

    temb = SinusoidalTimeEmbedding(width, flip_sin_to_cos=flip_sin_to_cos, freq_shift=freq_shift,
                                   name="time_embedding")(t_in)
    temb = layers.Dense(4 * width, activation="silu", name="time_dense0")(temb)
    temb = layers.Dense(4 * width, name="time_dense1")(temb)

    # --- downsampling ---
    h = x_in
    if center_input_sample:
        h = layers.Rescaling(2.0, offset=-1.0, name="center_input")(h)
    h = layers.Conv2D(width, 3, padding="same", name="conv_in")(h)
    skips, resolution = [h], image_size
    for i, mult in enumerate(channel_mults):
        for j in range(num_res_blocks):
            h = res_block(h, width * mult, f"down{i}_res{j}")
            h = maybe_attend(h, resolution, f"down{i}_attn{j}")
            skips.append(h)
        if i < levels - 1:
            if downsample_padding:
                h = layers.ZeroPadding2D(downsample_padding, name=f"down{i}_downsample_pad")(h)
            h = layers.Conv2D(h.shape[-1], 3, strides=2, padding="valid" if downsample_padding
                              else "same", name=f"down{i}_downsample")(h)
            resolution //= 2
            skips.append(h)
    # --- middle ---
    h = res_block(h, h.shape[-1], "mid_res0")
    if mid_attention:
        h = attend(h, "mid_attn")
    h = res_block(h, h.shape[-1], "mid_res1")
    # --- upsampling ---
    for i in reversed(range(levels)):
        for j in range(num_res_blocks + 1):
            h = layers.Concatenate(name=f"up{i}_skip{j}")([h, skips.pop()])
            h = res_block(h, width * channel_mults[i], f"up{i}_res{j}")
            h = maybe_attend(h, resolution, f"up{i}_attn{j}")
        if i > 0:
            h = layers.UpSampling2D(2, interpolation="nearest", name=f"up{i}_upsample")(h)
            h = layers.Conv2D(h.shape[-1], 3, padding="same", name=f"up{i}_upsample_conv")(h)
            resolution *= 2
    # --- out ---
    h = layers.GroupNormalization(groups=norm_groups, epsilon=norm_eps, name="norm_out")(h)
    h = layers.Activation("silu", name="act_out")(h)
    h = layers.Conv2D(channels, 3, padding="same", kernel_initializer="zeros", name="conv_out")(h)
    eps = layers.Activation("linear", dtype="float32", name="eps")(h)
    return keras.Model({"x_t": x_in, "t": t_in}, eps, name=name)


@keras.saving.register_keras_serializable(package="kzoo")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate rising linearly from 0 to `learning_rate` over `warmup_steps`, then flat.

    Ho et al.'s reference code: lr * min(step / warmup, 1), warm-up 5000 steps, counting
    the first update as step 1.
    """

    def __init__(self, learning_rate, warmup_steps):
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if self.warmup_steps <= 0:
            return ops.full((), self.learning_rate, "float32")
        return self.learning_rate * ops.minimum((step + 1.0) / self.warmup_steps, 1.0)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps}


def ddpm_optimizer(learning_rate=2e-4, warmup_steps=5000, clipnorm=1.0):
    """Adam(2e-4) with linear warm-up and gradient clipping at global norm 1 (Ho et al., App. B)."""
    return keras.optimizers.Adam(LinearWarmup(learning_rate, warmup_steps), epsilon=1e-8,
                                 global_clipnorm=clipnorm or None)


@keras.saving.register_keras_serializable(package="kzoo")
class DDPM(TrainingModel):
    """Denoising diffusion probabilistic model with an overridden `train_step`.

    Training (Ho et al., Algorithm 1): for each image x_0 draw t ~ U{0..T-1} and
    ε ~ N(0, I) from `keras.random` with a model-owned seed generator, form
    x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε with `kzoo.diffusion` (the same schedule
    the samplers use) and minimise ||ε - ε_θ(x_t, t)||². After every update the
    exponential moving average of the weights (decay 0.9999) is updated in a second
    copy of the network, `ema_network`; sampling and export use that copy.

    A separate EMA network rather than Keras' `use_ema=True` optimizer option:
    Keras overwrites the raw weights with the average at the end of every `fit`,
    which would make a resumed run continue from the averaged weights, and the
    average would live only in optimizer state, not in the exported network.

    Args:
        image_size: int. Image height and width (32 for CIFAR-10).
        channels: int. Image channels.
        width: int. Base channel count (128).
        channel_mults: tuple of int. Width multiplier per resolution level ((1, 2, 2, 2)).
        num_res_blocks: int. Residual blocks per level (2).
        attention_resolutions: tuple of int. Resolutions with self-attention ((16,)).
        dropout: float. Dropout in the residual blocks (0.1 for CIFAR-10).
        norm_groups: int. Group-norm groups (32).
        norm_eps: float. Group-norm epsilon (1e-6).
        attention_head_dim: int or None. Channels per attention head; None: one head (Ho et al.).
        mid_attention: bool. Self-attention in the middle block (True).
        flip_sin_to_cos: bool. Cosines first in the time embedding (False in Ho et al.).
        freq_shift: int. Frequency shift of the time embedding (1 in Ho et al.).
        downsample_padding: int. 0: TensorFlow's "same" padding of the stride-2 convs
            (Ho et al.); 1: one pixel on every side (diffusers' default).
        center_input_sample: bool. Map the input x -> 2x - 1 first (False).
        num_timesteps: int. T (1000).
        beta_start: float. β_1 (1e-4).
        beta_end: float. β_T (0.02).
        beta_schedule: str. "linear" (Ho et al.), "scaled_linear" or "squaredcos_cap_v2"
            (`kzoo.diffusion.BETA_SCHEDULES`).
        ema_decay: float. Decay of the weight average (0.9999).
        variance: str. DDPM sampler's σ_t²: "beta" (Ho et al.'s CIFAR-10 choice) or
            "beta_tilde".
        clip_sample: bool. Samplers clip the predicted x_0 (True, image data).
        sampler_options: dict or None. The other `kzoo.diffusion.SamplerOptions` fields
            (prediction type, clip range, thresholding, timestep spacing, steps offset,
            set_alpha_to_one, use_clipped_model_output). None: kzoo's own, Ho et al.'s
            reference sampler (`kzoo.diffusion.KZOO`); a dict: diffusers' defaults
            (`kzoo.diffusion.DIFFUSERS`) updated with it (converted diffusers models).
        seed: int or None. Seed of the model's noise generator.

    Call arguments:
        inputs: dict with `x_t` (batch, S, S, C) and `t` (batch,) int32.
        training: bool.

    Returns:
        The raw (not averaged) network's ε prediction, float32, shaped like `x_t`.

    Example:
    >>> model = DDPM(**TINY)
    >>> model.compile(optimizer=ddpm_optimizer(warmup_steps=10))
    >>> model.sample(2, sampler="ddim", steps=5).shape
    (2, 8, 8, 1)

    References:
        Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
        Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021.
    """

    loss_names = ("loss",)

    @takes(DDPM_OPTIONS)
    def __init__(self, *, image_size, channels, width, channel_mults, num_res_blocks, attention_resolutions,
                 dropout, norm_groups, norm_eps, attention_head_dim, mid_attention, flip_sin_to_cos,
                 freq_shift, downsample_padding, center_input_sample, num_timesteps, beta_start, beta_end,
                 beta_schedule, ema_decay, variance, clip_sample, sampler_options, seed, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        if variance not in diffusion.VARIANCES:
            raise ValueError(f"variance must be one of {diffusion.VARIANCES}, got {variance!r}")
        # === Config ===
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.width = int(width)
        self.channel_mults = tuple(int(m) for m in channel_mults)
        self.num_res_blocks = int(num_res_blocks)
        self.attention_resolutions = tuple(int(r) for r in attention_resolutions)
        self.dropout = float(dropout)
        self.norm_groups = int(norm_groups)
        self.norm_eps = float(norm_eps)
        self.attention_head_dim = None if attention_head_dim is None else int(attention_head_dim)
        self.mid_attention = bool(mid_attention)
        self.flip_sin_to_cos = bool(flip_sin_to_cos)
        self.freq_shift = int(freq_shift)
        self.downsample_padding = int(downsample_padding)
        self.center_input_sample = bool(center_input_sample)
        self.num_timesteps = int(num_timesteps)
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)
        self.beta_schedule = beta_schedule
        self.ema_decay = float(ema_decay)
        self.variance = variance
        self.clip_sample = bool(clip_sample)
        base = diffusion.KZOO if sampler_options is None else diffusion.DIFFUSERS
        given = dict(sampler_options or {})
        for key in ("variance_type", "clip_sample"):
            if key in given:
                raise ValueError(f"give {key} as the DDPM argument "
                                 f"{'variance' if key == 'variance_type' else key}, not in sampler_options")
        self.sampler_options = diffusion.SamplerOptions.from_config({
            **base.config(), **given, "variance_type": diffusion.VARIANCE_TYPES[self.variance],
            "clip_sample": self.clip_sample})
        # === Layers ===
        unet = dict(image_size=self.image_size, channels=self.channels, width=self.width,
                    channel_mults=self.channel_mults, num_res_blocks=self.num_res_blocks,
                    attention_resolutions=self.attention_resolutions, dropout=self.dropout,
                    norm_groups=self.norm_groups, norm_eps=self.norm_eps,
                    attention_head_dim=self.attention_head_dim, mid_attention=self.mid_attention,
                    flip_sin_to_cos=self.flip_sin_to_cos, freq_shift=self.freq_shift,
                    downsample_padding=self.downsample_padding,
                    center_input_sample=self.center_input_sample)
        self.network = ddpm_unet(**unet, name="eps_model")
        self.ema_network = ddpm_unet(**unet, name="ema_eps_model")
        self.ema_network.trainable = False
        self.ema_network.set_weights(self.network.get_weights())
        self.schedule = diffusion.NoiseSchedule(self.num_timesteps, self.beta_start, self.beta_end,
                                                self.beta_schedule)
        self.built = True

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def inference_parts(self):
        """The network a deployment needs: the EMA ε-model, inputs `x_t` and `t`."""
        return {"eps_model": self.ema_network}

    def default_optimizer(self, name):
        """`compile()` without an optimizer uses the paper's: `ddpm_optimizer()`."""
        return ddpm_optimizer()

    def optimizer_variables(self, name):
        return self.network.trainable_variables

    def diffusion_loss(self, data, training):
        """MSE between the drawn noise ε and ε_θ(x_t, t) at uniformly drawn t (Algorithm 1)."""
        x0, _ = unpack(data)
        x0 = ops.cast(x0, "float32")
        batch = ops.shape(x0)[0]
        t = self.randint((batch,), 0, self.num_timesteps)
        noise = self.normal(ops.shape(x0))
        x_t = self.schedule.q_sample(x0, t, noise, xp=ops)
        eps = self.network({"x_t": x_t, "t": t}, training=training)
        return losses.mse(noise, eps)

    def train_step(self, data):
        def loss_fn():
            loss = self.diffusion_loss(data, training=True)
            return loss, {"loss": loss}

        logs = self.optimize(loss_fn)
        self.update_ema()
        return self.track(logs)

    def test_step(self, data):
        return self.track({"loss": self.diffusion_loss(data, training=False)})

    def sample_batch(self, batch_size=2, rng=None):
        """A random batch of training images x_0 in [-1, 1] (tests, examples)."""
        return random_images(rng, batch_size, self.image_size, self.image_size, self.channels)

    def update_ema(self):
        """ema <- decay * ema + (1 - decay) * weights, once per step (cross-replica)."""
        decay = self.ema_decay
        if keras.backend.backend() != "tensorflow":  # JAX: one device program, plain assigns
            for ema, w in zip(self.ema_network.weights, self.network.weights):
                ema.assign(decay * ema.value + (1.0 - decay) * w.value)
            return
        import tensorflow as tf

        pairs = [(e.value, w.value) for e, w in zip(self.ema_network.weights, self.network.weights)]

        def update(strategy):
            for ema, w in pairs:
                strategy.extended.update(ema, lambda a, b: a.assign(decay * a + (1.0 - decay) * b),
                                         args=(w,), group=False)

        ctx = tf.distribute.get_replica_context()
        if ctx is None:  # already in cross-replica context
            update(tf.distribute.get_strategy())
        else:
            ctx.merge_call(update)

    def sample(self, n, *, sampler="ddpm", steps=None, eta=0.0, seed=0, callback=None,
               clip_denoised=None, use_ema=True, batch_size=SAMPLE_BATCH, noise=None):
        """Draw `n` images in [-1, 1] with `kzoo.diffusion.sample` (EMA weights by default),
        with the model's `sampler_options`.

        Args:
            n: int. Number of images (one batch).
            sampler: str. "ddpm" (ancestral) or "ddim".
            steps: int or None. Denoising steps, 1..T (None: T).
            eta: float. DDIM stochasticity.
            seed: int. Seed of x_T and of the sampler noise.
            callback: optional `(t, x_t, x0_hat)` called after every step.
            clip_denoised: bool or None. Clip the predicted x_0 to [-1, 1] (None: the
                model's `clip_sample`).
            use_ema: bool. Sample from the averaged weights (True) or the raw ones.
            batch_size: int or None. Largest batch per network call (`SAMPLE_BATCH`);
                None: all `n` in one call. The images do not depend on it.
            noise: None, or x_T and the step noise to use instead of `seed`'s
                (`kzoo.diffusion.sample`).
        """
        net = self.ema_network if use_ema else self.network
        return diffusion.sample(
            lambda x, t: net.predict_on_batch({"x_t": x, "t": t}),
            (n, self.image_size, self.image_size, self.channels), schedule=self.schedule,
            sampler=sampler, steps=steps, eta=eta, options=self.sampler_options,
            clip_denoised=clip_denoised, seed=seed, noise=noise, callback=callback,
            batch_size=batch_size)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "image_size": self.image_size,
                "channels": self.channels, "width": self.width, "channel_mults": self.channel_mults,
                "num_res_blocks": self.num_res_blocks,
                "attention_resolutions": self.attention_resolutions, "dropout": self.dropout,
                "norm_groups": self.norm_groups, "norm_eps": self.norm_eps,
                "attention_head_dim": self.attention_head_dim, "mid_attention": self.mid_attention,
                "flip_sin_to_cos": self.flip_sin_to_cos, "freq_shift": self.freq_shift,
                "downsample_padding": self.downsample_padding,
                "center_input_sample": self.center_input_sample,
                "num_timesteps": self.num_timesteps, "beta_start": self.beta_start,
                "beta_end": self.beta_end, "beta_schedule": self.beta_schedule,
                "ema_decay": self.ema_decay, "variance": self.variance,
                "clip_sample": self.clip_sample,
                "sampler_options": {k: v for k, v in self.sampler_options.config().items()
                                    if k not in ("variance_type", "clip_sample")},
                "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def card(self):
        """The model card: `eps_model`, the EMA network (t, x_t) -> predicted noise eps."""
        from kzoo.card import Endpoint, ModelCard, Tensor, docstring_references, timestep

        shape = (self.image_size, self.image_size, self.channels)
        eps_model = Endpoint(
            "eps_model",
            inputs=(timestep("t", self.num_timesteps),  # the network's dict inputs, sorted by key
                    Tensor("x_t", "tensor", shape,
                           description="noisy image sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, "
                                       "x_0 in [-1, 1]")),
            outputs=(Tensor("eps", "tensor", shape,
                            description="the predicted noise eps (about N(0, 1))"),))
        return ModelCard(task="diffusion-noise-prediction",
                         summary="predicts the noise in a noisy image (the EMA eps-network); "
                                 "`kzoo.diffusion` samplers or `kzoo predict --sampler` turn it "
                                 "into new images",
                         endpoints=(eps_model,), references=docstring_references(type(self)))


@register_model(DDPM, tiny=TINY)
def ddpm(**overrides):
    """DDPM at Ho et al.'s CIFAR-10 configuration (32x32x3, 35.7M parameters)."""
    return DDPM(**overrides)


@register_model(DDPM, tiny=TINY)
def ddpm_digits(**overrides):
    """A small DDPM for 16x16 grayscale digits (the quick recipe)."""
    return DDPM(**{"image_size": 16, "channels": 1, "width": 32, "channel_mults": (1, 2, 2),
                   "num_res_blocks": 1, "attention_resolutions": (8,), "norm_groups": 8,
                   **overrides})
