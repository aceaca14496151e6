import keras
import numpy as np
import pytest

from kzoo.layers.stylegan import (
    EqualDense,
    MinibatchStdDev,
    ModulatedConv2D,
    fir_kernel,
    upfirdn,
    upsample2x,
)


def test_fir_kernel_is_rosinalitys_make_kernel():
    k = fir_kernel()
    assert k.shape == (4, 4) and k.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(k[0], np.array([1, 3, 3, 1]) / 64.0)
    assert fir_kernel(gain=4.0).sum() == pytest.approx(4.0)


def test_upsample_keeps_a_constant_image_constant_and_doubles_size():
    x = np.ones((1, 4, 4, 2), "float32")
    y = np.asarray(upsample2x(x))
    assert y.shape == (1, 8, 8, 2)
    np.testing.assert_allclose(y[:, 1:-1, 1:-1], 1.0, atol=1e-6)  # borders see the zero padding


def test_upfirdn_downsamples_by_two():
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype("float32")
    assert upfirdn(x, fir_kernel(), down=2, pad=(1, 1)).shape == (2, 4, 4, 3)


def test_equal_dense_scales_at_run_time_and_keeps_unscaled_weights():
    layer = EqualDense(4, lr_mul=0.01)
    x = np.ones((1, 16), "float32")
    y = np.asarray(layer(x))
    kernel = layer.kernel.numpy()
    assert 50 < kernel.std() < 150  # N(0, 1) / lr_mul
    np.testing.assert_allclose(y, x @ kernel * 0.01 / 4.0, rtol=1e-5, atol=1e-6)


def test_demodulation_normalises_each_output_channel():
    """With demodulation, unit-variance i.i.d. input gives about unit-variance output (Eq. 3)."""
    conv = ModulatedConv2D(8, 3)
    x = np.random.default_rng(0).standard_normal((4, 16, 16, 32)).astype("float32")
    w = np.random.default_rng(1).standard_normal((4, 6)).astype("float32")
    y = np.asarray(conv(x, w))[:, 2:-2, 2:-2]
    assert y.std() == pytest.approx(1.0, abs=0.1)
    up = ModulatedConv2D(8, 3, upsample=True)
    assert up(x, w).shape == (4, 32, 32, 8)


def test_minibatch_stddev_groups_samples_with_stride():
    x = np.zeros((8, 2, 2, 4), "float32")
    x[::2] = np.random.default_rng(0).standard_normal((4, 2, 2, 4))  # group of i % 2 == 0 varies
    y = np.asarray(MinibatchStdDev(4, 1)(x))
    assert y.shape == (8, 2, 2, 5)
    assert np.all(y[1::2, ..., 4] == pytest.approx(np.sqrt(1e-8), abs=1e-6))
    assert np.all(y[::2, ..., 4] > 0.1)
    assert keras.ops.convert_to_numpy(MinibatchStdDev()(x[:2])).shape == (2, 2, 2, 5)
