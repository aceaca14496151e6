"""The one adversarial `train_step` shared by every GAN in the zoo.

`AdversarialModel` runs `d_steps` discriminator (critic) updates and one
generator update per batch, each with its own optimizer, and tracks every loss
term with a Keras `Mean` metric. Subclasses only supply networks and loss terms:

- `generate(data, training)` -> `fakes`: every generator output the losses need
  (a tensor or a dict), computed from one batch;
- `discriminator_loss(data, fakes, training)` -> `(loss, logs)`, `fakes` detached;
- `generator_loss(data, fakes, training)` -> `(loss, logs)`; the loss may depend
  on the generators only through `fakes`;
- optionally `generator_networks` / `discriminator_networks` (several of each).

One forward pass of the generators per batch, as the authors' PyTorch loops do
(pix2pix, CycleGAN, the DCGAN example): `fakes = generate(batch)` runs once under
`kzoo.training.vjp`; the discriminator update sees them with gradients stopped;
the generator update backpropagates its loss through those same activations
(`minimize_through`), calling the discriminator again on the non-detached fakes.
The order is the discriminator first, then the generator through the updated
discriminator (pix2pix, DCGAN, SRGAN), or with `generator_first = True` the
generator first, then the discriminators on the (pooled) fakes of the same
forward pass (CycleGAN's `optimize_parameters`). Models whose algorithm draws
fresh noise for the generator step set `share_generator_pass = False`
(WGAN-GP, Gulrajani et al., Algorithm 1): the generator update then runs
`generate` again.

The training base (`kzoo.training.TrainingModel`) takes care of the traps: two
optimizers (`compile(g_optimizer=..., d_optimizer=...)`, each built on its own
player's variables at compile time, so checkpoints restore exactly), loss
scaling for tf.distribute replicas and `mixed_float16`, and the model-owned,
checkpointed, per-replica noise stream. Sub-networks are always called with
`training=...` passed on, and everything is traceable, so
`compile(jit_compile=True)` works.

When `d_steps > 1` (WGAN-GP's n_critic), each batch holds `d_steps` minibatches:
critic update i uses the i-th with its own fakes, as in Gulrajani et al.,
Algorithm 1; the generator update follows the last one.

On JAX the same step runs statelessly (`kzoo.training.StepState`): `vjp` is
`jax.vjp` through the generators, and both optimizers' states are threaded.
"""

from __future__ import annotations

import functools

import keras

from kzoo.training import TrainingModel, minimize_through, split_batch, vjp


def detach(fakes):
    """`fakes` (a tensor or a nested structure) with gradients stopped."""
    return keras.tree.map_structure(keras.ops.stop_gradient, fakes)


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
    share_generator_pass = True  # the generator update reuses the discriminator step's fakes
    generator_first = False  # update the generator before the discriminator

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

    def generate(self, data, training):
        """Return the generators' outputs for batch `data` (subclasses override)."""
        raise TypeError(f"{type(self).__name__} must define generate")

    def discriminator_loss(self, data, fakes, training):
        """Return `(loss, logs)` for the discriminator update (subclasses override)."""
        raise TypeError(f"{type(self).__name__} must define discriminator_loss")

    def generator_loss(self, data, fakes, training):
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

    def _discriminator_update(self, chunk, fakes):
        d_loss = functools.partial(self.discriminator_loss, chunk, detach(fakes), training=True)
        return self.optimize(d_loss, "d_optimizer")

    def train_step(self, data):
        logs = {}
        chunks = split_batch(data, self.d_steps)
        for chunk in chunks[:-1]:  # n_critic > 1: each critic step on its own minibatch and fakes
            logs.update(self._discriminator_update(chunk, self.generate(chunk, training=True)))
        chunk = chunks[-1]
        if not self.share_generator_pass:
            logs.update(self._discriminator_update(chunk, self.generate(chunk, training=True)))
            g_loss = lambda: self.generator_loss(chunk, self.generate(chunk, training=True),  # noqa: E731
                                                 training=True)
            logs.update(self.optimize(g_loss, "g_optimizer"))
            return self.track(logs)
        # One generator forward pass, shared by both updates.
        fakes, pullback = vjp(lambda: self.generate(chunk, training=True), self.generator_variables)
        g_loss = functools.partial(self.generator_loss, chunk, training=True)
        if not self.generator_first:
            logs.update(self._discriminator_update(chunk, fakes))
        logs.update(minimize_through(self.g_optimizer, self.generator_variables, pullback, fakes,
                                     g_loss))
        if self.generator_first:
            logs.update(self._discriminator_update(chunk, fakes))
        return self.track(logs)

    def test_step(self, data):
        fakes = self.generate(data, training=False)
        logs = {}
        logs.update(self.discriminator_loss(data, fakes, training=False)[1])
        logs.update(self.generator_loss(data, fakes, training=False)[1])
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
