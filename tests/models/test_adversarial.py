"""The shared adversarial train_step: distribution, mixed precision, XLA, randomness."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kzoo.models.adversarial import AdversarialModel
from kzoo.models.dcgan import DCGAN
from kzoo.recipes.runner import make_strategy
from tests.helpers import compile_adam


class Quadratic(AdversarialModel):
    """A deterministic two-player model whose gradients are known in closed form."""

    def __init__(self, **kwargs):
        g = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")])
        d = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")])
        super().__init__(generator=g, discriminator=d, **kwargs)

    def discriminator_loss(self, data, training):
        loss = keras.ops.mean(keras.ops.square(self.discriminator(data, training=training)))
        return loss, {"d_loss": loss}

    def generator_loss(self, data, training):
        loss = keras.ops.mean(keras.ops.square(self.generator(data, training=training)))
        return loss, {"g_loss": loss}


def _sgd_step(strategy, x):
    with strategy.scope():
        model = Quadratic()
        model.compile(g_optimizer=keras.optimizers.SGD(0.1), d_optimizer=keras.optimizers.SGD(0.1))
    model.fit(x, batch_size=len(x), epochs=1, verbose=0, shuffle=False)
    return model.generator.get_weights()[0], model.discriminator.get_weights()[0]


def test_mirrored_update_equals_global_batch_update():
    """Per-replica means / replicas, summed by the optimizer == the global-batch gradient."""
    assert len(tf.config.list_logical_devices("CPU")) == 2, "conftest splits the CPU in two"
    x = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5], [-2.0, 1.0]], "float32")
    single = _sgd_step(tf.distribute.get_strategy(), x)
    mirrored = _sgd_step(make_strategy("mirrored"), x)
    for a, b in zip(single, mirrored):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    # and the update is the analytic one: w -= lr * 2 * mean(x x^T) w
    w = np.ones((2, 1))
    expected = w - 0.1 * 2 * (x.T @ x / len(x)) @ w
    np.testing.assert_allclose(single[0], expected, rtol=1e-5)


def test_dcgan_fits_under_mirrored_strategy_and_replicas_draw_different_noise():
    strategy = make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = compile_adam(DCGAN(image_size=16, channels=1, latent_dim=8, width=8, seed=0))
    w0 = model.generator.get_weights()
    model.fit(model.sample_batch(8, rng=0), batch_size=8, epochs=1, verbose=0)
    assert any(not np.allclose(a, b) for a, b in zip(w0, model.generator.get_weights()))

    @tf.function
    def draw():
        return strategy.run(lambda: model.normal((3,)))

    per_replica = strategy.experimental_local_results(draw())
    assert not np.allclose(per_replica[0], per_replica[1])


def test_separate_optimizers_required():
    opt = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="separate"):
        DCGAN(image_size=8, channels=1, latent_dim=4, width=4).compile(g_optimizer=opt, d_optimizer=opt)


def test_sub_networks_run_in_training_mode():
    """Batch-norm moving statistics move during fit: the step calls networks with training=True."""
    model = compile_adam(DCGAN(image_size=16, channels=1, latent_dim=8, width=8, seed=0))
    bn = model.discriminator.get_layer("down1_norm")
    before = bn.moving_mean.numpy().copy()
    model.fit(model.sample_batch(4, rng=0), batch_size=4, epochs=1, verbose=0)
    assert not np.allclose(before, bn.moving_mean.numpy())


def test_optimizer_state_is_saved_with_the_weights(tmp_path):
    model = compile_adam(DCGAN(image_size=16, channels=1, latent_dim=8, width=8, seed=0))
    model.fit(model.sample_batch(4, rng=0), batch_size=4, epochs=1, verbose=0)
    model.save_weights(tmp_path / "w.weights.h5")
    other = compile_adam(DCGAN(image_size=16, channels=1, latent_dim=8, width=8, seed=1))
    other.load_weights(tmp_path / "w.weights.h5")
    assert int(other.d_optimizer.iterations) == int(model.d_optimizer.iterations) == 1
    for a, b in zip(model.d_optimizer.variables, other.d_optimizer.variables):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.seed_generator.state, other.seed_generator.state)
