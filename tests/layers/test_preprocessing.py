"""kzoo.layers.preprocessing: Caffe-style ImageNet input."""

import keras
import numpy as np

from kzoo.layers import IMAGENET_BGR_MEAN, CaffeImageInput


def test_caffe_input_matches_keras_applications():
    x = np.tanh(np.random.default_rng(0).standard_normal((2, 4, 4, 3))).astype("float32")
    expected = keras.applications.imagenet_utils.preprocess_input((x + 1.0) * 127.5, mode="caffe")
    np.testing.assert_allclose(CaffeImageInput()(x), expected, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(CaffeImageInput()(np.full((1, 1, 1, 3), -1.0, "float32"))[0, 0, 0],
                               -np.asarray(IMAGENET_BGR_MEAN), rtol=1e-6)
