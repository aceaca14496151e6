import keras
import numpy as np
import pytest
import tensorflow as tf

from kzoo.training import SeededModel, minimize


class _Noise(SeededModel):
    loss_names = ("a",)

    def call(self, x):
        return x + self.normal(keras.ops.shape(x))


def test_minimize_applies_one_update_and_returns_logs():
    w = keras.Variable(3.0)
    opt = keras.optimizers.SGD(0.5)
    logs = minimize(opt, [w], lambda: (w * w, {"w2": w * w}))
    assert float(logs["w2"]) == 9.0 and float(w.numpy()) == pytest.approx(3.0 - 0.5 * 6.0)


def test_minimize_divides_by_replicas():
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice())
    with strategy.scope():
        w = keras.Variable(0.0)
        opt = keras.optimizers.SGD(1.0)
        opt.build([w])

    @tf.function
    def step():
        strategy.run(lambda: minimize(opt, [w], lambda: (2.0 * w, {})))

    step()
    assert float(w.numpy()) == pytest.approx(-2.0)  # the mean gradient, not the sum (-4)


def test_seed_state_is_saved_and_losses_tracked(tmp_path):
    model = _Noise(seed=5)
    x = np.zeros((3,), "float32")
    model(x)
    model.save_weights(tmp_path / "w.weights.h5")
    expected = np.asarray(model(x))
    other = _Noise(seed=5)
    other.built = True
    other.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_allclose(other(x), expected)
    model.track({"a": 2.0})
    assert float(model.track({"a": 4.0})["a"]) == 3.0
    assert [m.name for m in model.metrics] == ["a"]
