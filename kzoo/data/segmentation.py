"""Segmentation datasets: (image, per-pixel label mask) pairs.

A spec string picks the source:

- ``builtin:shapes`` -- procedural scenes drawn here, offline and deterministic:
  circles, squares, triangles and striped bars of random colours, sizes,
  rotations and overlaps on a noisy gradient background. Five classes
  (`SHAPES_CLASSES`); 2,048 training and 512 held-out scenes from separate seeds.
- ``tfds:oxford_iiit_pet`` -- the Oxford-IIIT Pet trimaps: labels 1..3
  (pet, background, border) become 0..2.
- a folder holding ``images/`` and ``masks/``: a mask per image with the same file
  name stem (any image extension; masks are single-channel or palette PNGs whose
  pixel values are the labels). 255 marks pixels to ignore.

`load_segmentation` returns a `kzoo.data.ImageData` whose dataset yields
`(image, mask)`: float32 images in [-1, 1] (HxWxC, center-cropped and resized)
and int32 masks (HxW, nearest-neighbour resized); `num_classes` is the number of
classes. Bad folder data raises `KzooError` naming the file: a missing mask, a
mask whose size differs from its image, or a label outside 0..num_classes-1
other than 255.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from kzoo.data.images import IMAGE_EXTENSIONS, ImageData, _prepare_image, readable_images
from kzoo.errors import KzooError

IGNORE_LABEL = 255
SHAPES_CLASSES = ("background", "circle", "square", "triangle", "stripes")
SHAPES_COUNTS = {"train": 2048, "test": 512}
SHAPES_SEED = 20150518  # U-Net's MICCAI submission date; any fixed number would do
# tfds name -> (mask feature, number of classes, value subtracted from the stored labels)
TFDS_SEGMENTATION = {"oxford_iiit_pet": ("segmentation_mask", 3, 1)}


def load_segmentation(spec: str, *, image_size: int, split: str = "train",
                      num_classes: int | None = None) -> ImageData:
    """Load the segmentation dataset named by `spec` (see module docstring).

    `num_classes` (folders only; None: one more than the largest label found)
    is the class range the masks are checked against.
    """
    if not isinstance(spec, str) or not spec:
        raise KzooError("--data is empty: give builtin:shapes, tfds:NAME or a folder")
    if image_size < 4:
        raise KzooError(f"image size must be at least 4, got {image_size}")
    if spec.startswith("builtin:"):
        if spec != "builtin:shapes":
            raise KzooError(f"unknown builtin segmentation dataset {spec[8:]!r}; known: shapes")
        images, masks = shapes(split, image_size)
        return _from_arrays(images, masks, len(SHAPES_CLASSES), spec)
    if spec.startswith("tfds:"):
        return _from_tfds(spec[5:], split, image_size)
    return _from_folder(spec, image_size, num_classes)


def _from_arrays(images, masks, num_classes, name):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images, masks.astype(np.int32)))
    return ImageData(ds, len(images), images.shape[1], images.shape[-1], num_classes, name)


# --- builtin:shapes --------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def shapes(split: str = "train", image_size: int = 64):
    """The `split` scenes as float32 images in [-1, 1] (N, S, S, 3) and uint8 masks (N, S, S)."""
    if split not in SHAPES_COUNTS:
        raise KzooError(f"builtin:shapes has splits train and test, not {split!r}")
    rng = np.random.default_rng([SHAPES_SEED, list(SHAPES_COUNTS).index(split)])
    n = SHAPES_COUNTS[split]
    images = np.empty((n, image_size, image_size, 3), np.float32)
    masks = np.empty((n, image_size, image_size), np.uint8)
    for i in range(n):
        images[i], masks[i] = shapes_scene(rng, image_size)
    return images * 2.0 - 1.0, masks


def shapes_scene(rng: np.random.Generator, size: int):
    """One scene: float32 [0, 1] image (S, S, 3) and its uint8 class mask (S, S).

    2-5 shapes, each of a random class, centre, size (8-20% of the side as
    radius), rotation and colour (kept at least 0.35 away from the background's
    colour there), drawn in order so later shapes occlude earlier ones; then
    Gaussian pixel noise (sigma 0.03).
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    base, tilt = rng.uniform(0.0, 1.0, 3), rng.uniform(-0.3, 0.3, (2, 3))
    image = np.clip(base + (xx[..., None] / size - 0.5) * tilt[0]
                    + (yy[..., None] / size - 0.5) * tilt[1], 0.0, 1.0)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(2, 6)):
        cls = int(rng.integers(1, len(SHAPES_CLASSES)))
        cx, cy = rng.uniform(0.12, 0.88, 2) * size
        r = rng.uniform(0.08, 0.2) * size
        theta = rng.uniform(0.0, np.pi)
        u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
        v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
        if cls == 1:  # circle
            inside = u ** 2 + v ** 2 <= r ** 2
        elif cls == 2:  # square
            inside = (np.abs(u) <= 0.85 * r) & (np.abs(v) <= 0.85 * r)
        elif cls == 3:  # equilateral triangle: inside all three edges' half-planes
            inside = np.ones_like(u, bool)
            for k in range(3):
                a = theta + 2 * np.pi * k / 3
                inside &= (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a) <= 0.6 * r
        else:  # stripes: a bar filled with alternating bands of two colours
            inside = (np.abs(u) <= r) & (np.abs(v) <= 0.55 * r)
        ref = image[int(cy) % size, int(cx) % size]
        colour = _distinct_colour(rng, ref)
        fill = np.broadcast_to(colour, image.shape)
        if cls == 4:
            period = max(4.0, size / 12)
            band = (np.floor(u / (period / 2)) % 2).astype(bool)
            fill = np.where(band[..., None], colour, _distinct_colour(rng, colour))
        image = np.where(inside[..., None], fill, image)
        mask[inside] = cls
    image = image + rng.normal(0.0, 0.03, image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32), mask


def _distinct_colour(rng, ref, min_distance=0.35):
    for _ in range(50):
        colour = rng.uniform(0.0, 1.0, 3)
        if np.linalg.norm(colour - ref) >= min_distance:
            return colour
    return 1.0 - np.round(ref)


# --- TFDS --------------------------------------------------------------------------

def _from_tfds(name, split, image_size):
    import tensorflow as tf

    from kzoo.data.tfds_source import load_split

    if ":" in name:
        name, split = name.split(":", 1)
    if name not in TFDS_SEGMENTATION:
        raise KzooError(f"no segmentation mapping for tfds:{name}; known: "
                        f"{', '.join('tfds:' + k for k in TFDS_SEGMENTATION)}")
    mask_key, num_classes, offset = TFDS_SEGMENTATION[name]
    ds, num_examples = load_split(name, split)

    def prepare(ex):
        image = _prepare_image(ex["image"], image_size, 3)
        labels = tf.cast(_prepare_mask(ex[mask_key], image_size), tf.int32) - offset
        # The datasets mapped here only hold labels in range; anything else (e.g.
        # tfds' random mock data) is ignored rather than trained on.
        labels = tf.where((labels >= 0) & (labels < num_classes), labels, IGNORE_LABEL)
        return image, labels

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return ImageData(ds, num_examples, image_size, 3, num_classes, f"tfds:{name}")


def _prepare_mask(mask, image_size):
    """HxW(x1) labels -> center square crop -> nearest resize to (S, S)."""
    import tensorflow as tf

    mask = tf.convert_to_tensor(mask)
    if mask.shape.rank == 2:
        mask = mask[..., None]
    h, w = tf.shape(mask)[0], tf.shape(mask)[1]
    side = tf.minimum(h, w)
    mask = tf.image.crop_to_bounding_box(mask, (h - side) // 2, (w - side) // 2, side, side)
    mask = tf.image.resize(mask, (image_size, image_size), method="nearest")
    return tf.reshape(mask, (image_size, image_size))


# --- folders -------------------------------------------------------------------------

def _from_folder(spec, image_size, num_classes):
    import tensorflow as tf
    from PIL import Image

    folder = Path(os.path.expanduser(spec))
    image_dir, mask_dir = folder / "images", folder / "masks"
    if not image_dir.is_dir() or not mask_dir.is_dir():
        raise KzooError(f"segmentation folder {spec!r} must hold images/ and masks/ "
                        "(or use builtin:shapes or tfds:NAME)")
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise KzooError(f"{image_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    images, skipped = readable_images(images, 3)  # decoded as the pipeline does; skipped: counted
    if not images:
        raise KzooError(f"{image_dir} holds no image TensorFlow can decode")
    masks_by_stem = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS}
    masks = []
    for path in images:
        mask_path = masks_by_stem.get(path.stem)
        if mask_path is None:
            raise KzooError(f"no mask for image {path} in {mask_dir} (same file name expected)")
        try:
            with Image.open(path) as im:
                size = im.size
            with Image.open(mask_path) as m:
                mask = np.asarray(m)
        except OSError as e:
            raise KzooError(f"cannot read {path} or {mask_path}: {e}") from None
        if mask.ndim == 3:
            if not (mask == mask[..., :1]).all():
                raise KzooError(f"mask {mask_path} has colour pixels; masks hold one label "
                                "per pixel (grayscale or palette PNG)")
            mask = mask[..., 0]
        if mask.shape[::-1] != size:
            raise KzooError(f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image "
                            f"{path} is {size[0]}x{size[1]}")
        masks.append((mask_path, mask))
    labels = [np.unique(m) for _, m in masks]
    if num_classes is None:
        found = np.concatenate(labels)
        found = found[found != IGNORE_LABEL]
        num_classes = int(found.max()) + 1 if found.size else 1
    for (mask_path, _), values in zip(masks, labels):
        check_labels(values, num_classes, mask_path)
    square = np.stack([_prepare_mask(m, image_size).numpy() for _, m in masks]).astype(np.int32)

    def decode(path):
        img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return _prepare_image(img, image_size, 3)

    ds = tf.data.Dataset.from_tensor_slices([str(p) for p in images]).map(decode)
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.from_tensor_slices(square))).ignore_errors()
    return ImageData(ds, len(images), image_size, 3, num_classes, str(folder), skipped=skipped)


def augment_fn(*, flip: bool = True, scale_range=(1.0, 1.0)):
    """`(image, mask, seed) -> (image, mask)`: DeepLab's training augmentation.

    A random scale in `scale_range` (image bilinear, mask nearest-neighbour), then a
    random crop back to the input size -- a smaller image is first padded with 0
    (mid-grey in [-1, 1]) and the mask with `IGNORE_LABEL` -- and a left-right flip
    with probability 1/2 (Chen et al., 2018, Sec. 4: scales 0.5-2.0 and flipping).
    """
    import tensorflow as tf

    lo, hi = (float(v) for v in scale_range)
    if not 0.0 < lo <= hi:
        raise KzooError(f"scale range must satisfy 0 < min <= max, got {lo}, {hi}")

    def augment(image, mask, seed):
        h, w, c = image.shape
        m = tf.cast(mask[..., None], tf.float32)
        if (lo, hi) != (1.0, 1.0):
            s = tf.random.stateless_uniform((), seed, lo, hi)
            size = tf.cast(tf.round(tf.constant([h, w], tf.float32) * s), tf.int32)
            image = tf.image.resize(image, size, method="bilinear")
            m = tf.image.resize(m, size, method="nearest")
            ph, pw = tf.maximum(size[0], h), tf.maximum(size[1], w)
            image = tf.image.pad_to_bounding_box(image, 0, 0, ph, pw)
            m = tf.image.pad_to_bounding_box(m - IGNORE_LABEL, 0, 0, ph, pw) + IGNORE_LABEL
            both = tf.image.stateless_random_crop(tf.concat([image, m], -1), (h, w, c + 1),
                                                  seed + 1)
            image, m = both[..., :c], both[..., c:]
        if flip:
            both = tf.image.stateless_random_flip_left_right(tf.concat([image, m], -1), seed + 2)
            image, m = both[..., :c], both[..., c:]
        return tf.ensure_shape(image, (h, w, c)), tf.cast(m[..., 0], mask.dtype)

    return augment


def check_labels(values, num_classes, where):
    """Raise `KzooError` if a label in `values` is outside 0..num_classes-1 and not 255."""
    values = np.asarray(values)
    bad = values[((values < 0) | (values >= num_classes)) & (values != IGNORE_LABEL)]
    if bad.size:
        raise KzooError(f"{where}: label {int(bad.flat[0])} is outside the {num_classes} classes "
                        f"0..{num_classes - 1} (255 marks pixels to ignore)")
