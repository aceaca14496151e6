"""Turning model outputs into pictures: uint8 conversion and sample grids."""

from __future__ import annotations

import numpy as np


def to_uint8(images, value_range=(-1.0, 1.0)):
    """Float images in `value_range` -> uint8 [0, 255]."""
    lo, hi = value_range
    x = (np.asarray(images, np.float32) - lo) / (hi - lo)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def grid(images, cols, pad=2):
    """Tile N images (N, H, W, C) into one picture with `cols` columns and a border."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    rows = -(-n // cols)
    fill = 255 if images.dtype == np.uint8 else 1.0
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), fill, images.dtype)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = img
    return out
