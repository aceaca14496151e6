"""The one adversarial `train_step` shared by every GAN in the zoo.

`AdversarialModel` runs `d_steps` discriminator (critic) updates followed by one
generator update per batch, each with its own optimizer, and tracks every loss
term with a Keras `Mean` metric. Subclasses only supply networks and loss terms:

- `discriminator_loss(data, training)` -> `(loss, logs)`
- `generator_loss(data, training)` -> `(loss, logs)`
- optionally `generator_networks` / `discriminator_networks` (several of each).

The training base (`kzoo.training.TrainingModel`) takes care of the traps: two
optimizers (`compile(g_optimizer=..., d_optimizer=...)`, each built on its own
player's variables at compile time, so checkpoints restore exactly), loss
scaling for tf.distribute replicas and `mixed_float16`, and the model-owned,
checkpointed, per-replica noise stream. Sub-networks are always called with
`training=...` passed on, and everything is traceable, so
`compile(jit_compile=True)` works.

When `d_steps > 1` (WGAN-GP's n_critic), each batch holds `d_steps` minibatches:
critic update i uses the i-th, as in Gulrajani et al., Algorithm 1.
"""

from __future__ import annotations

import functools

from kzoo.training import TrainingModel, split_batch


class AdversarialModel(TrainingModel):
    """Two-player model with an overridden `train_step` for GANs.

    Args:
        generator: `keras.Model`. The network used for inference (`model(x)` calls it).
        discriminator: `keras.Model`. The discriminator or critic.
        d_steps: int. Discriminator updates per generator update (n_critic).
        seed: int or None. Seed of the model-owned noise generator.

    Subclasses name the loss terms they report in `loss_names`; each gets a
    `keras.metrics.Mean` tracker.

    Example:
    >>> import keras
    >>> from kzoo.models.dcgan import DCGAN
    >>> model = DCGAN(image_size=8, channels=1, latent_dim=4, width=4, seed=0)
    >>> model.compile(g_optimizer=keras.optimizers.Adam(2e-4), d_optimizer=keras.optimizers.Adam(2e-4))
    >>> sorted(model.fit(model.sample_batch(4), verbose=0).history)
    ['d_loss', 'g_loss']
    """

    loss_names: tuple[str, ...] = ("d_loss", "g_loss")
    optimizer_names = ("g_optimizer", "d_optimizer")

    def __init__(self, *, generator, discriminator, d_steps=1, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if d_steps < 1:
            raise ValueError(f"d_steps must be >= 1, got {d_steps}")
        self.generator = generator
        self.discriminator = discriminator
        self.d_steps = int(d_steps)
        self.built = True

    # --- what subclasses provide ------------------------------------------------
    @property
    def generator_networks(self):
        return [self.generator]

    @property
    def discriminator_networks(self):
        return [self.discriminator]

    def discriminator_loss(self, data, training):
        """Return `(loss, logs)` for the discriminator update (subclasses override)."""
        raise TypeError(f"{type(self).__name__} must define discriminator_loss")

    def generator_loss(self, data, training):
        """Return `(loss, logs)` for the generator update (subclasses override)."""
        raise TypeError(f"{type(self).__name__} must define generator_loss")

    # --- shared machinery --------------------------------------------------------
    @property
    def generator_variables(self):
        return [v for net in self.generator_networks for v in net.trainable_variables]

    @property
    def discriminator_variables(self):
        return [v for net in self.discriminator_networks for v in net.trainable_variables]

    def optimizer_variables(self, name):
        return self.generator_variables if name == "g_optimizer" else self.discriminator_variables

    def inference_parts(self):
        """The networks a deployment needs, by endpoint name (export and hub read this)."""
        return {"generator": self.generator}

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def train_step(self, data):
        logs = {}
        for chunk in split_batch(data, self.d_steps):
            d_loss = functools.partial(self.discriminator_loss, chunk, training=True)
            logs.update(self.optimize(d_loss, "d_optimizer"))
        g_loss = functools.partial(self.generator_loss, chunk, training=True)
        logs.update(self.optimize(g_loss, "g_optimizer"))
        return self.track(logs)

    def test_step(self, data):
        logs = {}
        logs.update(self.discriminator_loss(data, training=False)[1])
        logs.update(self.generator_loss(data, training=False)[1])
        return self.track(logs)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "d_steps": self.d_steps,
                "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def card(self):
        """The model card (`kzoo.card.ModelCard`): one `generator` endpoint, z (+ label) -> image.

        The default for single-generator GANs whose generator takes a latent
        `z` of `latent_dim` (and, with `num_classes`, an int `label`) and emits
        an `image_size` x `image_size` x `channels` image in [-1, 1] from a tanh;
        image-to-image GANs override it.
        """
        from kzoo.card import Endpoint, ModelCard, docstring_references, image, label, latent

        inputs = (latent("z", self.latent_dim),)
        if getattr(self, "num_classes", None):
            inputs += (label("label", self.num_classes),)
            task, summary = ("class-conditional-image-generation",
                             "draws new images of a requested class from random latent vectors "
                             "and a class label")
        else:
            task, summary = ("unconditional-image-generation",
                             "draws new images from random latent vectors")
        generator = Endpoint("generator", inputs=inputs,
                             outputs=(image("image", self.channels, self.image_size),))
        return ModelCard(task=task, summary=summary, endpoints=(generator,),
                         references=docstring_references(type(self)))
