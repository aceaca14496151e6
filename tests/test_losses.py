import numpy as np
import pytest

from kzoo import losses


def test_nonsaturating_matches_bce():
    real, fake = np.array([2.0, -1.0]), np.array([0.5, -3.0])
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    expected = -np.mean(np.log(sig(real))) - np.mean(np.log(1 - sig(fake)))
    assert float(losses.nonsaturating_d_loss(real, fake)) == pytest.approx(expected, rel=1e-5)
    assert float(losses.nonsaturating_g_loss(fake)) == pytest.approx(-np.mean(np.log(sig(fake))), rel=1e-5)


def test_wasserstein_and_lsgan():
    real, fake = np.array([1.0, 3.0]), np.array([0.0, -2.0])
    assert float(losses.wasserstein_d_loss(real, fake)) == pytest.approx(-1.0 - 2.0)
    assert float(losses.wasserstein_g_loss(fake)) == pytest.approx(1.0)
    assert float(losses.lsgan_d_loss(np.ones(3), np.zeros(3))) == 0.0
    assert float(losses.lsgan_g_loss(np.zeros(2))) == pytest.approx(1.0)


def test_l1_and_mse_average_every_element_in_float32():
    a = np.array([[1.0, -2.0], [0.5, 3.0]], "float16")
    b = np.zeros((2, 2), "float32")
    assert float(losses.l1(a, b)) == pytest.approx(6.5 / 4)
    assert float(losses.mse(a, b)) == pytest.approx((1 + 4 + 0.25 + 9) / 4)
    assert losses.l1(a, b).dtype == "float32" and losses.mse(a, b).dtype == "float32"


def test_relativistic_average_losses_are_esrgans():
    """BasicSR esrgan_model.py with gan_type vanilla: BCE on logits minus the other side's mean."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(5, 1)).astype("float32"), rng.normal(size=(5, 1)).astype("float32") - 1
    bce = lambda x, label: np.mean(np.log1p(np.exp(-x)) if label else np.log1p(np.exp(x)))  # noqa: E731
    d = 0.5 * (bce(real - fake.mean(), 1) + bce(fake - real.mean(), 0))
    g = 0.5 * (bce(real - fake.mean(), 0) + bce(fake - real.mean(), 1))
    assert float(losses.relativistic_average_d_loss(real, fake)) == pytest.approx(d, rel=1e-5)
    assert float(losses.relativistic_average_g_loss(real, fake)) == pytest.approx(g, rel=1e-5)
    # the real logits are constants of the generator loss (BasicSR detaches them)
    r, f = tf.Variable(real), tf.Variable(fake)
    with tf.GradientTape() as tape:
        loss = losses.relativistic_average_g_loss(r, f)
    grad_r, grad_f = tape.gradient(loss, [r, f])
    assert grad_r is None or not np.any(grad_r.numpy()) and np.any(grad_f.numpy())
