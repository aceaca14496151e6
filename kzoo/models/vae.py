"""Variational auto-encoder (Kingma & Welling, 2014) with convolutional networks."""

from __future__ import annotations

import math

import keras
from keras import layers, ops

from kzoo import losses
from kzoo.options import takes
from kzoo.options.vae import VAE_OPTIONS
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
