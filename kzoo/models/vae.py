"""Variational auto-encoder (Kingma & Welling, 2014) with convolutional networks."""

from __future__ import annotations

import math

import keras
from keras import layers, ops

from kzoo import losses
from kzoo.options import takes
from kzoo.options.vae import AUTOENCODER_KL_OPTIONS, VAE_OPTIONS
from kzoo.training import TrainingModel, random_images, unpack
from kzoo.zoo import register_model

TINY = {"image_size": 16, "channels": 1, "latent_dim": 4, "width": 4}
LIKELIHOODS = ("bernoulli", "gaussian")


def _stages(image_size):
    n = math.log2(image_size / 4)
    if image_size < 8 or n != int(n):
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    return int(n)


def vae_encoder(*, image_size=32, channels=1, latent_dim=20, width=32, name="encoder"):
    """q(z|x): stride-2 4x4 convs + ReLU down to 4x4, then dense heads for mu and log sigma^2."""
    image = keras.Input((image_size, image_size, channels), name="image")
    h = image
    for i in range(_stages(image_size)):
        h = layers.Conv2D(width * 2 ** i, 4, strides=2, padding="same", activation="relu",
                          name=f"down{i}")(h)
    h = layers.Flatten(name="flatten")(h)
    mu = layers.Dense(latent_dim, dtype="float32", name="mu")(h)
    log_var = layers.Dense(latent_dim, dtype="float32", name="log_var")(h)
    return keras.Model(image, {"mu": mu, "log_var": log_var}, name=name)


def vae_decoder(*, image_size=32, channels=1, latent_dim=20, width=32, name="decoder"):
    """p(x|z): dense to 4x4, stride-2 4x4 transposed convs + ReLU, a last one to per-pixel logits."""
    stages = _stages(image_size)
    z = keras.Input((latent_dim,), name="z")
    top = width * 2 ** (stages - 1)
    h = layers.Dense(4 * 4 * top, activation="relu", name="project")(z)
    h = layers.Reshape((4, 4, top), name="z_map")(h)
    for i in range(1, stages):
        h = layers.Conv2DTranspose(width * 2 ** (stages - 1 - i), 4, strides=2, padding="same",
                                   activation="relu", name=f"up{i}")(h)
    logits = layers.Conv2DTranspose(channels, 4, strides=2, padding="same", dtype="float32",
                                    name="logits")(h)
    return keras.Model(z, logits, name=name)


@keras.saving.register_keras_serializable(package="kzoo")
class VAE(TrainingModel):
    """Convolutional VAE trained on the negative ELBO: reconstruction + beta * KL.

    The encoder gives q(z|x) = N(mu, diag(sigma^2)) (as mu and log sigma^2); a
    sample z = mu + sigma * eps, eps ~ N(0, I) drawn with `keras.random` from the
    model's own `SeedGenerator` (the reparameterization trick, Sec. 2.4), one
    sample per example (L = 1, as in the paper's experiments); the decoder gives
    p(x|z). The loss per example is -log p(x|z) + beta * KL(q(z|x) || N(0, I)),
    averaged over the batch; the reconstruction and KL terms are tracked
    separately (in nats per image). beta = 1 is the paper's ELBO (Higgins et al.'s
    beta-VAE for other values).

    Images are in [-1, 1]. Likelihoods:
    - "bernoulli" (default; the paper's choice for MNIST): the decoder's outputs
      are logits of Bernoulli means (x + 1) / 2; decoded images are
      2 sigmoid(logits) - 1.
    - "gaussian" (the paper's choice for Frey faces): N(x; tanh(output),
      `sigma`^2 I) with a fixed `sigma`; decoded images are the mean.

    The paper's networks are one-hidden-layer MLPs; here both are convolutional
    (as the issue asks): 4x4 stride-2 convs with ReLU, widths doubling from `width`.

    Args:
        image_size: int. Power of two >= 8.
        channels: int. Image channels.
        latent_dim: int. Size of z (20 in the paper's MNIST figures).
        width: int. Channels of the first encoder conv; doubles per stage.
        likelihood: str. "bernoulli" or "gaussian".
        sigma: float. Standard deviation of the Gaussian likelihood.
        beta: float. Weight of the KL term.
        seed: int or None. Seed of the model's noise generator.

    Call arguments:
        inputs: images (batch, image_size, image_size, channels) in [-1, 1].
        training: bool. Sample z (True) or use the posterior mean (False).

    Returns:
        Reconstructions in [-1, 1], shaped like the inputs.

    Example:
    >>> model = VAE(image_size=16, channels=1, latent_dim=4, width=4, seed=0)
    >>> model.sample(3).shape
    TensorShape([3, 16, 16, 1])

    References:
        Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    """

    loss_names = ("loss", "reconstruction", "kl")

    @takes(VAE_OPTIONS)
    def __init__(self, *, image_size, channels, latent_dim, width, likelihood, sigma, beta, seed, **kwargs):
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood!r}")
        # === Layers ===
        encoder = vae_encoder(image_size=image_size, channels=channels, latent_dim=latent_dim,
                              width=width)
        decoder = vae_decoder(image_size=image_size, channels=channels, latent_dim=latent_dim,
                              width=width)
        # === Model ===
        super().__init__(seed=seed, **kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.built = True
        # === Config ===
        self.image_size = image_size
        self.channels = channels
        self.latent_dim = latent_dim
        self.width = width
        self.likelihood = likelihood
        self.sigma = float(sigma)
        self.beta = float(beta)

    # --- the model's parts, usable on their own -----------------------------------
    def encode(self, images, training=False):
        """(mu, log sigma^2) of q(z|x)."""
        out = self.encoder(images, training=training)
        return out["mu"], out["log_var"]

    def reparameterize(self, mu, log_var):
        """z = mu + sigma * eps with eps ~ N(0, I) from the model's seed generator."""
        return mu + ops.exp(0.5 * log_var) * self.normal(ops.shape(mu))

    def _to_images(self, outputs):
        return ops.tanh(0.5 * outputs if self.likelihood == "bernoulli" else outputs)

    def decode(self, z, training=False):
        """Images in [-1, 1] from latents z."""
        return self._to_images(self.decoder(z, training=training))

    def call(self, inputs, training=False):
        mu, log_var = self.encode(inputs, training=training)
        z = self.reparameterize(mu, log_var) if training else mu
        return self.decode(z, training=training)

    def sample(self, n):
        """`n` images decoded from z ~ N(0, I)."""
        return self.decode(self.normal((n, self.latent_dim)))

    def interpolate(self, image_a, image_b, steps=8):
        """`steps` images decoded along the line between the posterior means of two images."""
        pair = ops.stack([ops.reshape(image_a, (self.image_size, self.image_size, self.channels)),
                          ops.reshape(image_b, (self.image_size, self.image_size, self.channels))])
        mu, _ = self.encode(pair)
        t = ops.reshape(ops.linspace(0.0, 1.0, steps), (steps, 1))
        return self.decode((1.0 - t) * mu[0] + t * mu[1])

    def inference_parts(self):
        """{"encoder": image -> {mu, log_var}, "decoder": z -> image in [-1, 1]}."""
        z = self.decoder.input
        scale = 0.5 if self.likelihood == "bernoulli" else 1.0
        out = layers.Rescaling(scale, name="logit_scale")(self.decoder.output)
        images = layers.Activation("tanh", dtype="float32", name="image")(out)
        return {"encoder": self.encoder, "decoder": keras.Model(z, images, name="decoder_images")}

    # --- training ---------------------------------------------------------------------
    def elbo_terms(self, images, training):
        """(loss, logs) with the negative ELBO and its reconstruction and KL terms."""
        mu, log_var = self.encode(images, training=training)
        outputs = self.decoder(self.reparameterize(mu, log_var), training=training)
        if self.likelihood == "bernoulli":
            recon = losses.bernoulli_nll(images, outputs)
        else:
            recon = losses.gaussian_nll(images, ops.tanh(outputs), self.sigma)
        kl = losses.gaussian_kl(mu, log_var)
        loss = recon + self.beta * kl
        return loss, {"loss": loss, "reconstruction": recon, "kl": kl}

    def train_step(self, data):
        images, _ = unpack(data)
        return self.track(self.optimize(lambda: self.elbo_terms(images, training=True)))

    def test_step(self, data):
        images, _ = unpack(data)
        return self.track(self.elbo_terms(images, training=False)[1])

    def sample_batch(self, batch_size=2, rng=None):
        """A random batch of training images in [-1, 1] (tests, examples)."""
        return random_images(rng, batch_size, self.image_size, self.image_size, self.channels)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "image_size": self.image_size,
                "channels": self.channels, "latent_dim": self.latent_dim, "width": self.width,
                "likelihood": self.likelihood, "sigma": self.sigma, "beta": self.beta,
                "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def card(self):
        """The model card: `encoder` (image -> q(z|x) as mu, log sigma^2) and `decoder` (z -> image)."""
        from kzoo.card import Endpoint, ModelCard, Tensor, docstring_references, image, latent

        posterior = (Tensor("log_var", "tensor", (self.latent_dim,),
                            description="log sigma^2 of the posterior q(z|x) = N(mu, diag(sigma^2))"),
                     Tensor("mu", "tensor", (self.latent_dim,),
                            description="mean of the posterior q(z|x); a latent for the decoder"))
        encoder = Endpoint("encoder", inputs=(image("image", self.channels, self.image_size),),
                           outputs=posterior)
        decoder = Endpoint("decoder", inputs=(latent("z", self.latent_dim),),
                           outputs=(image("image", self.channels, self.image_size),))
        return ModelCard(task="variational-autoencoder",
                         summary="decodes latent vectors into images and encodes images into "
                                 "their latent posterior (the full model also reconstructs and "
                                 "interpolates)",
                         endpoints=(encoder, decoder), references=docstring_references(type(self)))


@register_model(VAE, tiny=TINY)
def vae(**overrides):
    """Convolutional VAE for 32x32 grayscale images, latent 20 (Kingma & Welling's MNIST size)."""
    return VAE(**overrides)


@register_model(VAE, tiny={**TINY, "channels": 3})
def vae_faces(**overrides):
    """Gaussian-likelihood VAE for 32x32 faces (the paper's Frey-faces setting)."""
    return VAE(**{"likelihood": "gaussian", "latent_dim": 20, **overrides})


# --- the KL autoencoder of latent diffusion (Stable Diffusion's VAE) ---------------------

KL_TINY = {"image_size": 16, "channels": 3, "latent_channels": 4, "block_out_channels": (8, 16),
           "layers_per_block": 1, "norm_groups": 4}
LOGVAR_RANGE = (-30.0, 20.0)  # diffusers' DiagonalGaussianDistribution clamps log sigma^2 so


@keras.saving.register_keras_serializable(package="kzoo")
class GaussianParameters(layers.Layer):
    """Split `2 * latent_channels` moments into the posterior's mean and log variance.

    The first half of the channels is the mean, the second log sigma^2, clamped to
    [-30, 20], as diffusers' `DiagonalGaussianDistribution` (`torch.chunk(parameters,
    2, dim=1)`, `torch.clamp(logvar, -30.0, 20.0)`) and latent-diffusion's own.

    Returns:
        dict {"mean", "logvar"} of float32 tensors (batch, h, w, latent_channels).
    """

    def call(self, moments):
        moments = ops.cast(moments, "float32")
        half = moments.shape[-1] // 2
        return {"mean": moments[..., :half],
                "logvar": ops.clip(moments[..., half:], *LOGVAR_RANGE)}

    def compute_output_spec(self, moments):
        shape = (*moments.shape[:-1], moments.shape[-1] // 2)
        return {"mean": keras.KerasTensor(shape, "float32"),
                "logvar": keras.KerasTensor(shape, "float32")}


def _kl_parts(norm_groups):
    from kzoo.layers import SpatialSelfAttention, TimeResidualBlock

    def res(h, filters, name):
        return TimeResidualBlock(filters, groups=norm_groups, epsilon=1e-6, time_conditioned=False,
                                 name=name)(h)

    def mid(h, attention):
        h = res(h, h.shape[-1], "mid_res0")
        if attention:  # one head over all channels (attention_head_dim = the width)
            h = SpatialSelfAttention(groups=norm_groups, epsilon=1e-6, heads=1, name="mid_attn")(h)
        return res(h, h.shape[-1], "mid_res1")

    def out(h, filters, dtype=None):
        h = layers.GroupNormalization(norm_groups, epsilon=1e-6, name="norm_out")(h)
        h = layers.Activation("silu", name="act_out")(h)
        return layers.Conv2D(filters, 3, padding="same", dtype=dtype, name="conv_out")(h)

    return res, mid, out


def _check_kl(image_size, block_out_channels, norm_groups):
    factor = 2 ** (len(block_out_channels) - 1)
    if not block_out_channels or image_size % factor:
        raise ValueError(f"image_size {image_size} must be divisible by {factor} for "
                         f"{len(block_out_channels)} blocks")
    bad = [c for c in block_out_channels if c % norm_groups]
    if bad:
        raise ValueError(f"norm_groups {norm_groups} must divide every width {list(block_out_channels)}")
    return factor


def kl_encoder(*, image_size=256, channels=3, latent_channels=4,
               block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_groups=32,
               mid_attention=True, quant_conv=True, name="encoder"):
    """q(z|x) of the KL autoencoder: image -> {"mean", "logvar"} latent maps (1/f the size).

    diffusers' `Encoder` (`DownEncoderBlock2D`s, `UNetMidBlock2D`) plus `quant_conv`:
    a 3x3 conv; per block `layers_per_block` residual blocks (GroupNorm eps 1e-6, swish,
    no time embedding) and, except after the last, a stride-2 3x3 conv after padding
    right/bottom by one (`Downsample2D(padding=0)`); a middle of residual block,
    one-head self-attention, residual block; GroupNorm, swish, a 3x3 conv to
    2 x `latent_channels` moments; the 1x1 `quant_conv`; mean and clamped log variance
    (`GaussianParameters`). f = 2^(blocks - 1). Layer names: `conv_in`,
    `down{i}_res{j}`, `down{i}_downsample`, `mid_res0`, `mid_attn`, `mid_res1`,
    `norm_out`, `conv_out`, `quant_conv`.
    """
    factor = _check_kl(image_size, block_out_channels, norm_groups)
    res, mid, out = _kl_parts(norm_groups)
    image = keras.Input((image_size, image_size, channels), name="image")
    h = layers.Conv2D(block_out_channels[0], 3, padding="same", name="conv_in")(image)
    for i, width in enumerate(block_out_channels):
        for j in range(layers_per_block):
            h = res(h, width, f"down{i}_res{j}")
        if i < len(block_out_channels) - 1:
            h = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"down{i}_downsample_pad")(h)
            h = layers.Conv2D(width, 3, strides=2, padding="valid", name=f"down{i}_downsample")(h)
    h = mid(h, mid_attention)
    h = out(h, 2 * latent_channels)
    if quant_conv:
        h = layers.Conv2D(2 * latent_channels, 1, name="quant_conv")(h)
    assert h.shape[1] == image_size // factor
    return keras.Model(image, GaussianParameters(name="posterior")(h), name=name)


def kl_decoder(*, image_size=256, channels=3, latent_channels=4,
               block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_groups=32,
               mid_attention=True, post_quant_conv=True, name="decoder"):
    """p(x|z) of the KL autoencoder: latent map z -> image (unclipped, nominally [-1, 1]).

    `post_quant_conv` plus diffusers' `Decoder` (`UNetMidBlock2D`, `UpDecoderBlock2D`s):
    the 1x1 `post_quant_conv`; a 3x3 conv to the last width; the middle; per block
    (widths reversed) `layers_per_block + 1` residual blocks and, except after the last,
    nearest-neighbour 2x upsampling and a 3x3 conv (`Upsample2D`); GroupNorm, swish and
    a 3x3 conv out. Layer names: `post_quant_conv`, `conv_in`, `mid_*`, `up{i}_res{j}`,
    `up{i}_upsample_conv` (i in diffusers' `up_blocks` order), `norm_out`, `conv_out`.
    """
    factor = _check_kl(image_size, block_out_channels, norm_groups)
    res, mid, out = _kl_parts(norm_groups)
    size = image_size // factor
    z = keras.Input((size, size, latent_channels), name="z")
    h = layers.Conv2D(latent_channels, 1, name="post_quant_conv")(z) if post_quant_conv else z
    h = layers.Conv2D(block_out_channels[-1], 3, padding="same", name="conv_in")(h)
    h = mid(h, mid_attention)
    for i, width in enumerate(reversed(block_out_channels)):
        for j in range(layers_per_block + 1):
            h = res(h, width, f"up{i}_res{j}")
        if i < len(block_out_channels) - 1:
            h = layers.UpSampling2D(2, interpolation="nearest", name=f"up{i}_upsample")(h)
            h = layers.Conv2D(width, 3, padding="same", name=f"up{i}_upsample_conv")(h)
    return keras.Model(z, out(h, channels, dtype="float32"), name=name)


@keras.saving.register_keras_serializable(package="kzoo")
class AutoencoderKL(TrainingModel):
    """The KL-regularised convolutional autoencoder of latent diffusion (Stable Diffusion's VAE).

    A VAE whose latent is a map: q(z|x) = N(mean, diag(exp(logvar))) with mean and
    logvar of shape (S/f, S/f, latent_channels) from `kl_encoder`, and `kl_decoder`
    mapping z back to the image (Rombach et al., Sec. 3.1 and App. G: ResNet blocks,
    self-attention in the middle, a KL penalty weighted ~1e-6). It is diffusers'
    `AutoencoderKL` exactly (names and shapes of every parameter; `quant_conv` /
    `post_quant_conv` optional as there), so the published Stable Diffusion VAEs
    (stabilityai/sd-vae-ft-mse, sd-vae-ft-ema) load into it through
    `kzoo.hub.convert.autoencoder_kl`. Latent-diffusion models work on
    `scaling_factor` x z (0.18215 for Stable Diffusion v1), recorded in the card.

    Images are in [-1, 1]; decoded images are not clipped (diffusers' pipelines clamp
    (x + 1) / 2 to [0, 1] afterwards).

    Args:
        image_size: int. Height and width of the images (multiple of f).
        channels: int. Image channels.
        latent_channels: int. Channels of z (4 for Stable Diffusion).
        block_out_channels: tuple of int. Width of each block; f = 2^(len - 1).
        layers_per_block: int. Residual blocks per encoder block (decoder: one more).
        norm_groups: int. GroupNorm groups (32).
        mid_attention: bool. Self-attention in the middle blocks.
        quant_conv: bool. The 1x1 conv after the encoder.
        post_quant_conv: bool. The 1x1 conv before the decoder.
        scaling_factor: float. What latent diffusion multiplies z by.
        sigma: float. Standard deviation of the Gaussian likelihood in training.
        beta: float. Weight of the KL term in training.
        seed: int or None. Seed of the model's noise generator.

    Call arguments:
        inputs: images (batch, image_size, image_size, channels) in [-1, 1].
        training: bool. Sample z (True) or decode the posterior mean (False).

    Returns:
        Reconstructions, shaped like the inputs.

    Example:
    >>> model = AutoencoderKL(**KL_TINY, seed=0)
    >>> tuple(model.encode(model.sample_batch(2))[0].shape)
    (2, 8, 8, 4)

    References:
        Rombach, Blattmann, Lorenz, Esser & Ommer, "High-Resolution Image Synthesis with
        Latent Diffusion Models", CVPR 2022.
        Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    """

    loss_names = ("loss", "reconstruction", "kl")

    @takes(AUTOENCODER_KL_OPTIONS)
    def __init__(self, *, image_size, channels, latent_channels, block_out_channels, layers_per_block,
                 norm_groups, mid_attention, quant_conv, post_quant_conv, scaling_factor, sigma, beta,
                 seed, **kwargs):
        arch = {"image_size": int(image_size), "channels": int(channels),
                "latent_channels": int(latent_channels),
                "block_out_channels": tuple(int(c) for c in block_out_channels),
                "layers_per_block": int(layers_per_block), "norm_groups": int(norm_groups),
                "mid_attention": bool(mid_attention)}
        # === Layers ===
        encoder = kl_encoder(**arch, quant_conv=quant_conv)
        decoder = kl_decoder(**arch, post_quant_conv=post_quant_conv)
        # === Model ===
        super().__init__(seed=seed, **kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.built = True
        # === Config ===
        for key, value in arch.items():
            setattr(self, key, value)
        self.quant_conv = bool(quant_conv)
        self.post_quant_conv = bool(post_quant_conv)
        self.scaling_factor = float(scaling_factor)
        self.sigma = float(sigma)
        self.beta = float(beta)
        self.latent_size = self.image_size // 2 ** (len(self.block_out_channels) - 1)

    def encode(self, images, training=False):
        """(mean, log sigma^2) of q(z|x), each (batch, S/f, S/f, latent_channels)."""
        out = self.encoder(images, training=training)
        return out["mean"], out["logvar"]

    def reparameterize(self, mean, logvar):
        """z = mean + sigma * eps with eps ~ N(0, I) from the model's seed generator."""
        return mean + ops.exp(0.5 * logvar) * self.normal(ops.shape(mean))

    def decode(self, z, training=False):
        """Images (unclipped) from latent maps z."""
        return self.decoder(z, training=training)

    def call(self, inputs, training=False):
        mean, logvar = self.encode(inputs, training=training)
        return self.decode(self.reparameterize(mean, logvar) if training else mean,
                           training=training)

    def sample(self, n):
        """`n` images decoded from z ~ N(0, I) (the KL prior; weak for a ~1e-6 KL weight)."""
        return self.decode(self.normal((n, self.latent_size, self.latent_size,
                                        self.latent_channels)))

    def inference_parts(self):
        """{"encoder": image -> {mean, logvar}, "decoder": z -> image,
        "reconstruct": image -> {latent: the posterior mean, reconstruction: its decoding}}."""
        image, z = self.encoder.input, self.decoder.input
        decoded = layers.Identity(name="image")(self.decoder(z))
        mean = self.encoder(image)["mean"]
        recon = {"latent": mean, "reconstruction": self.decoder(mean)}
        return {"encoder": self.encoder, "decoder": keras.Model(z, decoded, name="decoder_image"),
                "reconstruct": keras.Model(image, recon, name="reconstruct")}

    def elbo_terms(self, images, training):
        """(loss, logs): Gaussian reconstruction NLL + beta * KL, per image."""
        mean, logvar = self.encode(images, training=training)
        outputs = self.decode(self.reparameterize(mean, logvar), training=training)
        recon = losses.gaussian_nll(images, outputs, self.sigma)
        flat = (-1, self.latent_size * self.latent_size * self.latent_channels)
        kl = losses.gaussian_kl(ops.reshape(mean, flat), ops.reshape(logvar, flat))
        loss = recon + self.beta * kl
        return loss, {"loss": loss, "reconstruction": recon, "kl": kl}

    def train_step(self, data):
        images, _ = unpack(data)
        return self.track(self.optimize(lambda: self.elbo_terms(images, training=True)))

    def test_step(self, data):
        images, _ = unpack(data)
        return self.track(self.elbo_terms(images, training=False)[1])

    def sample_batch(self, batch_size=2, rng=None):
        """A random batch of training images in [-1, 1] (tests, examples)."""
        return random_images(rng, batch_size, self.image_size, self.image_size, self.channels)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "image_size": self.image_size,
                "channels": self.channels, "latent_channels": self.latent_channels,
                "block_out_channels": list(self.block_out_channels),
                "layers_per_block": self.layers_per_block, "norm_groups": self.norm_groups,
                "mid_attention": self.mid_attention, "quant_conv": self.quant_conv,
                "post_quant_conv": self.post_quant_conv, "scaling_factor": self.scaling_factor,
                "sigma": self.sigma, "beta": self.beta, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def card(self):
        """The model card: `encoder` (image -> posterior mean, logvar), `decoder` (z -> image)
        and `reconstruct` (image -> decoded posterior mean); `scaling_factor` in the summary."""
        from kzoo.card import Endpoint, ModelCard, Tensor, docstring_references, image

        size, c = self.latent_size, self.latent_channels
        shape = (size, size, c)
        posterior = (Tensor("logvar", "tensor", shape, description="log sigma^2 of q(z|x), "
                            f"clamped to [{LOGVAR_RANGE[0]:g}, {LOGVAR_RANGE[1]:g}]"),
                     Tensor("mean", "tensor", shape, description="mean of q(z|x); latent "
                            f"diffusion uses scaling_factor {self.scaling_factor:g} x z"))
        picture = image("image", self.channels, self.image_size, clip=True)
        recon = image("reconstruction", self.channels, self.image_size, clip=True,
                      description="the decoded posterior mean")
        encoder = Endpoint("encoder", inputs=(image("image", self.channels, self.image_size),),
                           outputs=posterior)
        decoder = Endpoint("decoder", inputs=(Tensor("z", "latent", shape, description=(
            f"latent map ({size}x{size}x{c}); z ~ N(0, I) is the KL prior, latent diffusion "
            f"samples scaling_factor x z = {self.scaling_factor:g} z")),), outputs=(picture,))
        reconstruct = Endpoint("reconstruct",
                               inputs=(image("image", self.channels, self.image_size),),
                               outputs=(Tensor("latent", "tensor", shape, description=(
                                   "the posterior mean the reconstruction decodes (what a "
                                   "latent-diffusion model or a codec stores)")), recon))
        return ModelCard(task="variational-autoencoder",
                         summary=f"encodes images into {size}x{size}x{c} latent maps (f = "
                                 f"{self.image_size // size}, scaling_factor "
                                 f"{self.scaling_factor:g}) and decodes them back",
                         endpoints=(encoder, decoder, reconstruct),
                         references=docstring_references(type(self)))


@register_model(AutoencoderKL, tiny=KL_TINY)
def vae_kl_f8(**overrides):
    """Stable Diffusion's KL-f8 autoencoder (256x256 -> 32x32x4; diffusers AutoencoderKL)."""
    return AutoencoderKL(**overrides)
