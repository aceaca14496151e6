import keras
import numpy as np
import pytest

from kzoo.layers import PixelShuffle, conv_block, dcgan_init, normalization


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
