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


class SeededModel(keras.Model):
    """A model with a checkpointed, replica-aware noise `SeedGenerator` (`self.seed_generator`).

    Args:
        seed: int or None. Seed of the model-owned generator.
    """

    loss_names: tuple[str, ...] = ()
    _SEED_KEY = "noise_seed_state"

    def __init__(self, *, seed=None, **kwargs):
        super().__init__(**kwargs)
        from kzoo.models.adversarial import ReplicaSeedGenerator

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

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[self._SEED_KEY] = self.seed_generator.state.numpy()

    def load_own_variables(self, store):
        keys = list(store.keys())
        if self._SEED_KEY in keys:
            self.seed_generator.state.assign(store[self._SEED_KEY])
        super().load_own_variables({k: store[k] for k in keys if k != self._SEED_KEY})
