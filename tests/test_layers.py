import keras
import numpy as np
import pytest
import tensorflow as tf

from kzoo.layers import (ImageHistoryPool, PixelShuffle, ReflectionPadding2D, SinusoidalTimeEmbedding,
                         SpatialSelfAttention, TimeResidualBlock, conv_block, dcgan_init, normalization,
                         patchgan_discriminator, receptive_field, resnet_block)


def test_dcgan_init_std():
    w = dcgan_init(seed=0)((200, 200)).numpy()
    assert abs(w.std() - 0.02) < 1e-3 and abs(w.mean()) < 1e-3


@pytest.mark.parametrize("kind,cls", [("batch", keras.layers.BatchNormalization),
                                      ("layer", keras.layers.LayerNormalization),
                                      ("instance", keras.layers.GroupNormalization)])
def test_normalization_kinds(kind, cls):
    assert isinstance(normalization(kind), cls)
    assert normalization("none") is None
    with pytest.raises(ValueError):
        normalization("weird")


def test_instance_norm_normalizes_each_example_and_channel():
    x = np.random.default_rng(0).normal(3.0, 2.0, (2, 8, 8, 3)).astype("float32")
    y = normalization("instance")(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(1, 2)), 1, atol=1e-2)


def test_conv_block_bias_only_without_norm():
    inp = keras.Input((8, 8, 2))
    out = conv_block(inp, 4, norm="batch", name="a")
    model = keras.Model(inp, out)
    assert model.get_layer("a_conv").use_bias is False
    out2 = conv_block(inp, 4, norm=None, transpose=True, name="b")
    assert keras.Model(inp, out2).get_layer("b_conv").use_bias is True
    assert out2.shape[1:] == (16, 16, 4)


def reference_pixel_shuffle(x, r):
    """Depth to space written out with NumPy: out[b, h*r+i, w*r+j, c] = x[b, h, w, (i*r+j)*C + c]."""
    b, h, w, cr2 = x.shape
    c = cr2 // (r * r)
    out = np.empty((b, h * r, w * r, c), x.dtype)
    for i in range(r):
        for j in range(r):
            out[:, i::r, j::r, :] = x[..., (i * r + j) * c:(i * r + j + 1) * c]
    return out


@pytest.mark.parametrize("r,shape", [(2, (2, 3, 5, 8)), (3, (1, 4, 2, 18)), (2, (1, 1, 1, 4))])
def test_pixel_shuffle_matches_reference_and_tf(r, shape):
    import tensorflow as tf

    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    out = PixelShuffle(r)(x)
    expected = reference_pixel_shuffle(x, r)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out, tf.nn.depth_to_space(x, r))


def test_pixel_shuffle_in_a_fully_convolutional_model_saves(tmp_path):
    inp = keras.Input((None, None, 12))
    model = keras.Model(inp, PixelShuffle(2, name="ps")(inp))
    assert model.output_shape == (None, None, None, 3)
    path = tmp_path / "ps.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(1).standard_normal((1, 5, 7, 12)).astype("float32")
    np.testing.assert_array_equal(loaded(x), model(x))
    assert loaded.get_layer("ps").get_config()["scale"] == 2


def test_pixel_shuffle_bad_channels():
    with pytest.raises(ValueError, match="divisible by 4"):
        PixelShuffle(2)(np.zeros((1, 2, 2, 6), "float32"))
    with pytest.raises(ValueError, match="scale must be >= 1"):
        PixelShuffle(0)

# --- image-to-image (pix2pix, CycleGAN) ---


def test_reflection_padding_matches_numpy():
    x = np.arange(2 * 4 * 5 * 3, dtype="float32").reshape(2, 4, 5, 3)
    out = ReflectionPadding2D(2)(x)
    np.testing.assert_array_equal(out, np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect"))
    assert ReflectionPadding2D(3).compute_output_shape((None, None, 8, 3)) == (None, None, 14, 3)


@pytest.mark.parametrize("n_layers,field", [(1, 16), (2, 34), (3, 70), (4, 142)])
def test_patchgan_receptive_field_from_layers(n_layers, field):
    assert receptive_field(patchgan_discriminator(width=2, n_layers=n_layers)) == field


def test_paper_patchgan_sees_70x70_patches():
    """The paper's configuration: 30x30 logits at 256x256, each the function of a 70x70 patch.

    Checked empirically too: the gradient of one interior logit w.r.t. the input
    is non-zero on exactly a 70x70 window.
    """
    d = patchgan_discriminator(image_size=256)
    assert d.output_shape == (None, 30, 30, 1) and receptive_field(d) == 70
    small = patchgan_discriminator(width=2, norm="none")
    x = tf.constant(np.random.default_rng(0).standard_normal((1, 128, 128, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logit = small(x)[0, 6, 6, 0]
    support = np.abs(tape.gradient(logit, x).numpy()[0]).sum(-1) > 0
    rows, cols = np.nonzero(support.any(1))[0], np.nonzero(support.any(0))[0]
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_conditional_patchgan_and_size_check():
    d = patchgan_discriminator(channels=3, condition_channels=1, width=4, n_layers=2)
    out = d([np.zeros((2, 32, 32, 1), "float32"), np.zeros((2, 32, 32, 3), "float32")])
    assert out.shape == (2, 6, 6, 1)
    with pytest.raises(ValueError, match="at least 24"):
        patchgan_discriminator(image_size=16, n_layers=3)


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

"""Shared layers of kzoo.layers."""


# --- diffusion (DDPM) ---

def _roundtrip(layer):
    return type(layer).from_config(layer.get_config())


def test_time_embedding_is_the_transformer_formula():
    emb = SinusoidalTimeEmbedding(8)
    t = np.array([0, 1, 250, 999])
    out = keras.ops.convert_to_numpy(emb(t))
    freqs = np.exp(-np.log(10000.0) * np.arange(4) / 3)  # Ho et al.: log(10000) / (half - 1)
    expected = np.concatenate([np.sin(t[:, None] * freqs), np.cos(t[:, None] * freqs)], axis=1)
    np.testing.assert_allclose(out, expected, atol=2e-4)
    assert len({tuple(np.round(r, 4)) for r in out}) == 4  # distinct timesteps, distinct codes
    odd = keras.ops.convert_to_numpy(SinusoidalTimeEmbedding(7)(t))
    assert odd.shape == (4, 7) and np.all(odd[:, -1] == 0)
    assert _roundtrip(emb).get_config() == emb.get_config()
    with pytest.raises(ValueError):
        SinusoidalTimeEmbedding(1)


def test_residual_block_starts_as_identity_and_uses_time():
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 8)).astype("float32")
    temb = np.ones((2, 16), "float32")
    same = TimeResidualBlock(8, groups=4)
    np.testing.assert_allclose(same([x, temb]), x, atol=1e-6)  # zero-initialised last conv
    assert same.skip is None
    wider = TimeResidualBlock(16, dropout=0.5, groups=4)
    out = wider([x, temb])
    assert out.shape == (2, 4, 4, 16) and wider.skip is not None
    np.testing.assert_allclose(out, wider.skip(x), atol=1e-6)
    # once the last conv is non-zero the time embedding changes the output
    wider.conv2.kernel.assign(np.random.default_rng(1).normal(0, 0.1, wider.conv2.kernel.shape))
    a, b = wider([x, temb]), wider([x, 2 * temb])
    assert not np.allclose(a, b)
    # dropout acts in training only
    np.testing.assert_allclose(wider([x, temb]), a)
    assert not np.allclose(wider([x, temb], training=True), a)
    assert _roundtrip(wider).get_config() == wider.get_config()


def test_attention_starts_as_identity_and_is_permutation_equivariant():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 4, 8)).astype("float32")
    attn = SpatialSelfAttention(groups=4)
    np.testing.assert_allclose(attn(x), x, atol=1e-6)  # zero-initialised output projection
    attn.proj_out.kernel.assign(rng.normal(0, 0.3, attn.proj_out.kernel.shape))
    out = keras.ops.convert_to_numpy(attn(x))
    assert not np.allclose(out, x)
    # permuting the positions permutes the output: attention has no notion of place
    perm = rng.permutation(16)
    xp = x.reshape(2, 16, 8)[:, perm].reshape(x.shape)
    outp = keras.ops.convert_to_numpy(attn(xp))
    np.testing.assert_allclose(outp.reshape(2, 16, 8), out.reshape(2, 16, 8)[:, perm], atol=1e-5)
    # every position sees every other: changing one pixel changes the output everywhere
    x2 = x.copy()
    x2[:, 0, 0] += 3.0
    delta = np.abs(keras.ops.convert_to_numpy(attn(x2)) - out)[:, 3, 3]
    assert np.all(delta > 1e-5)
    assert _roundtrip(attn).get_config() == attn.get_config()
