import numpy as np

from kzoo.viz import grid, to_uint8, upscale


def test_to_uint8_maps_range_and_clips():
    out = to_uint8(np.array([-1.0, 0.0, 1.0, 3.0]))
    assert out.tolist() == [0, 128, 255, 255] and out.dtype == np.uint8


def test_grid_layout():
    imgs = np.stack([np.full((2, 3, 1), i, np.uint8) for i in range(5)])
    g = grid(imgs, cols=2, pad=1)
    assert g.shape == (3 * 3 + 1, 2 * 4 + 1, 1)
    assert g[1, 1, 0] == 0 and g[1, 5, 0] == 1 and g[7, 1, 0] == 4
    assert g[7, 5, 0] == 255  # empty cell is background


def test_upscale_by_whole_factors_to_the_minimum_size():
    imgs = np.arange(2 * 3).reshape(1, 2, 3, 1).astype(np.uint8)
    big = upscale(imgs, min_size=5)  # factor 3: the shorter side 2 -> 6
    assert big.shape == (1, 6, 9, 1)
    np.testing.assert_array_equal(big[0, ::3, ::3], imgs[0])
    np.testing.assert_array_equal(big[0, 2, 2], imgs[0, 0, 0])
    assert upscale(imgs, min_size=2) is imgs
