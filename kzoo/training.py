"""The one training base of the zoo: `TrainingModel`, and the pieces of a custom `train_step`.

Every trainable family (the GANs through `kzoo.models.adversarial.AdversarialModel`,
`VAE`, `DDPM`, and U-Net / DeepLabV3+ through `kzoo.models.segmentation`) derives
from `TrainingModel` and keeps only its loss terms and steps. The base owns:

- **randomness**: a model-owned `ReplicaSeedGenerator` (`self.seed_generator`, with
  the `normal` / `uniform` / `randint` helpers), offset per tf.distribute replica,
  its state saved with the weights (Keras does not save it), so a run resumed from
  a checkpoint continues the same noise stream; no Python or NumPy randomness
  inside a step, so steps trace under `jit_compile=True`.
- **trackers**: one `keras.metrics.Mean` per name in `loss_names`; `track(logs)`
  updates them and returns every metric's result, made reducible under
  MultiWorkerMirroredStrategy (`per_replica_logs`).
- **optimizers**: one or several, named by `optimizer_names`
  (`compile(g_optimizer=..., d_optimizer=...)` for a GAN, `compile(optimizer=...)`
  otherwise), each wrapped in `LossScaleOptimizer` under `mixed_float16` and built
  on its own variables at compile time, so checkpoints restore exactly; saved and
  restored by `get_compile_config` / `compile_from_config`.
- **updates**: `minimize(optimizer, variables, loss_fn)`, the only backend-specific
  seam. A loss term is a per-replica mean; `minimize` divides it by the number of
  tf.distribute replicas before differentiating (the optimizer sums gradients over
  replicas, so the update equals that of the global-batch mean) and scales it with
  `optimizer.scale_loss` (loss scaling under `mixed_float16`, identity otherwise).
  Only TensorFlow is implemented (GradientTape); another backend registers its own
  implementation in `MINIMIZERS` (JAX: a stateless step over explicit optimizer,
  metric and seed state, DESIGN.md "Wave 2").

Also here: `unpack` and `split_batch` for batches, `random_images` for the
`sample_batch(batch_size, rng)` every family declares (a random training batch
of the right structure, which the contract tests run over the registry), and
`steps_per_epoch`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from kzoo.errors import KzooError
from kzoo.losses import scale_for_replicas


# --- the backend seam ----------------------------------------------------------------

def _tensorflow_minimize(optimizer, variables, loss_fn):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss, logs = loss_fn()
        scaled = optimizer.scale_loss(scale_for_replicas(loss))
    grads = tape.gradient(scaled, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return logs


MINIMIZERS = {"tensorflow": _tensorflow_minimize}


def minimize(optimizer, variables, loss_fn):
    """One optimizer update on `variables`; return the logs of `loss_fn`.

    Args:
        optimizer: `keras.optimizers.Optimizer`, built on `variables` or buildable.
        variables: list of trainable variables to update.
        loss_fn: callable `() -> (loss, logs)`, `loss` a per-replica mean scalar.

    Returns:
        `logs`, as `loss_fn` returned them.

    Raises:
        KzooError: the Keras backend has no implementation.

    Example:
    >>> w = keras.Variable(3.0)
    >>> logs = minimize(keras.optimizers.SGD(0.5), [w], lambda: (w * w, {"w2": w * w}))
    >>> float(logs["w2"]), float(w.numpy())
    (9.0, 0.0)
    """
    backend = keras.backend.backend()
    if backend not in MINIMIZERS:
        raise KzooError(f"kzoo trains with the {', '.join(MINIMIZERS)} backend, "
                        f"not {backend!r} (set KERAS_BACKEND)")
    return MINIMIZERS[backend](optimizer, variables, loss_fn)


# --- batches and logs -------------------------------------------------------------------

def unpack(data):
    """(inputs, targets) from a batch that is `inputs` or `(inputs, targets)`.

    Example:
    >>> unpack((1, 2)), unpack([3]), unpack(4)
    ((1, 2), (3, None), (4, None))
    """
    if isinstance(data, (tuple, list)):
        return data[0], (data[1] if len(data) > 1 else None)
    return data, None


def split_batch(data, parts):
    """Split every tensor of a (nested) batch into `parts` equal chunks along axis 0.

    Example:
    >>> [keras.ops.convert_to_numpy(c).tolist() for c in split_batch(keras.ops.arange(6), 3)]
    [[0, 1], [2, 3], [4, 5]]
    """
    if parts == 1:
        return [data]
    flat = keras.tree.flatten(data)
    chunks = [ops.split(t, parts, axis=0) for t in flat]
    return [keras.tree.pack_sequence_as(data, [c[i] for c in chunks]) for i in range(parts)]


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


def steps_per_epoch(num_examples, batch_size, *, minibatches=1, requested=0):
    """Optimizer steps in one epoch: `requested`, or one pass over the data (at least 1).

    Args:
        num_examples: int. Examples in the training set.
        batch_size: int. Global batch size of one minibatch.
        minibatches: int. Minibatches one step consumes (a GAN's `d_steps`).
        requested: int. Steps asked for explicitly; 0 means one pass.

    Example:
    >>> steps_per_epoch(1000, 64), steps_per_epoch(1000, 64, minibatches=5), steps_per_epoch(10, 64)
    (15, 3, 1)
    >>> steps_per_epoch(1000, 64, requested=7)
    7
    """
    return requested or max(1, num_examples // (batch_size * minibatches))


def random_images(rng, batch_size, height, width, channels):
    """Random images in [-1, 1] (tanh of N(0, 1) noise): the zoo's image range, for sample batches.

    Example:
    >>> x = random_images(np.random.default_rng(0), 2, 4, 4, 3)
    >>> x.shape, x.dtype, bool(np.abs(x).max() < 1)
    ((2, 4, 4, 3), dtype('float32'), True)
    """
    rng = np.random.default_rng(rng)
    return np.tanh(rng.standard_normal((batch_size, height, width, channels))).astype("float32")


# --- randomness ---------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="kzoo")
class ReplicaSeedGenerator(keras.random.SeedGenerator):
    """A `SeedGenerator` whose seeds differ between tf.distribute replicas.

    The state is kept in sync (updated once, from the first replica); each replica
    offsets the seed it hands out by its replica id.
    """

    def next(self, ordered=True):
        seed = super().next(ordered=ordered)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            ctx = tf.distribute.get_replica_context()
            if ctx is not None and tf.distribute.get_strategy().num_replicas_in_sync > 1:
                rid = ops.cast(ctx.replica_id_in_sync_group, seed.dtype)
                seed = seed + ops.stack([rid * 7919, ops.zeros_like(rid)])
        return seed


# --- the base -----------------------------------------------------------------------------

class TrainingModel(keras.Model):
    """A `keras.Model` with an overridden `train_step`: seeds, trackers, optimizers, updates.

    Subclasses declare `loss_names` (each gets a `keras.metrics.Mean` tracker) and,
    with several optimizers, `optimizer_names` and `optimizer_variables(name)`;
    their `train_step` calls `self.optimize(loss_fn, name)` and returns
    `self.track(logs)`. The seed generator's state is saved with the weights
    (under `noise_seed_state`).

    Args:
        seed: int or None. Seed of the model-owned noise generator.
        **kwargs: `keras.Model` arguments (`name`, `trainable`).

    Example:
    >>> class Line(TrainingModel):
    ...     loss_names = ("loss",)
    ...     def __init__(self, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.net = keras.layers.Dense(1)
    ...     def call(self, x):
    ...         return self.net(x)
    ...     def train_step(self, data):
    ...         x, y = unpack(data)
    ...         def loss_fn():
    ...             loss = keras.ops.mean(keras.ops.square(self(x) - y))
    ...             return loss, {"loss": loss}
    ...         return self.track(self.optimize(loss_fn))
    >>> model = Line(seed=0)
    >>> _ = model(keras.ops.zeros((1, 2)))
    >>> model.compile(optimizer=keras.optimizers.SGD(0.1))
    >>> history = model.fit(keras.ops.ones((4, 2)), keras.ops.ones((4, 1)), verbose=0)
    >>> sorted(history.history)
    ['loss']
    """

    loss_names: tuple[str, ...] = ()
    optimizer_names: tuple[str, ...] = ("optimizer",)

    _SEED_KEY = "noise_seed_state"

    def __init__(self, *, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = ReplicaSeedGenerator(seed, name="noise_seed")
        self.trackers = {n: keras.metrics.Mean(name=n) for n in self.loss_names}
        for name in self.optimizer_names:
            if name != "optimizer":  # keras.Model owns that one
                setattr(self, name, None)

    # --- randomness ---------------------------------------------------------------
    def normal(self, shape, dtype="float32"):
        """N(0, 1) noise from the model's seed generator."""
        return keras.random.normal(shape, dtype=dtype, seed=self.seed_generator)

    def uniform(self, shape, dtype="float32"):
        """U(0, 1) noise from the model's seed generator."""
        return keras.random.uniform(shape, dtype=dtype, seed=self.seed_generator)

    def randint(self, shape, minval, maxval, dtype="int32"):
        """Integers uniform in [minval, maxval) from the model's seed generator."""
        return keras.random.randint(shape, minval, maxval, dtype=dtype, seed=self.seed_generator)

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[self._SEED_KEY] = keras.ops.convert_to_numpy(self.seed_generator.state.value)

    def load_own_variables(self, store):
        keys = list(store.keys())
        if self._SEED_KEY in keys:
            self.seed_generator.state.assign(store[self._SEED_KEY])
        super().load_own_variables({k: store[k] for k in keys if k != self._SEED_KEY})

    # --- trackers -------------------------------------------------------------------
    @property
    def metrics(self):
        return list(self.trackers.values())

    def track(self, logs):
        """Update the trackers with `logs`; return every metric's result (per replica).

        Names in `logs` without a tracker (e.g. intermediate tensors) are skipped.
        """
        for name, value in logs.items():
            if name in self.trackers:
                self.trackers[name].update_state(value)
        return per_replica_logs({m.name: m.result() for m in self.metrics})

    # --- optimizers -------------------------------------------------------------------
    def optimizer_variables(self, name):
        """The variables optimizer `name` updates (default: all trainable variables)."""
        return self.trainable_variables

    def default_optimizer(self, name):
        """The optimizer `compile` uses when `name` is not given (Keras' default: RMSprop)."""
        if len(self.optimizer_names) > 1:
            raise TypeError(f"{type(self).__name__}.compile needs "
                            f"{', '.join(self.optimizer_names)}; {name} is missing")
        return "rmsprop"

    def compile(self, optimizer=None, *, jit_compile=False, **kwargs):
        """Compile with one optimizer per name in `optimizer_names`.

        Args:
            optimizer: optimizer or its name (models with one optimizer).
            jit_compile: bool. Compile the step with XLA.
            **kwargs: the named optimizers (`g_optimizer=`, `d_optimizer=`), then
                other `keras.Model.compile` arguments.

        Under a `mixed_float16` dtype policy every optimizer is wrapped in
        `keras.optimizers.LossScaleOptimizer`. Each one is built on its
        `optimizer_variables` now, so a checkpoint restores its state exactly.
        """
        given = {name: kwargs.pop(name, None) for name in self.optimizer_names}
        if optimizer is not None:
            if self.optimizer_names != ("optimizer",):
                raise TypeError(f"{type(self).__name__}.compile takes "
                                f"{', '.join(self.optimizer_names)}, not optimizer")
            given["optimizer"] = optimizer
        optimizers = {}
        for name, opt in given.items():
            opt = keras.optimizers.get(opt if opt is not None else self.default_optimizer(name))
            if (keras.mixed_precision.global_policy().name == "mixed_float16"
                    and not isinstance(opt, keras.optimizers.LossScaleOptimizer)):
                opt = keras.optimizers.LossScaleOptimizer(opt)
            optimizers[name] = opt
        if len({id(o) for o in optimizers.values()}) < len(optimizers):
            raise ValueError(f"{', '.join(self.optimizer_names)} need separate optimizers")
        super().compile(optimizer=optimizers[self.optimizer_names[0]], jit_compile=jit_compile,
                        **kwargs)
        for name, opt in optimizers.items():
            setattr(self, name, opt)
            opt.build(self.optimizer_variables(name))

    def get_compile_config(self):
        if not getattr(self, "compiled", False):
            return None
        config = {name: keras.saving.serialize_keras_object(getattr(self, name))
                  for name in self.optimizer_names}
        config["jit_compile"] = bool(self.jit_compile)
        return config

    def compile_from_config(self, config):
        optimizers = {name: keras.saving.deserialize_keras_object(config[name])
                      for name in self.optimizer_names if config.get(name) is not None}
        self.compile(jit_compile=bool(config.get("jit_compile", False)), **optimizers)

    # --- updates -----------------------------------------------------------------------
    def optimize(self, loss_fn, optimizer="optimizer"):
        """One update of the optimizer named `optimizer` on its variables; return the logs."""
        return minimize(getattr(self, optimizer), self.optimizer_variables(optimizer), loss_fn)
