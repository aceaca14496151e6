import keras
import numpy as np
import pytest

from kzoo.layers import ReflectionPadding2D, receptive_field
from kzoo.models.cyclegan import (TINY, CycleGAN, ImageHistoryPool, LinearDecayAfterHalf, resnet_block,
                                  resnet_generator)
from tests.helpers import compile_adam


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
    fakes = model.generate((a, b), training=False)
    g_loss, logs = model.generator_loss((a, b), fakes, training=False)
    np.testing.assert_allclose(
        g_loss, logs["g_gan"] + 10.0 * logs["g_cycle"] + 5.0 * logs["g_identity"], rtol=1e-5)
    cyc = np.abs(model.generator_ba(model.generator_ab(a)) - a).mean() + \
        np.abs(model.generator_ab(model.generator_ba(b)) - b).mean()
    np.testing.assert_allclose(logs["g_cycle"], cyc, rtol=1e-4)
    d_loss, d_logs = model.discriminator_loss((a, b), fakes, training=False)
    real = np.asarray(model.discriminator_a(a))
    fake = np.asarray(model.discriminator_a(model.generator_ba(b)))
    np.testing.assert_allclose(d_logs["d_a"], 0.5 * (((real - 1) ** 2).mean() + (fake ** 2).mean()),
                               rtol=1e-4)
    assert int(model.pool_a.count.numpy()) == 0  # evaluation never touches the pools


def test_train_step_fills_the_pools():
    model = compile_adam(CycleGAN(**TINY, seed=0))
    model.fit(*_batch(), batch_size=2, epochs=1, verbose=0)
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
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert int(loaded.pool_a.count.numpy()) == 2
    np.testing.assert_array_equal(loaded.pool_b.images.numpy(), model.pool_b.images.numpy())
    np.testing.assert_allclose(loaded.generator_ba(_batch()[1]), model.generator_ba(_batch()[1]), atol=1e-6)


def test_fits_under_mirrored_strategy():
    """The pools are updated from the replica context (variables aggregated from replica 0)."""
    from kzoo.recipes.runner import make_strategy

    with make_strategy("mirrored").scope():
        model = compile_adam(CycleGAN(**TINY, seed=0))
    a, b = _batch(n=4)
    logs = model.fit(a, b, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(logs["g_loss"][0]) and int(model.pool_a.count.numpy()) > 0


def test_resnet_block_keeps_shape_and_is_residual():
    x = keras.Input((None, None, 8))
    block = keras.Model(x, resnet_block(x, 8, name="r"))
    for w in block.weights:  # zero convs: the block is the identity
        w.assign(np.zeros(w.shape))
    data = np.random.default_rng(0).standard_normal((1, 9, 7, 8)).astype("float32")
    np.testing.assert_allclose(block(data), data, atol=1e-6)


def test_history_pool_fills_then_swaps_half_the_time():
    pool = ImageHistoryPool(pool_size=4, image_shape=(2, 2, 1))
    seeds = keras.random.SeedGenerator(0)
    first = [np.full((1, 2, 2, 1), i, "float32") for i in range(4)]
    for img in first:  # filling: every image is returned as is and stored
        np.testing.assert_array_equal(pool(img, seed_generator=seeds), img)
    assert int(pool.count.numpy()) == 4
    assert sorted(pool.images.numpy()[:, 0, 0, 0]) == [0, 1, 2, 3]
    swapped = 0
    for i in range(4, 204):
        new = np.full((1, 2, 2, 1), i, "float32")
        stored = set(pool.images.numpy()[:, 0, 0, 0])
        out = float(np.asarray(pool(new, seed_generator=seeds))[0, 0, 0, 0])
        if out != i:  # an older image came back, and the new one took its place
            swapped += 1
            assert out in stored and i in set(pool.images.numpy()[:, 0, 0, 0])
        assert int(pool.count.numpy()) == 4
    assert 70 < swapped < 130  # p = 1/2 over 200 draws


def test_history_pool_batch_and_disabled():
    pool = ImageHistoryPool(pool_size=3, image_shape=(1, 1, 1))
    batch = np.arange(5, dtype="float32").reshape(5, 1, 1, 1)
    out = np.asarray(pool(batch, seed_generator=keras.random.SeedGenerator(1)))
    np.testing.assert_array_equal(out[:3], batch[:3])  # the first three fill the pool
    assert set(out[3:, 0, 0, 0]) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    assert int(pool.count.numpy()) == 3
    off = ImageHistoryPool(pool_size=0, image_shape=(1, 1, 1))
    np.testing.assert_array_equal(off(batch), batch)
    pool.reset_state()  # empty again: the next fakes fill it and come back as they are
    assert int(pool.count.numpy()) == 0 and not pool.images.numpy().any()
    np.testing.assert_array_equal(pool(batch[3:4] + 10, seed_generator=keras.random.SeedGenerator(2)),
                                  batch[3:4] + 10)


def test_resize_upsampling_removes_the_checkerboard_of_untrained_generators():
    """Odena et al. 2016: transposed convs print a period-2/4 pattern; resize-conv does not."""
    from kzoo.data.photos import photos, random_crops
    from kzoo.metrics import checkerboard_score

    crops = random_crops(photos("test"), 32, 4, np.random.default_rng(0), scale=(0.3, 1.0))
    crops = crops.astype("float32") / 127.5 - 1
    scores = {}
    for mode in ("transpose", "resize"):
        keras.utils.set_random_seed(0)
        g = resnet_generator(width=8, num_blocks=1, upsample=mode)
        assert any(isinstance(l, keras.layers.Conv2DTranspose) for l in g.layers) == (mode == "transpose")
        scores[mode] = checkerboard_score(g.predict(crops, verbose=0), 4)
    assert scores["resize"] < 3 < 10 < scores["transpose"], scores
    model = CycleGAN(**TINY, upsample="resize")
    assert CycleGAN.from_config(model.get_config()).upsample == "resize"
    assert model.generator_ba.get_layer("u0_resize").interpolation == "nearest"


def test_input_skip_starts_from_the_identity_and_round_trips(tmp_path):
    """With its last conv at zero an input-skip generator is the identity (clipped to [-1, 1]);
    that conv also sees the input itself."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.2, 1.2, (2, 16, 16, 3)).astype("float32")
    model = CycleGAN(**TINY, input_skip=True)
    for g in model.generator_networks:
        out = g.get_layer("out_conv")
        out.set_weights([np.zeros_like(w) for w in out.get_weights()])
        np.testing.assert_allclose(np.asarray(g(x)), np.clip(x, -1, 1), atol=1e-6)
    assert not any(l.name in ("input_skip", "with_input") for l in CycleGAN(**TINY).generator_ab.layers)
    # c7s1-3 sees the input beside the features: `width` + 3 input channels
    assert model.generator_ab.get_layer("out_conv").kernel.shape == (7, 7, TINY["width"] + 3, 3)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.input_skip
    np.testing.assert_allclose(np.asarray(loaded.generator_ba(x)), np.clip(x, -1, 1), atol=1e-6)
    with pytest.raises(ValueError, match="no input skip"):
        resnet_generator(width=4, num_blocks=1, exact="junyanz", input_skip=True)
