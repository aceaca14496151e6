"""The one adversarial `train_step` shared by every GAN in the zoo.

`AdversarialModel` runs `d_steps` discriminator (critic) updates followed by one
generator update per batch, each with its own optimizer, and tracks every loss
term with a Keras `Mean` metric. Subclasses only supply networks and loss terms:

- `discriminator_loss(data, training)` -> `(loss, logs)`
- `generator_loss(data, training)` -> `(loss, logs)`
- optionally `generator_networks` / `discriminator_networks` (several of each).

The skeleton takes care of the traps:

- **two optimizers**: `compile(g_optimizer=..., d_optimizer=...)`; both are built
  on their own variables at compile time, so checkpoints restore exactly.
- **training mode**: sub-networks are always called with `training=...` passed on.
- **tf.distribute**: loss terms are per-replica means; the skeleton divides them
  by the number of replicas before differentiating, because the optimizer sums
  gradients across replicas (so the update equals the global-batch mean).
- **mixed precision**: under a `mixed_float16` policy both optimizers are wrapped
  in `LossScaleOptimizer` and losses are scaled with `optimizer.scale_loss`.
- **randomness**: noise comes from `keras.random` driven by a `SeedGenerator`
  owned by the model (checkpointed with it), offset per replica so that replicas
  draw different noise; no Python or NumPy randomness inside the step.
- **XLA**: everything is traceable, `compile(jit_compile=True)` works.

When `d_steps > 1` (WGAN-GP's n_critic), each batch holds `d_steps` minibatches:
critic update i uses the i-th, as in Gulrajani et al., Algorithm 1.
"""

from __future__ import annotations

import keras
from keras import ops

from kzoo.training import ReplicaSeedGenerator, SeedStateMixin, minimize


def per_replica_logs(logs):
    """Make step logs reducible by Keras under MultiWorkerMirroredStrategy.

    Keras 3 reduces multi-worker logs with `strategy.reduce("MEAN", v, axis=0)`,
    which fails on the scalars every train_step returns; a length-1 vector reduces
    to the same scalar. Other strategies get the scalars unchanged.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.get_strategy()
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and \
                strategy.extended._in_multi_worker_mode():
            return {k: ops.reshape(v, (1,)) for k, v in logs.items()}
    return logs


def split_batch(data, parts):
    """Split every tensor of a (nested) batch into `parts` equal chunks along axis 0."""
    if parts == 1:
        return [data]
    flat = keras.tree.flatten(data)
    chunks = [ops.split(t, parts, axis=0) for t in flat]
    return [keras.tree.pack_sequence_as(data, [c[i] for c in chunks]) for i in range(parts)]


def unpack(data):
    """(images, labels) from a batch that is `images` or `(images, labels)`."""
    if isinstance(data, (tuple, list)):
        return data[0], (data[1] if len(data) > 1 else None)
    return data, None


class AdversarialModel(SeedStateMixin, keras.Model):
    """Two-player model with an overridden `train_step` for GANs.

    Args:
        generator: `keras.Model`. The network used for inference (`model(x)` calls it).
        discriminator: `keras.Model`. The discriminator or critic.
        d_steps: int. Discriminator updates per generator update (n_critic).
        seed: int or None. Seed of the model-owned noise generator.
        loss_names: the names of the loss terms the subclass reports; each gets
            a `keras.metrics.Mean` tracker.
    """

    loss_names: tuple[str, ...] = ("d_loss", "g_loss")

    def __init__(self, *, generator, discriminator, d_steps=1, seed=None, **kwargs):
        super().__init__(**kwargs)
        if d_steps < 1:
            raise ValueError(f"d_steps must be >= 1, got {d_steps}")
        self.generator = generator
        self.discriminator = discriminator
        self.d_steps = int(d_steps)
        self.seed = seed
        self.seed_generator = ReplicaSeedGenerator(seed, name="noise_seed")
        self.trackers = {n: keras.metrics.Mean(name=n) for n in self.loss_names}
        self.g_optimizer = None
        self.d_optimizer = None
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

    def inference_parts(self):
        """The networks a deployment needs, by endpoint name (export and hub read this)."""
        return {"generator": self.generator}

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def normal(self, shape, dtype="float32"):
        return keras.random.normal(shape, dtype=dtype, seed=self.seed_generator)

    def uniform(self, shape, dtype="float32"):
        return keras.random.uniform(shape, dtype=dtype, seed=self.seed_generator)

    def compile(self, *, g_optimizer, d_optimizer, jit_compile=False, **kwargs):
        """Compile with one optimizer per player.

        Under a `mixed_float16` dtype policy both optimizers are wrapped in
        `keras.optimizers.LossScaleOptimizer`.
        """
        if g_optimizer is d_optimizer:
            raise ValueError("the generator and discriminator need separate optimizers")
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            if not isinstance(g_optimizer, keras.optimizers.LossScaleOptimizer):
                g_optimizer = keras.optimizers.LossScaleOptimizer(g_optimizer)
            if not isinstance(d_optimizer, keras.optimizers.LossScaleOptimizer):
                d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer)
        super().compile(optimizer=g_optimizer, jit_compile=jit_compile, **kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        g_optimizer.build(self.generator_variables)
        d_optimizer.build(self.discriminator_variables)

    def get_compile_config(self):
        if self.g_optimizer is None:
            return None
        return {"g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
                "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
                "jit_compile": bool(self.jit_compile)}

    def compile_from_config(self, config):
        self.compile(g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
                     d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]),
                     jit_compile=config.get("jit_compile", False))

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _update(self, loss_fn, optimizer, variables, data):
        return minimize(optimizer, variables, lambda: loss_fn(data, training=True))

    def train_step(self, data):
        logs = {}
        for chunk in split_batch(data, self.d_steps):
            logs.update(self._update(self.discriminator_loss, self.d_optimizer,
                                     self.discriminator_variables, chunk))
        logs.update(self._update(self.generator_loss, self.g_optimizer,
                                 self.generator_variables, chunk))
        return self._track(logs)

    def test_step(self, data):
        logs = {}
        logs.update(self.discriminator_loss(data, training=False)[1])
        logs.update(self.generator_loss(data, training=False)[1])
        return self._track(logs)

    def _track(self, logs):
        for name, value in logs.items():
            self.trackers[name].update_state(value)
        return per_replica_logs({name: t.result() for name, t in self.trackers.items()})

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
