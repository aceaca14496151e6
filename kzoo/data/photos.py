"""`builtin:photos`: the colour photographs that scikit-image ships, offline.

Nine photographs (astronaut, rocket, the stereo motorcycle pair, Hubble deep
field, immunohistochemistry, retina, coffee, Chelsea the cat). Two of them --
`coffee` and `chelsea` -- are held out: they are never used for training and
are what held-out quality is measured on. A tiny, honest toy set: models trained
on it show that the code paths work, not that they reach paper quality.
"""

from __future__ import annotations

import functools

import numpy as np

TRAIN = ("astronaut", "rocket", "motorcycle_left", "motorcycle_right", "hubble_deep_field",
         "immunohistochemistry", "retina")
HELDOUT = ("coffee", "chelsea")


def _load_one(name):
    import skimage.data as d

    if name.startswith("motorcycle_"):
        left, right, _ = d.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    return getattr(d, name)()


@functools.lru_cache(maxsize=2)
def photos(split: str = "train") -> tuple:
    """The uint8 RGB photographs (H, W, 3) of `split` ("train" or "test")."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, got {split!r}")
    return tuple(np.ascontiguousarray(_load_one(n)[..., :3]) for n in (TRAIN if split == "train" else HELDOUT))


def random_crops(images, size: int, count: int, rng: np.random.Generator, scale=None):
    """`count` random `size`x`size` crops from `images` (uint8), drawn uniformly.

    With `scale` (e.g. (0.5, 1.0)) each crop first covers a random fraction of the
    shorter side and is then resized to `size` (antialiased), so crops of small
    images show whole objects rather than textures.
    """
    from PIL import Image

    out = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        img = images[rng.integers(len(images))]
        h, w = img.shape[:2]
        side = size
        if scale is not None:
            side = int(min(h, w) * rng.uniform(*scale))
        side = max(size if scale is None else 8, min(side, h, w))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = img[y:y + side, x:x + side]
        if side != size:
            crop = np.asarray(Image.fromarray(crop).resize((size, size), Image.BICUBIC))
        out[i] = crop
    return out
