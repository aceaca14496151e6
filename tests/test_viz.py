import numpy as np

from kzoo.viz import grid, to_uint8


def test_to_uint8_maps_range_and_clips():
    out = to_uint8(np.array([-1.0, 0.0, 1.0, 3.0]))
    assert out.tolist() == [0, 128, 255, 255] and out.dtype == np.uint8


def test_grid_layout():
    imgs = np.stack([np.full((2, 3, 1), i, np.uint8) for i in range(5)])
    g = grid(imgs, cols=2, pad=1)
    assert g.shape == (3 * 3 + 1, 2 * 4 + 1, 1)
    assert g[1, 1, 0] == 0 and g[1, 5, 0] == 1 and g[7, 1, 0] == 4
    assert g[7, 5, 0] == 255  # empty cell is background
