"""kzoo.layers.test_mode: eval vs the junyanz authors' train-mode inference."""

import keras
import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.layers import test_mode as tm
from kzoo.layers.test_mode import BatchStatNormalization, check_mode, dropout_rate, mode_of, with_test_mode


def test_batch_statistics_are_each_images_own():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (3, 5, 6, 4)).astype("float32")
    layer = BatchStatNormalization(epsilon=1e-5)
    layer.build(x.shape)
    layer.set_weights([np.full(4, 2.0), np.full(4, 0.5), np.zeros(4), np.ones(4)])
    got = np.asarray(layer(x))
    mean, var = x.mean((1, 2), keepdims=True), x.var((1, 2), keepdims=True)  # biased, as PyTorch
    np.testing.assert_allclose(got, (x - mean) / np.sqrt(var + 1e-5) * 2.0 + 0.5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(layer(x[1:2])), got[1:2], atol=1e-5)


def test_test_time_dropout_drops_and_rescales_at_inference():
    keras.utils.set_random_seed(0)
    y = np.asarray(tm.TestTimeDropout(0.5)(np.ones((4, 32, 32, 8), "float32"), training=False))
    assert set(np.unique(y)) == {0.0, 2.0} and abs((y == 0).mean() - 0.5) < 0.02
    assert not np.array_equal(y, np.asarray(tm.TestTimeDropout(0.5)(np.ones((4, 32, 32, 8), "float32"))))
    np.testing.assert_array_equal(tm.TestTimeDropout(0.0)(np.ones((1, 2, 2, 1), "float32")), 1.0)
    with pytest.raises(ValueError, match="in \\[0, 1\\)"):
        tm.TestTimeDropout(1.0)


def _net():
    x = keras.Input((None, None, 2))
    h = keras.layers.Conv2D(4, 3, padding="same")(x)
    h = keras.layers.BatchNormalization(epsilon=1e-5, name="bn")(h)
    h = keras.layers.Dropout(0.5, name="drop")(h)
    return keras.Model(x, keras.layers.Conv2D(2, 1)(h))


def test_with_test_mode_rebuilds_with_copied_weights_and_saves(tmp_path):
    net = _net()
    net.get_layer("bn").set_weights([np.full(4, 1.5), np.full(4, 0.1), np.full(4, 3.0), np.full(4, 2.0)])
    assert with_test_mode(net, "eval") is net and mode_of(net) == "eval" and dropout_rate(net) == 0
    authors = with_test_mode(net, "authors")
    assert mode_of(authors) == "authors" and dropout_rate(authors) == 0.5
    assert dropout_rate(with_test_mode(net, "authors", dropout=0.0)) == 0.0
    bn = authors.get_layer("bn")
    assert isinstance(bn, BatchStatNormalization)
    np.testing.assert_array_equal(bn.get_weights()[0], 1.5)
    assert authors.layers[1] is net.layers[1]  # every other layer is shared
    authors.save(tmp_path / "a.keras")
    loaded = keras.saving.load_model(tmp_path / "a.keras", safe_mode=True)
    assert mode_of(loaded) == "authors" and dropout_rate(loaded) == 0.5
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 2)).astype("float32")
    off = with_test_mode(loaded, "eval")  # already authors: eval returns it as is
    assert off is loaded
    det = with_test_mode(net, "authors", dropout=0.0)
    np.testing.assert_allclose(np.asarray(det(x)), np.asarray(det(x)))
    with pytest.raises(KzooError, match="unknown test mode 'train'; choose eval or authors"):
        check_mode("train")
