"""Turning model outputs into pictures: uint8 conversion and sample grids."""

from __future__ import annotations

import numpy as np


def to_uint8(images, value_range=(-1.0, 1.0)):
    """Float images in `value_range` -> uint8 [0, 255]."""
    lo, hi = value_range
    x = (np.asarray(images, np.float32) - lo) / (hi - lo)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def upscale(images, min_size=128):
    """Enlarge images (N, H, W, C) by the smallest whole factor that makes each side >= `min_size`.

    Nearest-neighbour (pixel replication), so a picture shows the pixels the model
    made, only bigger; images already that large are returned as they are.

    Example:
    >>> upscale(np.zeros((2, 64, 48, 3), np.uint8)).shape
    (2, 192, 144, 3)
    """
    images = np.asarray(images)
    factor = -(-min_size // min(images.shape[1:3]))
    if factor <= 1:
        return images
    return images.repeat(factor, axis=1).repeat(factor, axis=2)


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


# --- segmentation ---

# Background black, then distinct colours (Sasha Trubetskoy's list); 255 (ignored) white.
PALETTE = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25],
                    [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230],
                    [210, 245, 60], [250, 190, 212], [0, 128, 128], [220, 190, 255],
                    [170, 110, 40], [255, 250, 200], [128, 0, 0], [170, 255, 195],
                    [128, 128, 0], [255, 215, 180], [0, 0, 128], [128, 128, 128]], np.uint8)


def colorize(labels, ignore_label=255):
    """Integer label maps (..., H, W) -> uint8 RGB (..., H, W, 3); ignored pixels white."""
    labels = np.asarray(labels).astype(np.int64)
    out = PALETTE[labels % len(PALETTE)]
    out[labels == ignore_label] = 255
    return out
