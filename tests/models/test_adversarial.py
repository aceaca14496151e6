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

    def __init__(self, g_units=1, **kwargs):
        g = keras.Sequential([keras.Input((2,)),
                              keras.layers.Dense(g_units, use_bias=False, kernel_initializer="ones")])
        d = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")])
        super().__init__(generator=g, discriminator=d, **kwargs)

    def generate(self, data, training):
        return self.generator(data, training=training)

    def discriminator_loss(self, data, fakes, training):
        loss = keras.ops.mean(keras.ops.square(self.discriminator(data, training=training)))
        return loss, {"d_loss": loss}

    def generator_loss(self, data, fakes, training):
        loss = keras.ops.mean(keras.ops.square(fakes))
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


def _count_calls(network, counts, key):
    call = network.call

    def counted(*args, **kwargs):
        counts[key] = counts.get(key, 0) + 1
        return call(*args, **kwargs)

    network.call = counted


@pytest.mark.parametrize("name, expected", [
    ("dcgan", {"generator": 1}),
    ("pix2pix", {"generator": 1}),
    ("srgan", {"generator": 1}),
    # translations, cycle reconstructions and identity maps: each generator runs three
    # times inside the one forward pass, never again for the generator update
    ("cyclegan", {"generator_ab": 3, "generator_ba": 3}),
    # Gulrajani et al., Algorithm 1: n_critic critic steps with their own z, then fresh z for G
    ("wgan_gp", {"generator": 3}),
])
def test_generators_run_once_per_step(name, expected):
    from kzoo.zoo import create_model, tiny_overrides

    overrides = {**tiny_overrides(name), "seed": 0}
    if name == "wgan_gp":
        overrides["n_critic"] = 2
    model = create_model(name, **overrides)
    model.compile(g_optimizer=keras.optimizers.SGD(0.01), d_optimizer=keras.optimizers.SGD(0.01),
                  run_eagerly=True)
    counts = {}
    for key in expected:
        _count_calls(getattr(model, key), counts, key)
    model.train_step(tf.nest.map_structure(tf.convert_to_tensor, model.sample_batch(2, rng=0)))
    assert counts == expected


@pytest.mark.parametrize("frozen", ["g_optimizer", "d_optimizer"])
def test_each_update_changes_only_its_own_player(frozen):
    """With one player's learning rate at 0, the step leaves that player's weights as they were."""
    model = DCGAN(image_size=16, channels=1, latent_dim=8, width=8, seed=0)
    rates = {"g_optimizer": 0.1, "d_optimizer": 0.1, frozen: 0.0}
    model.compile(**{k: keras.optimizers.SGD(lr) for k, lr in rates.items()})
    g0 = [v.numpy().copy() for v in model.generator_variables]
    d0 = [v.numpy().copy() for v in model.discriminator_variables]
    model.fit(model.sample_batch(4, rng=0), batch_size=4, epochs=1, verbose=0)
    g_same = all(np.array_equal(a, v.numpy()) for a, v in zip(g0, model.generator_variables))
    d_same = all(np.array_equal(a, v.numpy()) for a, v in zip(d0, model.discriminator_variables))
    assert (g_same, d_same) == ((True, False) if frozen == "g_optimizer" else (False, True))


class LinearPair(Quadratic):
    """G(x) = x W_g (2 -> 2), D(x) = x w_d (2 -> 1); D's loss ignores the fakes, G's is mean D(G(x))."""

    def __init__(self, **kwargs):
        super().__init__(g_units=2, **kwargs)

    def generator_loss(self, data, fakes, training):
        loss = keras.ops.mean(self.discriminator(fakes, training=training))
        return loss, {"g_loss": loss}


@pytest.mark.parametrize("generator_first", [False, True])
def test_update_order(generator_first):
    """D first (pix2pix, DCGAN): G's loss goes through the updated D; G first (CycleGAN): the old D."""
    x = np.array([[1.0, 2.0]], "float32")
    model = LinearPair()
    model.generator_first = generator_first
    model.compile(g_optimizer=keras.optimizers.SGD(0.1), d_optimizer=keras.optimizers.SGD(0.1))
    model.fit(x, batch_size=1, epochs=1, verbose=0, shuffle=False)
    w_d = np.ones(2) - 0.1 * 2 * 3.0 * x[0]  # d/dw_d (w_d . x)^2 = 2 (w_d . x) x, w_d . x = 3
    np.testing.assert_allclose(model.discriminator.get_weights()[0][:, 0], w_d, rtol=1e-6)
    seen = np.ones(2) if generator_first else w_d  # d/dW_g w_d . (x W_g) = x w_d^T
    np.testing.assert_allclose(model.generator.get_weights()[0], np.ones((2, 2)) - 0.1 * np.outer(x[0], seen),
                               rtol=1e-6)
