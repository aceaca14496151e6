"""Pieces of a custom `train_step` shared by the non-adversarial models (VAE, segmentation).

- `minimize`: one optimizer update on a loss that is a per-replica mean. Like the
  adversarial core (`kzoo.models.adversarial`), it divides the loss by the number of
  tf.distribute replicas before differentiating (the optimizer sums gradients over
  replicas, so the update equals that of the global-batch mean) and scales it with
  `optimizer.scale_loss` (a `LossScaleOptimizer` under `mixed_float16`, which
  `keras.Model.compile` installs by itself; identity otherwise).
- `SeededModel`: a `keras.Model` that owns a `SeedGenerator` for its randomness and
  saves the generator's state with its weights (Keras does not), so a run resumed
  from a checkpoint continues the same random stream; it tracks each loss term it
  reports (`loss_names`) with a `keras.metrics.Mean`.
"""

from __future__ import annotations

import keras
from keras import ops

from kzoo.losses import scale_for_replicas


def minimize(optimizer, variables, loss_fn):
    """Run `loss_fn() -> (loss, logs)` under a tape and apply one update; return `logs`."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss, logs = loss_fn()
        scaled = optimizer.scale_loss(scale_for_replicas(loss))
    grads = tape.gradient(scaled, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return logs


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


class SeedStateMixin:
    """Saves a model's `seed_generator` state with its weights (mix into a keras.Model).

    Keras does not save a `SeedGenerator`'s state; with this mixin a run resumed
    from a checkpoint continues the same noise stream.
    """

    _SEED_KEY = "noise_seed_state"

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[self._SEED_KEY] = self.seed_generator.state.numpy()

    def load_own_variables(self, store):
        keys = list(store.keys())
        if self._SEED_KEY in keys:
            self.seed_generator.state.assign(store[self._SEED_KEY])
        super().load_own_variables({k: store[k] for k in keys if k != self._SEED_KEY})


class SeededModel(SeedStateMixin, keras.Model):
    """A model with a checkpointed, replica-aware noise `SeedGenerator` (`self.seed_generator`).

    Args:
        seed: int or None. Seed of the model-owned generator.
    """

    loss_names: tuple[str, ...] = ()

    def __init__(self, *, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = ReplicaSeedGenerator(seed, name="noise_seed")
        self.trackers = {n: keras.metrics.Mean(name=n) for n in self.loss_names}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def track(self, logs):
        """Update the trackers with `logs` and return every tracked mean."""
        for name, value in logs.items():
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}

    def normal(self, shape, dtype="float32"):
        return keras.random.normal(shape, dtype=dtype, seed=self.seed_generator)
