"""kzoo.export.dynamic: a network built at one size, rebuilt with dynamic height/width."""

import numpy as np

from kzoo.export.dynamic import spatially_dynamic
from tests.export.common import image_model


def test_a_fixed_size_network_takes_other_sizes_with_the_same_weights():
    built = image_model(channels=3, size=8)
    dynamic = spatially_dynamic(built)
    assert tuple(dynamic.input.shape[1:3]) == (None, None)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(dynamic(x)), np.asarray(built(x)), atol=1e-6)
    assert tuple(dynamic(np.zeros((1, 12, 16, 3), "float32")).shape) == (1, 12, 16, 3)
