"""The analytic training-step FLOPs of benchmarks/flops.py against a count by hand."""

import doctest

import keras
import tensorflow as tf

from benchmarks import flops


class TinyGAN:
    """One GAN step as kzoo's adversarial core runs it, on two bias-free Dense networks:
    the D update on G(z) made outside any tape, then G's update through D."""

    def __init__(self, z_dim=4, x_dim=3):
        self.g = keras.Sequential([keras.Input((z_dim,)), keras.layers.Dense(x_dim, use_bias=False)])
        self.d = keras.Sequential([keras.Input((x_dim,)), keras.layers.Dense(1, use_bias=False)])
        self.z_dim = z_dim

    def step(self, real):
        z = tf.zeros((tf.shape(real)[0], self.z_dim))
        fake = self.g(z)  # 1x: not differentiated
        with tf.GradientTape() as tape:  # D(real) and D(fake): 3x each
            d_loss = tf.reduce_mean(self.d(fake)) - tf.reduce_mean(self.d(real))
        d_grads = tape.gradient(d_loss, self.d.trainable_variables)
        with tf.GradientTape() as tape:  # G(z) and D(G(z)): 3x each
            g_loss = -tf.reduce_mean(self.d(self.g(z)))
        return d_grads, tape.gradient(g_loss, self.g.trainable_variables)


def test_analytic_step_flops_match_a_hand_count():
    gan, batch = TinyGAN(), 8
    g, d = 2 * batch * 4 * 3, 2 * batch * 3 * 1  # forward FLOPs of a matmul: 2 * rows * in * out
    passes = flops.step_passes(gan.step, tf.zeros((batch, 3)), [gan.g, gan.d])
    assert [(n is gan.g, diff) for n, _, diff in passes] == [
        (True, False), (False, True), (False, True), (True, True), (False, True)]
    assert flops.analytic_step_flops(gan.step, tf.zeros((batch, 3)), [gan.g, gan.d]) == (
        g + 3 * d + 3 * d + 3 * g + 3 * d) == 1200


def test_a_call_inside_a_counted_network_is_part_of_it():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, use_bias=False)])
    outer = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(2, use_bias=False)])

    def step(x):
        return outer(inner(x))

    passes = flops.step_passes(step, tf.zeros((2, 4)), [inner, outer])
    assert [(n is inner, diff) for n, _, diff in passes] == [(True, False), (False, False)]
    assert flops.analytic_step_flops(step, tf.zeros((2, 4)), [inner, outer]) == 2 * 2 * 4 * 4 * 2 + 2 * 2 * 4 * 2


def test_examples():
    result = doctest.testmod(flops, optionflags=doctest.ELLIPSIS, verbose=False, report=True)
    assert result.failed == 0 and result.attempted >= 4
