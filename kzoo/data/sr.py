"""Super-resolution data: (LR, HR) patch pairs made by bicubic downscaling.

As in SRGAN (Ledig et al., 2017, Sec. 3.1), the low-resolution input is the
high-resolution image downscaled by bicubic interpolation with antialiasing
(`tf.image.resize(..., "bicubic", antialias=True)`, the kernel of MATLAB's
`imresize`) by the scale factor r, quantised to 8 bits. Training draws random
HR crops of `patch_size` (96x96 in the paper) and makes their r-times smaller LR
crop; evaluation uses whole held-out images cropped to a multiple of r.

A spec string picks the HR images:

- ``builtin:photos`` -- scikit-image's photographs (`kzoo.data.photos`): seven
  for training, `coffee` and `chelsea` held out and never trained on.
- ``tfds:div2k[/CONFIG]`` -- DIV2K's HR images (800 train, 100 validation);
  whatever the config, its HR images are used and the LR made here, so every
  source is degraded the same way. Images smaller than the patch are skipped.
- a folder of HR images -- with `train/` and `test/` sub-folders those are the
  splits; otherwise every tenth image (sorted by path; the last one when there
  are fewer than ten) is held out. A training image smaller than the patch size
  is an error naming the file.

Values are float32 in [-1, 1], RGB.
"""

from __future__ import annotations

import os
from pathlib import Path


from kzoo.data.images import ImageData, list_images, readable_images
from kzoo.errors import KzooError

CROPS_PER_IMAGE = 4  # random crops per decoded image (amortises decoding of large images)
SHUFFLE_BUFFER = 256


def load_sr(spec: str, *, patch_size: int = 96, scale: int = 4, crops_per_image: int = CROPS_PER_IMAGE):
    """The training stream of (LR, HR) random patch pairs of `spec`.

    Returns:
        `ImageData` whose `dataset` is an endless, shuffled stream of pairs
        `(lr, hr)` of shapes (patch/r, patch/r, 3) and (patch, patch, 3);
        `num_examples` is the number of non-overlapping patches the training
        images hold (what one epoch means when `steps_per_epoch` is 0).
    """
    import tensorflow as tf

    _check_sizes(patch_size, scale)
    images, name, pixels = _source(spec, "train", patch_size)
    lr_size = patch_size // scale

    def crops(img):
        stacked = tf.stack([tf.image.random_crop(img, (patch_size, patch_size, 3))
                            for _ in range(crops_per_image)])
        return tf.data.Dataset.from_tensor_slices(stacked)

    def pair(hr):
        return downscale(hr, lr_size), to_signed(hr)

    ds = images.repeat().shuffle(64).flat_map(crops).shuffle(SHUFFLE_BUFFER)
    ds = ds.map(pair, num_parallel_calls=tf.data.AUTOTUNE)
    return ImageData(ds, max(1, pixels // (patch_size * patch_size)), patch_size, 3, None, name)


def heldout_images(spec: str, *, scale: int = 4, limit: int = 0, max_size: int = 0):
    """Held-out HR images of `spec` as uint8 arrays, cropped to a multiple of `scale`.

    Args:
        limit: keep at most this many images (0: all).
        max_size: centre-crop larger images to at most `max_size` on each side
            (0: whole images; DIV2K's 2K images are slow to upscale on a CPU).
    """
    images, _, _ = _source(spec, "test", 0)
    out = []
    for img in images.as_numpy_iterator():
        if max_size:
            h, w = img.shape[:2]
            th, tw = min(h, max_size), min(w, max_size)
            img = img[(h - th) // 2:(h - th) // 2 + th, (w - tw) // 2:(w - tw) // 2 + tw]
        out.append(mod_crop(img, scale))
        if limit and len(out) >= limit:
            break
    return out


def mod_crop(img, scale):
    """Crop an image (H, W, C) to the largest multiple of `scale` (top-left anchored)."""
    h, w = img.shape[0] - img.shape[0] % scale, img.shape[1] - img.shape[1] % scale
    return img[:h, :w]


def downscale(hr, size):
    """Bicubic, antialiased downscale of uint8 image(s) to `size` (int or (h, w)), in [-1, 1].

    The result is rounded to 8-bit values, as a saved LR image would be.
    """
    import tensorflow as tf

    size = (size, size) if isinstance(size, int) else tuple(size)
    lr = tf.image.resize(tf.cast(hr, tf.float32), size, method="bicubic", antialias=True)
    return to_signed(tf.clip_by_value(tf.round(lr), 0.0, 255.0))


def bicubic_upscale(lr, size):
    """Bicubic upscale of [-1, 1] image(s) to `size` (h, w): the SR baseline, in [-1, 1]."""
    import tensorflow as tf

    return tf.clip_by_value(tf.image.resize(lr, size, method="bicubic"), -1.0, 1.0)


def to_signed(x):
    """8-bit values (uint8 or float) -> float32 in [-1, 1]."""
    import tensorflow as tf

    return tf.cast(x, tf.float32) / 127.5 - 1.0


def lr_pairs(hr_images, scale):
    """(LR, HR) [-1, 1] arrays for each uint8 HR image whose sides are multiples of `scale`."""
    return [(downscale(hr[None], (hr.shape[0] // scale, hr.shape[1] // scale))[0].numpy(),
             hr) for hr in hr_images]


def _check_sizes(patch_size, scale):
    if scale < 1:
        raise KzooError(f"scale must be >= 1, got {scale}")
    if patch_size < scale or patch_size % scale:
        raise KzooError(f"patch size {patch_size} must be a positive multiple of the scale {scale}")


# --- sources: datasets of uint8 HR images (H, W, 3) ---------------------------------

def _source(spec, split, patch_size):
    """(dataset of uint8 images, name, total pixels) for `split` "train" or "test"."""
    if not isinstance(spec, str) or not spec:
        raise KzooError("--data is empty: give builtin:photos, tfds:div2k or a folder of images")
    if spec.startswith("builtin:"):
        if spec != "builtin:photos":
            raise KzooError(f"super-resolution uses builtin:photos, not {spec!r}")
        return _from_photos(split, patch_size)
    if spec.startswith("tfds:"):
        return _from_tfds(spec[5:], split, patch_size)
    return _from_folder(spec, split, patch_size)


def _from_photos(split, patch_size):
    import tensorflow as tf

    from kzoo.data.photos import photos

    imgs = photos(split)
    ds = tf.data.Dataset.from_generator(lambda: iter(imgs),
                                        output_signature=tf.TensorSpec((None, None, 3), tf.uint8))
    return ds.cache(), "builtin:photos", sum(i.shape[0] * i.shape[1] for i in imgs)


def _from_folder(spec, split, patch_size):
    import tensorflow as tf
    from PIL import Image

    folder = Path(os.path.expanduser(spec))
    if not folder.is_dir():
        raise KzooError(f"data folder {spec!r} does not exist or is not a folder "
                        "(or unknown source; use builtin:photos or tfds:div2k)")
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        paths, _ = readable_images(list_images(folder / split))
    else:
        paths, _ = readable_images(list_images(folder))
        test = (paths[9::10] or paths[-1:]) if len(paths) >= 2 else []
        paths = test if split == "test" else [p for p in paths if p not in set(test)]
    if not paths:
        raise KzooError(f"data folder {spec!r} holds no readable {split} images")
    pixels = 0
    for p in paths:
        with Image.open(p) as im:
            w, h = im.size
        if min(w, h) < patch_size:
            raise KzooError(f"image {p} is {w}x{h}, smaller than the {patch_size}x{patch_size} "
                            "HR patch size (remove it or lower --image-size)")
        pixels += w * h

    def decode(path):
        img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        img.set_shape((None, None, 3))
        return img

    ds = tf.data.Dataset.from_tensor_slices([str(p) for p in paths]).map(decode).ignore_errors()
    return ds, str(folder), pixels


def _from_tfds(name, split, patch_size):
    import tensorflow as tf

    from kzoo.data.tfds_source import load_split

    name = name.split(":", 1)[0]
    if not name.startswith("div2k"):
        raise KzooError(f"super-resolution reads tfds:div2k[/CONFIG], not tfds:{name}")
    tfds_split = "train" if split == "train" else "validation"
    ds, count = load_split(name, tfds_split, shuffle_files=split == "train")
    ds = ds.map(lambda ex: ex["hr"])
    if patch_size:
        ds = ds.filter(lambda img: tf.reduce_min(tf.shape(img)[:2]) >= patch_size)
        # A stream whose images are all too small would repeat forever without a patch.
        if not list(ds.take(1)):
            raise KzooError(f"tfds:{name} {tfds_split}: no image is at least {patch_size}x{patch_size}")
    # Nominal epoch size: DIV2K's HR images are about 2040x1400.
    return ds, f"tfds:{name}", count * 2040 * 1400
