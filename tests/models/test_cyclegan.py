import keras
import numpy as np
import pytest

from kzoo.layers import ReflectionPadding2D, receptive_field
from kzoo.models.cyclegan import CycleGAN, LinearDecayAfterHalf, resnet_generator
from tests.helpers import run_model_saving_test, run_train_step_test

TINY = dict(image_size=16, width=4, num_blocks=1, n_layers=2, pool_size=4)


def _batch(n=2, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(np.tanh(rng.standard_normal((n, size, size, 3))).astype("float32") for _ in "ab")


def _blocks(g):
    return sum(isinstance(l, keras.layers.Add) for l in g.layers)


@pytest.mark.parametrize("size", [16, 24, 40])
def test_generator_shapes_at_several_sizes(size):
    g = resnet_generator(width=4, num_blocks=2)
    out = g(np.zeros((2, size, size, 3), "float32"))
    assert out.shape == (2, size, size, 3)


def test_paper_architecture():
    """Zhu et al.: c7s1-64,d128,d256,R256 x9,u128,u64,c7s1-3 at 256 (6 blocks at 128);
    reflection padding; instance norm without affine parameters; 70x70 PatchGANs."""
    model = CycleGAN()
    g = model.generator_ab
    assert _blocks(g) == 9 and _blocks(CycleGAN(image_size=128).generator_ba) == 6
    assert [g.get_layer(n).filters for n in ("c7s1_conv", "d1_conv", "d2_conv", "u1_conv", "u0_conv")] \
        == [64, 128, 256, 128, 64]
    assert g.get_layer("c7s1_conv").kernel_size == (7, 7) and g.get_layer("out_conv").kernel_size == (7, 7)
    assert sum(isinstance(l, ReflectionPadding2D) for l in g.layers) == 2 + 2 * 9
    norms = [l for l in g.layers if isinstance(l, keras.layers.GroupNormalization)]
    assert norms and all(not l.weights for l in norms)  # no affine parameters
    for d in model.discriminator_networks:
        assert receptive_field(d) == 70
        assert not any(isinstance(l, keras.layers.BatchNormalization) for l in d.layers)
    assert set(model.inference_parts()) == {"generator_ab", "generator_ba"}
    assert model.pool_a.images.shape == (50, 256, 256, 3)


def test_losses_follow_the_paper():
    model = CycleGAN(**TINY, seed=0)
    a, b = _batch()
    g_loss, logs = model.generator_loss((a, b), training=False)
    np.testing.assert_allclose(
        g_loss, logs["g_gan"] + 10.0 * logs["g_cycle"] + 5.0 * logs["g_identity"], rtol=1e-5)
    cyc = np.abs(model.generator_ba(model.generator_ab(a)) - a).mean() + \
        np.abs(model.generator_ab(model.generator_ba(b)) - b).mean()
    np.testing.assert_allclose(logs["g_cycle"], cyc, rtol=1e-4)
    d_loss, d_logs = model.discriminator_loss((a, b), training=False)
    real = np.asarray(model.discriminator_a(a))
    fake = np.asarray(model.discriminator_a(model.generator_ba(b)))
    np.testing.assert_allclose(d_logs["d_a"], 0.5 * (((real - 1) ** 2).mean() + (fake ** 2).mean()),
                               rtol=1e-4)
    assert int(model.pool_a.count.numpy()) == 0  # evaluation never touches the pools


def test_train_step_changes_weights_and_fills_the_pools():
    model = CycleGAN(**TINY, seed=0)
    run_train_step_test(model, _batch())
    assert int(model.pool_a.count.numpy()) == 2 and int(model.pool_b.count.numpy()) == 2
    assert np.abs(model.pool_b.images.numpy()[:2]).sum() > 0


def test_linear_decay_over_the_second_half():
    lr = LinearDecayAfterHalf(2e-4, total_steps=100)
    values = [float(lr(s)) for s in (0, 49, 50, 75, 99, 100, 150)]
    np.testing.assert_allclose(values, [2e-4, 2e-4, 2e-4, 1e-4, 4e-6, 0, 0], atol=1e-9)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(lr))
    assert again.get_config() == lr.get_config()
    opt = keras.optimizers.Adam(lr)  # driven by the optimizer's iterations
    opt.iterations.assign(80)
    np.testing.assert_allclose(float(opt.learning_rate), 2e-4 * 0.4, rtol=1e-5)


def test_save_load_keeps_pools(tmp_path):
    model = CycleGAN(**TINY, seed=0)
    model.pool_a(_batch()[0], seed_generator=model.seed_generator)
    model.pool_b(_batch(seed=1)[1], seed_generator=model.seed_generator)
    loaded = run_model_saving_test(model, _batch()[0], tmp_path)
    assert int(loaded.pool_a.count.numpy()) == 2
    np.testing.assert_array_equal(loaded.pool_b.images.numpy(), model.pool_b.images.numpy())
    np.testing.assert_allclose(loaded.generator_ba(_batch()[1]), model.generator_ba(_batch()[1]), atol=1e-6)


def test_fits_under_mirrored_strategy():
    """The pools are updated from the replica context (variables aggregated from replica 0)."""
    from kzoo.recipes.runner import make_strategy
    from tests.helpers import compile_adam

    with make_strategy("mirrored").scope():
        model = compile_adam(CycleGAN(**TINY, seed=0))
    a, b = _batch(n=4)
    logs = model.fit(a, b, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(logs["g_loss"][0]) and int(model.pool_a.count.numpy()) > 0
