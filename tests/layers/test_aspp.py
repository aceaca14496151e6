"""kzoo.layers.aspp: Atrous Spatial Pyramid Pooling."""

import keras
import numpy as np

from kzoo.layers import aspp
from kzoo.layers.aspp import SpatialBroadcast


def test_aspp_branches_and_projection():
    x = keras.Input((8, 8, 16))
    model = keras.Model(x, aspp(x, filters=4, rates=(2, 3), dropout=0.0, name="a"))
    atrous = [l for l in model.layers if isinstance(l, keras.layers.Conv2D) and l.kernel_size == (3, 3)]
    assert sorted(l.dilation_rate for l in atrous) == [(2, 2), (3, 3)]
    # 1x1 + two atrous + image pooling, concatenated and projected back to `filters`
    assert model.get_layer("a_concat").output.shape[-1] == 4 * 4
    assert model.output.shape[1:] == (8, 8, 4)

def test_aspp_takes_any_feature_size():
    """The image-pooling branch follows the features' run-time size (fully convolutional)."""
    x = keras.Input((None, None, 16))
    model = keras.Model(x, aspp(x, filters=4, rates=(2,), dropout=0.0, name="a"))
    for h, w in ((5, 7), (8, 8)):
        y = model(np.random.default_rng(0).normal(size=(2, h, w, 16)).astype("float32"))
        assert tuple(y.shape) == (2, h, w, 4)


def test_spatial_broadcast_is_bilinear_upsampling_of_a_1x1_map():
    pooled = np.random.default_rng(1).normal(size=(2, 1, 1, 3)).astype("float32")
    up = keras.layers.UpSampling2D((4, 6), interpolation="bilinear")(pooled)
    out = SpatialBroadcast()([pooled, np.zeros((2, 4, 6, 5), "float32")])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), keras.ops.convert_to_numpy(up), atol=1e-6)
