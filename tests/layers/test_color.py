"""kzoo.layers.color: sRGB <-> CIE Lab in keras.ops, and its layers."""

import itertools

import keras
import numpy as np
import pytest

from kzoo.layers.color import (AB_SCALE, L_CENTER, LabToRGB, RGBToLab, gray_to_lightness, lab_to_rgb,
                               lightness_to_gray, rgb_to_lab)


def _colours():
    rng = np.random.default_rng(0)
    corners = np.array(list(itertools.product([0.0, 1.0], repeat=3)))  # black, white, primaries
    edges = np.array([[0.04045, 0.04045, 0.04045], [0.0031308, 0.5, 1.0], [1e-4, 0.0, 0.0],
                      [0.999, 0.001, 0.5], [0.5, 0.5, 0.5]])
    return np.concatenate([rng.random((2000, 3)), corners, edges]).astype(np.float32)


def test_round_trip_rgb_lab_rgb_on_random_and_edge_colours():
    rgb = _colours()
    back = np.asarray(lab_to_rgb(rgb_to_lab(rgb)))
    np.testing.assert_allclose(back, rgb, atol=1e-4)


def test_matches_skimage_rgb2lab():
    from skimage.color import rgb2lab

    rgb = _colours()
    ours = np.asarray(rgb_to_lab(rgb))
    # scikit-image's D65 white is the CIE table's (0.95047, 1, 1.08883), ours the sRGB
    # matrix's row sums (0.950456, 1, 1.088754): a* and b* differ by < 0.01.
    np.testing.assert_allclose(ours[:, 0], rgb2lab(rgb.astype(np.float64))[:, 0], atol=1e-3)
    np.testing.assert_allclose(ours, rgb2lab(rgb.astype(np.float64)), atol=1e-2)
    assert ours[:, 0].min() >= 0 and ours[:, 0].max() <= 100.001


def test_neutral_grays_have_no_colour_and_lightness_round_trips():
    gray = np.linspace(0, 1, 257, dtype=np.float32)[:, None]
    lab = np.asarray(rgb_to_lab(np.repeat(gray, 3, -1)))
    np.testing.assert_allclose(lab[:, 1:], 0, atol=1e-4)
    np.testing.assert_allclose(np.asarray(gray_to_lightness(gray)), lab[:, :1], atol=1e-4)
    np.testing.assert_allclose(np.asarray(lightness_to_gray(lab[:, :1])), gray, atol=1e-5)
    rgb = np.asarray(lab_to_rgb(np.concatenate([lab[:, :1], np.zeros((257, 2))], -1)))
    np.testing.assert_allclose(rgb, np.repeat(gray, 3, -1), atol=1e-5)


def test_layers_scale_and_invert_each_other():
    rgb = _colours()[None, :, None, :] * 2 - 1  # (1, N, 1, 3) in [-1, 1]
    lab = np.asarray(RGBToLab()(rgb))
    expected = np.asarray(rgb_to_lab((rgb + 1) / 2))
    np.testing.assert_allclose(lab[..., 0], expected[..., 0] / L_CENTER - 1, atol=1e-5)
    np.testing.assert_allclose(lab[..., 1:], expected[..., 1:] / AB_SCALE, atol=1e-5)
    assert lab[..., 0].min() >= -1 - 1e-6 and lab[..., 0].max() <= 1 + 1e-5
    back = np.asarray(LabToRGB()([lab[..., :1], lab[..., 1:]]))
    np.testing.assert_allclose(back, rgb, atol=2e-4)
    gray = rgb[..., :1]
    np.testing.assert_allclose(np.asarray(RGBToLab()(gray)),
                               np.asarray(gray_to_lightness((gray + 1) / 2)) / L_CENTER - 1, atol=1e-5)


def test_out_of_gamut_ab_is_clipped_to_valid_rgb():
    lab = np.array([[50.0, 200.0, -200.0], [100.0, 80.0, 80.0], [0.0, -90.0, 90.0]], np.float32)
    rgb = np.asarray(lab_to_rgb(lab))
    assert np.all(np.isfinite(rgb)) and rgb.min() >= 0 and rgb.max() <= 1


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_layers_compute_in_float32_and_save(tmp_path, dtype):
    gray = keras.Input((None, None, 1))
    light = RGBToLab(name="l")(gray)
    ab = keras.layers.Conv2D(2, 1, dtype=dtype, name="ab")(light)
    model = keras.Model(gray, LabToRGB(name="rgb")([light, ab]))
    assert model.output.dtype == "float32"
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(1).uniform(-1, 1, (2, 5, 7, 1)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


def test_gradients_are_finite_at_black_and_white():
    import tensorflow as tf

    x = tf.constant([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.2, 0.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(rgb_to_lab(x)) + tf.reduce_sum(lab_to_rgb(rgb_to_lab(x)))
    assert np.all(np.isfinite(tape.gradient(y, x).numpy()))
