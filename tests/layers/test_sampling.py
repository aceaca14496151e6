"""kzoo.layers.sampling: PixelShuffle and ReflectionPadding2D."""

import keras
import numpy as np
import pytest

from kzoo.layers import PixelShuffle, ReflectionPadding2D


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


def test_reflection_padding_matches_numpy():
    x = np.arange(2 * 4 * 5 * 3, dtype="float32").reshape(2, 4, 5, 3)
    out = ReflectionPadding2D(2)(x)
    np.testing.assert_array_equal(out, np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect"))
    assert ReflectionPadding2D(3).compute_output_shape((None, None, 8, 3)) == (None, None, 14, 3)


def test_pixel_unshuffle_inverts_pixel_shuffle_in_space_to_depth_order():
    import tensorflow as tf

    from kzoo.layers import PixelShuffle, PixelUnshuffle

    x = np.random.default_rng(0).normal(size=(2, 6, 10, 3)).astype("float32")
    down = np.asarray(PixelUnshuffle(2)(x))
    assert down.shape == (2, 3, 5, 12)
    np.testing.assert_array_equal(down, tf.nn.space_to_depth(x, 2).numpy())
    np.testing.assert_array_equal(np.asarray(PixelShuffle(2)(down)), x)
    layer = PixelUnshuffle.from_config(PixelUnshuffle(3).get_config())
    assert layer.scale == 3 and layer.compute_output_shape((None, None, 9, 2)) == (None, None, 3, 18)
