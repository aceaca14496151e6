"""kzoo.layers.aspp: Atrous Spatial Pyramid Pooling."""

import keras
import pytest

from kzoo.layers import aspp


def test_aspp_branches_and_projection():
    x = keras.Input((8, 8, 16))
    model = keras.Model(x, aspp(x, filters=4, rates=(2, 3), dropout=0.0, name="a"))
    atrous = [l for l in model.layers if isinstance(l, keras.layers.Conv2D) and l.kernel_size == (3, 3)]
    assert sorted(l.dilation_rate for l in atrous) == [(2, 2), (3, 3)]
    # 1x1 + two atrous + image pooling, concatenated and projected back to `filters`
    assert model.get_layer("a_concat").output.shape[-1] == 4 * 4
    assert model.output.shape[1:] == (8, 8, 4)
    with pytest.raises(ValueError, match="static height and width"):
        aspp(keras.Input((None, None, 16)))
