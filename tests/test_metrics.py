import numpy as np
import pytest

from kzoo import metrics
from kzoo.data.images import digits_arrays
from kzoo.metrics import psnr_y, rgb_to_y, sr_scores, ssim, ssim_y


def test_reference_classifier_is_accurate_and_reproducible():
    acc = metrics.reference_accuracy()
    assert acc > 0.95
    metrics.reference_classifier.cache_clear()
    assert metrics.reference_accuracy() == acc


def test_scores_separate_real_from_noise():
    x, y = digits_arrays("train")
    real = x[:500] * 2 - 1
    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, real.shape).astype("float32")
    good = metrics.digits_generation_scores(real, y[:500])
    bad = metrics.digits_generation_scores(noise, y[:500])
    assert good["frechet_distance"] * 5 < bad["frechet_distance"]
    assert good["inception_score"] > 7 and bad["inception_score"] < 4
    assert good["class_consistency"] > 0.95 and bad["class_consistency"] < 0.3


def test_upsampled_digits_round_trip_to_the_classifier_input():
    from kzoo.data.images import resize_numpy

    x, y = digits_arrays("test")
    up = resize_numpy(x, 32) * 2 - 1
    probs = metrics.predict_proba(metrics.to_digits_input(up))
    assert (probs.argmax(-1) == y).mean() > 0.9


def test_frechet_distance_properties():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2000, 4))
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-3)
    shifted = metrics.frechet_distance(a, a + 2.0)
    assert shifted == pytest.approx(16.0, rel=1e-3)  # ||mu diff||^2 = 4 * 2^2


def test_inception_score_bounds():
    assert metrics.inception_score(np.full((10, 10), 0.1)) == pytest.approx(1.0)
    assert metrics.inception_score(np.eye(10)) == pytest.approx(10.0, rel=1e-6)


def test_psnr():
    a = np.zeros((4, 4))
    assert metrics.psnr(a, a + 0.2, data_range=2.0) == pytest.approx(10 * np.log10(4 / 0.04))
    assert metrics.psnr(a, a) == float("inf")


def test_rgb_to_y_is_matlab_rgb2ycbcr():
    # MATLAB: rgb2ycbcr(uint8 black / white / pure red) -> Y = 16, 235, 81.48
    y = rgb_to_y(np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0]], np.uint8))
    np.testing.assert_allclose(y, [16.0, 235.0, 16.0 + 65.481], atol=1e-9)


def test_psnr_y_identical_and_known_mse():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (20, 24, 3)).astype(np.uint8)
    assert psnr_y(hr, hr, border=4) == float("inf")
    # A grey shift of d adds exactly (219/255 * d) to Y: MSE known in closed form.
    hr = np.full((20, 24, 3), 100, np.uint8)
    sr = hr + np.uint8(10)
    mse = (219.0 / 255.0 * 10) ** 2
    assert psnr_y(sr, hr) == pytest.approx(10 * np.log10(255 ** 2 / mse), abs=1e-9)
    assert psnr_y(sr, hr) == pytest.approx(29.4520, abs=1e-3)


def test_border_is_cropped_before_scoring():
    hr = np.full((20, 20, 3), 128, np.uint8)
    sr = hr.copy()
    sr[:4] = 0  # error only inside a 4-pixel border
    assert psnr_y(sr, hr, border=4) == float("inf")
    assert psnr_y(sr, hr, border=3) < 30
    assert ssim_y(sr, hr, border=4) == pytest.approx(1.0)


def test_ssim_known_values_and_skimage():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    a = rng.uniform(0, 255, (40, 37))
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    assert ssim(a, a, data_range=255) == pytest.approx(1.0)
    expected = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255)
    assert ssim(a, b, data_range=255) == pytest.approx(expected, abs=1e-9)
    assert ssim(a, 255 - a, data_range=255) < 0


def test_sr_scores_averages_pairs():
    hr = np.full((32, 32, 3), 100, np.uint8)
    scores = sr_scores([hr + np.uint8(10), hr + np.uint8(20)], [hr, hr], scale=4, prefix="x_")
    assert set(scores) == {"x_psnr_y", "x_ssim_y"}
    assert scores["x_psnr_y"] == pytest.approx((psnr_y(hr + np.uint8(10), hr) + psnr_y(hr + np.uint8(20), hr)) / 2)
    assert scores["x_psnr_y"] == pytest.approx((29.4520 + 23.4314) / 2, abs=1e-3)

# --- image-to-image (pix2pix, CycleGAN) ---


def test_ssim_and_image_quality():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 32, 32, 3)).astype("float32")
    same = metrics.image_quality(x, x.copy())
    assert same["ssim"] == 1.0 and same["l1"] == 0.0 and same["psnr"] == float("inf")
    # a constant offset of 0.2 in [-1, 1] is 0.1 on the [0, 1] scale: PSNR 20 dB, L1 0.1
    y = np.clip(x + 0.2, -1, 1)
    shifted = metrics.image_quality(np.clip(x, -0.8, 0.8), np.clip(x, -0.8, 0.8) + 0.2)
    np.testing.assert_allclose([shifted["psnr"], shifted["l1"]], [20.0, 0.1], rtol=1e-4)
    noisy = x + rng.normal(0, 0.3, x.shape).astype("float32")
    assert metrics.image_quality(noisy, x)["ssim"] < metrics.image_quality(y, x)["ssim"] < 1.0
    gray = rng.uniform(0, 1, (16, 16, 1))
    assert metrics.ssim(gray, gray, data_range=1.0) == 1.0


def test_colorfulness_is_zero_for_gray_and_grows_with_saturation():
    from kzoo.metrics import colorfulness

    rng = np.random.default_rng(0)
    gray = np.repeat(rng.uniform(-1, 1, (3, 16, 16, 1)), 3, -1)
    assert colorfulness(gray) == 0.0
    colour = rng.uniform(-1, 1, (3, 16, 16, 3))
    assert 0 < colorfulness(colour * 0.3) < colorfulness(colour)
    red = -np.ones((1, 4, 4, 3))
    red[..., 0] = 1  # pure red: rg 255, yb 127.5
    assert abs(colorfulness(red) - 0.3 * np.hypot(255, 127.5)) < 1e-9
    with pytest.raises(ValueError):
        colorfulness(gray[..., :1])


def test_checkerboard_score_separates_transposed_conv_from_resize_conv():
    from kzoo.data.photos import photos, random_crops
    from kzoo.metrics import checkerboard_score

    crops = random_crops(photos("test"), 64, 8, np.random.default_rng(1), scale=(0.3, 1.0))
    crops = crops.astype(np.float32) / 127.5 - 1
    assert checkerboard_score(crops) < 3 and checkerboard_score(crops, 4) < 3
    checker = (np.indices((64, 64)).sum(0) % 2)[None, ..., None] * 0.1
    assert checkerboard_score(crops + checker) > 10
    # period 4 sees a pattern of period 4, which period 2 does not look for
    stripes = (np.arange(64) % 4 < 2)[None, None, :, None] * 0.2  # no harmonic at period 2
    assert checkerboard_score(crops + stripes, 4) > 10 > checkerboard_score(crops + stripes, 2)
    # an image of 2x2 blocks upsampled bilinearly (the resize-conv kind of output) stays low
    import tensorflow as tf

    small = crops[:, ::2, ::2]
    assert checkerboard_score(tf.image.resize(small, (64, 64), "bilinear").numpy()) < 3
    with pytest.raises(ValueError):
        checkerboard_score(crops[:, :30, :30], 4)
