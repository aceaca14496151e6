"""Image-to-image data: paired (pix2pix) and unpaired (CycleGAN) images.

A spec string picks the source:

- ``builtin:photos/edges2photo`` -- paired: Canny edges of a crop -> the crop.
- ``builtin:photos/gray2color`` -- paired: the grayscale crop -> the colour crop. The
  gray image is the crop's CIE L* rendered as the sRGB gray of that lightness
  (`gray_of`), so a colouriser that keeps L and predicts a*b* (pix2pix with
  ``color="lab"``) gets back exactly the gray input when it predicts ab = 0.
- ``builtin:photos/domains`` -- unpaired, a *toy* pair of domains: A = crops of the
  photographs in their own colours, B = other crops with a fixed warm "vintage"
  colour grade (`warm_grade`). Real CycleGAN domains (horses/zebras) differ in
  shape and texture; this pair differs only in colour, so the ground truth of
  A -> B is known on held-out crops.
- a pix2pix folder: side-by-side ``A|B`` images (width = 2 x height), the format of
  the original pix2pix datasets (facades, maps, ...), either directly in the
  folder or in ``train/`` with ``test/`` (or ``val/``) held out.
- a CycleGAN folder: ``trainA/`` and ``trainB/`` (``testA/``, ``testB/`` held out).
- ``tfds:cycle_gan/<pair>`` -- e.g. ``tfds:cycle_gan/horse2zebra`` (splits trainA,
  trainB, testA, testB).

The builtin tasks are made from the colour photographs of `kzoo.data.photos`:
training crops come from its train photos only; held-out crops (`split="test"`)
from its held-out photos, never used for training. Images are float32 in
[-1, 1]. `pair_pipeline` adds the paper's augmentation (random jitter: resize to
286/256 of the size and crop back at random, and mirroring) in tf.data.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from kzoo.data.images import list_images, readable_images
from kzoo.errors import KzooError

BUILTIN_TASKS = ("edges2photo", "gray2color", "domains")
JITTER = 286 / 256  # pix2pix / CycleGAN: load at 286, random crop at 256
TRAIN_SEED, TEST_SEED = 0, 1


@dataclasses.dataclass
class ImagePairs:
    """Images of two domains, A (inputs) and B (outputs), ready for tf.data.

    Attributes:
        a: unbatched `tf.data.Dataset` of float32 images (S, S, input_channels).
        b: unbatched `tf.data.Dataset` of float32 images (S, S, channels).
        paired: whether the i-th element of `a` and of `b` belong together.
        num_a: images in `a`.
        num_b: images in `b`.
        image_size: S.
        input_channels: channels of A.
        channels: channels of B.
        name: the spec the data came from.
    """

    a: object
    b: object
    paired: bool
    num_a: int
    num_b: int
    image_size: int
    input_channels: int
    channels: int
    name: str
    num_classes: int | None = None  # always None; read by the runner's metadata

    @property
    def num_examples(self):
        """One epoch: every pair, or the larger domain (as the CycleGAN code counts)."""
        return self.num_a if self.paired else max(self.num_a, self.num_b)

    def arrays(self, limit=None):
        """The first `limit` images of A and of B as NumPy arrays."""
        take = lambda ds: np.stack(list(ds.take(limit or -1).as_numpy_iterator()))  # noqa: E731
        return take(self.a), take(self.b)


def load_pairs(spec: str, *, image_size: int, split: str = "train", paired: bool = True,
               direction: str = "AtoB", num_crops: int = 400) -> ImagePairs | None:
    """Load `split` ("train" or "test") of `spec`; None if the source has no held-out part.

    `paired=True` (pix2pix) refuses unpaired sources. `direction="BtoA"` swaps the
    domains. `num_crops`: how many crops a builtin task makes (train split).
    """
    if direction not in ("AtoB", "BtoA"):
        raise KzooError(f"direction must be AtoB or BtoA, got {direction!r}")
    if image_size < 8:
        raise KzooError(f"image size must be at least 8, got {image_size}")
    if spec.startswith("builtin:"):
        pairs = _builtin(spec, image_size, split, num_crops)
    elif spec.startswith("tfds:"):
        pairs = _tfds(spec, image_size, split)
    else:
        folder = Path(os.path.expanduser(spec))
        if not folder.is_dir():
            raise KzooError(f"data folder {spec!r} does not exist (or unknown source; use "
                            f"builtin:photos/<{'|'.join(BUILTIN_TASKS)}>, tfds:cycle_gan/<pair> or a folder)")
        unpaired = (folder / "trainA").exists() or (folder / "trainB").exists()
        pairs = (_cyclegan_folder if unpaired else _pix2pix_folder)(folder, image_size, split)
    if pairs is None:
        return None
    if paired and not pairs.paired:
        raise KzooError(f"{spec} holds unpaired images; this model needs (input, target) pairs "
                        "(a pix2pix folder of side-by-side A|B images or builtin:photos/edges2photo)")
    if direction == "BtoA":
        pairs = dataclasses.replace(pairs, a=pairs.b, b=pairs.a, num_a=pairs.num_b, num_b=pairs.num_a,
                                    input_channels=pairs.channels, channels=pairs.input_channels)
    return pairs


def with_channels(pairs: ImagePairs, input_channels=None, channels=None) -> ImagePairs:
    """`pairs` with gray (1-channel) domains repeated to `input_channels` (A) / `channels` (B).

    A gray image is the RGB image whose three channels are equal; the junyanz authors
    load every pix2pix pair that way (pytorch-CycleGAN-and-pix2pix `data/aligned_dataset.py`:
    `AB = Image.open(AB_path).convert('RGB')`), so an RGB model fine-tunes on gray inputs
    such as builtin:photos/gray2color or edges2photo. Other channel counts are refused.
    """
    changes = {}
    for key, have, want in (("a", pairs.input_channels, input_channels),
                            ("b", pairs.channels, channels)):
        if want is None or want == have:
            continue
        if have != 1:
            raise KzooError(f"{pairs.name}: domain {key.upper()} has {have} channels, the model "
                            f"takes {want}; only gray (1-channel) images are repeated to more")
        changes[key] = getattr(pairs, key).map(lambda x, n=int(want): _repeat(x, n))
        changes["input_channels" if key == "a" else "channels"] = int(want)
    return dataclasses.replace(pairs, **changes) if changes else pairs


def _repeat(x, n):
    import tensorflow as tf

    return tf.repeat(x, n, axis=-1)


# --- builtin (offline), from kzoo.data.photos -------------------------------------

def warm_grade(rgb01):
    """Domain B of the toy pair: a fixed, invertible warm colour grade of [0, 1] RGB."""
    matrix = np.array([[0.8, 0.4, 0.1], [0.1, 0.7, 0.1], [0.1, 0.1, 0.4]], np.float32)
    return np.clip(rgb01 @ matrix.T + np.array([0.12, 0.06, 0.0], np.float32), 0.0, 1.0)


def gray_of(rgb01):
    """The sRGB gray (N, S, S, 1) with the CIE L* of each pixel of [0, 1] RGB images (a* = b* = 0)."""
    from kzoo.layers.color import lightness_to_gray, rgb_to_lab

    return np.asarray(lightness_to_gray(rgb_to_lab(rgb01)[..., :1]), np.float32)


def edges(gray01, image_size):
    """Canny edges (1.0 on edges) of [0, 1] grayscale images (N, S, S)."""
    from skimage.feature import canny

    sigma = max(1.0, image_size / 128)
    return np.stack([canny(g, sigma=sigma) for g in gray01]).astype(np.float32)


def _builtin(spec, image_size, split, num_crops):
    from kzoo.data.photos import photos, random_crops

    task = spec.split(":", 1)[1].removeprefix("photos/")
    if not spec.startswith("builtin:photos/") or task not in BUILTIN_TASKS:
        raise KzooError(f"unknown builtin image-to-image data {spec!r}; known: "
                        + ", ".join(f"builtin:photos/{t}" for t in BUILTIN_TASKS))
    train = split == "train"
    count = num_crops if train else 24
    rng = np.random.default_rng(TRAIN_SEED if train else TEST_SEED)
    crops = random_crops(photos("train" if train else "test"), image_size, count, rng,
                         scale=(0.3, 1.0)).astype(np.float32) / 255.0
    gray = crops @ np.array([0.299, 0.587, 0.114], np.float32)
    if task == "edges2photo":
        a, b = edges(gray, image_size)[..., None], crops
    elif task == "gray2color":
        a, b = gray_of(crops), crops
    else:
        # Training: B are other crops than A (unpaired). Held out: B = the grade of
        # A, so that translations can be scored against the true answer.
        others = crops if not train else random_crops(photos("train"), image_size, count, rng,
                                                      scale=(0.3, 1.0)).astype(np.float32) / 255.0
        a, b = crops, warm_grade(others)
    return _from_arrays(a, b, paired=task != "domains" or not train, name=spec)


def _from_arrays(a01, b01, *, paired, name):
    import tensorflow as tf

    a, b = (np.asarray(x, np.float32) * 2.0 - 1.0 for x in (a01, b01))
    return ImagePairs(tf.data.Dataset.from_tensor_slices(a), tf.data.Dataset.from_tensor_slices(b),
                      paired, len(a), len(b), a.shape[1], a.shape[-1], b.shape[-1], name)


# --- folders -----------------------------------------------------------------------

def _pix2pix_folder(folder, image_size, split):
    import tensorflow as tf

    held_out = next((folder / s for s in ("test", "val") if (folder / s).is_dir()), None)
    if split == "test":
        if held_out is None:
            return None
        source = held_out
    elif (folder / "train").is_dir():
        source = folder / "train"
    elif held_out is not None:
        raise KzooError(f"pix2pix folder {folder} has {held_out.name}/ but no train/")
    else:
        source = folder
    paths, _ = readable_images(list_images(source))
    if not paths:
        raise KzooError(f"pix2pix folder {source} holds no readable images")
    for p in paths:
        check_side_by_side(p)

    def decode(path):
        img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        half = tf.shape(img)[1] // 2
        a, b = img[:, :half], img[:, half:]
        return _resize01(a, image_size), _resize01(b, image_size)

    ds = tf.data.Dataset.from_tensor_slices([str(p) for p in paths]).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()  # last line of defence
    return ImagePairs(ds.map(lambda a, b: a), ds.map(lambda a, b: b), True, len(paths), len(paths),
                      image_size, 3, 3, str(source))


def check_side_by_side(path):
    """Raise KzooError unless `path` is a side-by-side A|B image (width = 2 x height)."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
    if w % 2:
        raise KzooError(f"{path}: width {w} is odd, so its A and B halves would differ in size; "
                        "a pix2pix pair is A|B side by side, width = 2 x height")
    if w != 2 * h:
        raise KzooError(f"{path}: {w}x{h} is not a side-by-side A|B pair (width must be twice "
                        "the height, e.g. 512x256)")


def _resize01(img, image_size):
    import tensorflow as tf

    img = tf.image.resize(tf.cast(img, tf.float32), (image_size, image_size), antialias=True)
    img = tf.clip_by_value(img / 127.5 - 1.0, -1.0, 1.0)
    img.set_shape((image_size, image_size, 3))
    return img


def _cyclegan_folder(folder, image_size, split):
    import tensorflow as tf

    from kzoo.data.images import _prepare_image

    prefix = "train" if split == "train" else "test"
    domains = []
    for d in "AB":
        sub = folder / f"{prefix}{d}"
        if not sub.is_dir():
            if split == "test":
                return None
            raise KzooError(f"CycleGAN folder {folder} has no {sub.name}/ (needs trainA/ and trainB/)")
        paths, _ = readable_images(list_images(sub))
        if not paths:
            if split == "test":
                return None
            raise KzooError(f"CycleGAN domain folder {sub} holds no readable images; both "
                            "trainA/ and trainB/ need images")
        ds = tf.data.Dataset.from_tensor_slices([str(p) for p in paths]).map(
            lambda p: _prepare_image(tf.io.decode_image(tf.io.read_file(p), channels=3,
                                                        expand_animations=False), image_size, 3),
            num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()  # last line of defence
        domains.append((ds, len(paths)))
    (a, na), (b, nb) = domains
    return ImagePairs(a, b, False, na, nb, image_size, 3, 3, str(folder))


# --- TFDS --------------------------------------------------------------------------

def _tfds(spec, image_size, split):
    import tensorflow as tf

    from kzoo.data.images import _prepare_image
    from kzoo.data.tfds_source import load_split

    name = spec[5:]
    if not name.startswith("cycle_gan/"):
        raise KzooError(f"{spec}: image-to-image TFDS data is tfds:cycle_gan/<pair>, "
                        "e.g. tfds:cycle_gan/horse2zebra")
    prefix = "train" if split == "train" else "test"
    out = []
    for d in "AB":
        ds, n = load_split(name, f"{prefix}{d}")
        if n == 0:
            raise KzooError(f"{spec} split {prefix}{d} is empty")
        out.append((ds.map(lambda ex: _prepare_image(ex["image"], image_size, 3),
                           num_parallel_calls=tf.data.AUTOTUNE), n))
    (a, na), (b, nb) = out
    return ImagePairs(a, b, False, na, nb, image_size, 3, 3, spec)


# --- training pipeline -----------------------------------------------------------

def jitter(images, seed, image_size):
    """Random jitter and mirroring (Isola et al., 2017, Sec. 6.2) with a stateless `seed`.

    Resize to round(286/256 * size), crop a random size x size window, flip left-right
    with probability 1/2. `images` may hold A and B stacked on channels, so that
    a pair gets the same jitter.
    """
    import tensorflow as tf

    big = round(image_size * JITTER)
    x = tf.image.resize(images, (big, big), method="bicubic")
    x = tf.image.stateless_random_crop(x, (image_size, image_size, images.shape[-1]), seed)
    x = tf.image.stateless_random_flip_left_right(x, seed + 1)
    return tf.clip_by_value(x, -1.0, 1.0)


def pair_pipeline(pairs: ImagePairs, batch_size: int, *, seed: int = 0, augment: bool = True):
    """Cached, shuffled, repeated, jittered batches of `(a, b)`.

    Paired data: each pair is shuffled and jittered together. Unpaired data: the
    two domains are shuffled and jittered independently, then zipped.
    """
    import tensorflow as tf

    if pairs.num_a < batch_size or pairs.num_b < batch_size:
        raise KzooError(f"{pairs.name} has {min(pairs.num_a, pairs.num_b)} images, fewer than one "
                        f"batch of {batch_size}")
    size = pairs.image_size

    def stream(ds, n, s):
        ds = ds.cache().shuffle(min(n, 10_000), seed=s, reshuffle_each_iteration=True).repeat()
        if not augment:
            return ds
        seeds = tf.data.Dataset.random(seed=s).batch(2)
        return tf.data.Dataset.zip((ds, seeds)).map(lambda x, k: jitter(x, k, size),
                                                    num_parallel_calls=tf.data.AUTOTUNE)

    if pairs.paired:
        ca = pairs.input_channels
        both = tf.data.Dataset.zip((pairs.a, pairs.b)).map(lambda a, b: tf.concat([a, b], -1))
        ds = stream(both, pairs.num_a, seed).map(lambda x: (x[..., :ca], x[..., ca:]))
    else:
        ds = tf.data.Dataset.zip((stream(pairs.a, pairs.num_a, seed),
                                  stream(pairs.b, pairs.num_b, seed + 1)))
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
