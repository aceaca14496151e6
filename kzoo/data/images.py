"""Unconditional / class-conditional image datasets (see `kzoo.data`)."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np

from kzoo.errors import KzooError

log = logging.getLogger("kzoo.data")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# Fixed held-out split of the scikit-learn digits, shared with kzoo.metrics'
# reference classifier so that nothing it is evaluated on was trained on.
DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0


@dataclasses.dataclass
class ImageData:
    """An image dataset ready for a tf.data pipeline.

    Attributes:
        dataset: unbatched `tf.data.Dataset` of float32 images in [-1, 1]
            (HxWxC), or of `(image, label)` pairs when `num_classes` is set.
        num_examples: number of examples in one pass.
        image_size: height and width of every image.
        channels: 1 (grayscale) or 3 (RGB).
        num_classes: number of labels, or None for unlabelled data.
        name: the spec the data came from.
        skipped: files of a folder that were skipped because they cannot be decoded.
    """

    dataset: object
    num_examples: int
    image_size: int
    channels: int
    num_classes: int | None
    name: str
    skipped: int = 0


def load(spec: str, *, image_size: int, split: str = "train", channels: int | None = None,
         labels: bool = True) -> ImageData:
    """Load the dataset named by `spec` (see module docstring)."""
    if not isinstance(spec, str) or not spec:
        raise KzooError("--data is empty: give builtin:NAME, tfds:NAME or a folder")
    if image_size < 4:
        raise KzooError(f"image size must be at least 4, got {image_size}")
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        if name not in _BUILTINS:
            raise KzooError(
                f"unknown builtin dataset {name!r}; known: {', '.join(sorted(_BUILTINS))}"
            )
        images, y, num_classes = _BUILTINS[name](split)
        return _from_arrays(images, y if labels else None, num_classes if labels else None,
                            image_size, channels, spec)
    if spec.startswith("tfds:"):
        return _from_tfds(spec[5:], split, image_size, channels, labels)
    return _from_folder(spec, image_size, channels, labels)


# --- builtin (offline) ---------------------------------------------------------

def _digits(split):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]  # [0, 1]
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, d.target, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED,
        stratify=d.target)
    x, y = (x_tr, y_tr) if split == "train" else (x_te, y_te)
    return x, y.astype(np.int32), 10


def _faces(split):
    from skimage.data import lfw_subset

    faces = lfw_subset()[:100].astype(np.float32)[..., None]  # the first 100 are faces
    x = faces[:90] if split == "train" else faces[90:]
    return x, None, None


def digits_arrays(split="train", image_size=8):
    """The digits as float32 [0, 1] arrays (N, S, S, 1) and int labels; used by metrics."""
    x, y, _ = _digits(split)
    if image_size != 8:
        x = resize_numpy(x, image_size)
    return x, y


_BUILTINS = {"digits": _digits, "faces": _faces}


def resize_numpy(x, size):
    """Bilinear (antialiased) resize of a float NHWC array with TensorFlow (refused in
    one line when the resized float32 array cannot fit the machine's memory)."""
    import tensorflow as tf

    from kzoo.io import check_memory

    check_memory(len(x) * size * size * x.shape[-1] * 4, f"resizing {len(x)} images to {size}x{size} "
                 "(float32)", "lower --image-size")

    return tf.image.resize(x, (size, size), method="bilinear", antialias=True).numpy()


def _from_arrays(x, y, num_classes, image_size, channels, name):
    import tensorflow as tf

    x = np.asarray(x, np.float32)
    if channels and channels != x.shape[-1]:
        x = _convert_channels(x, channels)
    if x.shape[1] != image_size:
        x = resize_numpy(x, image_size)
    x = np.clip(x, 0.0, 1.0) * 2.0 - 1.0
    elements = (x, y) if y is not None else x
    ds = tf.data.Dataset.from_tensor_slices(elements)
    return ImageData(ds, len(x), image_size, x.shape[-1], num_classes, name)


def _convert_channels(x, channels):
    if channels == 3 and x.shape[-1] == 1:
        return np.repeat(x, 3, axis=-1)
    if channels == 1 and x.shape[-1] == 3:
        return (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    raise KzooError(f"cannot convert {x.shape[-1]}-channel images to {channels} channels")


# --- TFDS ------------------------------------------------------------------------

def _from_tfds(name, split, image_size, channels, labels):
    import tensorflow as tf

    from kzoo.data.tfds_source import get_builder, load_split

    if ":" in name:
        name, split = name.split(":", 1)
    builder = get_builder(name)
    features = builder.info.features
    image_key = next((k for k in ("image", "img") if k in features), None)
    if image_key is None:
        raise KzooError(f"tfds dataset {name!r} has no 'image' feature")
    label_key = "label" if labels and "label" in features else None
    num_classes = features[label_key].num_classes if label_key else None
    ds, num_examples = load_split(name, split)
    src_channels = features[image_key].shape[-1]
    channels = channels or src_channels

    def prepare(ex):
        img = _prepare_image(ex[image_key], image_size, channels)
        if label_key:
            return img, tf.cast(ex[label_key], tf.int32)
        return img

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return ImageData(ds, int(num_examples), image_size, channels, num_classes, f"tfds:{name}")


def _prepare_image(img, image_size, channels):
    """uint8 HxWxC -> center square crop -> resize -> float [-1, 1] with `channels`."""
    import tensorflow as tf

    img = tf.convert_to_tensor(img)
    if img.shape.rank == 2:
        img = img[..., None]
    c = img.shape[-1]
    if c == 4:
        img, c = img[..., :3], 3
    if channels == 3 and c == 1:
        img = tf.image.grayscale_to_rgb(img)
    elif channels == 1 and c == 3:
        img = tf.image.rgb_to_grayscale(img)
    h, w = tf.shape(img)[0], tf.shape(img)[1]
    side = tf.minimum(h, w)
    img = tf.image.crop_to_bounding_box(img, (h - side) // 2, (w - side) // 2, side, side)
    img = tf.image.resize(tf.cast(img, tf.float32), (image_size, image_size), antialias=True)
    img = tf.clip_by_value(img / 127.5 - 1.0, -1.0, 1.0)
    img.set_shape((image_size, image_size, channels))
    return img


# --- folders ---------------------------------------------------------------------

def list_images(folder: Path):
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def readable_images(paths, channels: int = 0):
    """Split `paths` into the images TensorFlow decodes and a count of those it cannot.

    Each file goes through the decoder the tf.data pipelines use
    (`tf.io.decode_image` with `channels`), in a parallel tf.data pass, so a file
    that another library opens but TensorFlow cannot decode (a TIFF named .png, a
    truncated JPEG, a GIF asked for one channel) is skipped here, with a warning
    saying how many, instead of failing training mid-epoch.

    Args:
        paths: image files.
        channels: the channels the pipeline decodes to (0: as stored).

    Returns:
        (the decodable paths in their order, the number skipped).

    Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> folder = Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (4, 4)).save(folder / "a.png")
    >>> _ = (folder / "b.png").write_bytes(b"not an image")
    >>> paths, skipped = readable_images(list_images(folder), channels=3)
    >>> [p.name for p in paths], skipped
    (['a.png'], 1)
    """
    import tensorflow as tf

    paths = list(paths)
    if not paths:
        return [], 0

    def check(path):
        img = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        return path, tf.shape(img)[0]  # the shape needs the decoded image: the decode runs

    ds = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
    ds = ds.map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False).ignore_errors()
    ok = {path.decode() for path, _ in ds.as_numpy_iterator()}
    good = [p for p in paths if str(p) in ok]
    bad = [p for p in paths if str(p) not in ok]
    if bad:
        log.warning("skipped %d unreadable image(s) that TensorFlow cannot decode, e.g. %s",
                    len(bad), bad[0])
    return good, len(bad)


def _guess_channels(paths):
    """1 if the first image PIL can open is grayscale, else 3."""
    from PIL import Image

    for p in paths:
        try:
            with Image.open(p) as im:
                return 1 if im.mode in ("L", "1", "I;16", "I", "LA") else 3
        except Exception:  # unreadable: readable_images skips it
            continue
    return 3


def _from_folder(spec, image_size, channels, labels):
    import tensorflow as tf

    folder = Path(os.path.expanduser(spec))
    if not folder.exists():
        raise KzooError(f"data folder {spec!r} does not exist (or unknown source; use builtin:NAME or tfds:NAME)")
    if not folder.is_dir():
        raise KzooError(f"data path {spec!r} is not a folder")
    listed = list_images(folder)
    if channels is None:
        channels = _guess_channels(listed)
    paths, skipped = readable_images(listed, channels)
    if not paths:
        raise KzooError(f"data folder {spec!r} holds no readable images ({', '.join(IMAGE_EXTENSIONS)})"
                        + (f"; {skipped} file(s) could not be decoded" if skipped else ""))
    class_names = sorted({p.relative_to(folder).parts[0] for p in paths if len(p.relative_to(folder).parts) > 1})
    use_labels = labels and len(class_names) >= 2 and all(len(p.relative_to(folder).parts) > 1 for p in paths)
    y = np.array([class_names.index(p.relative_to(folder).parts[0]) for p in paths], np.int32) if use_labels else None

    def decode(path, *label):
        raw = tf.io.read_file(path)
        img = tf.io.decode_image(raw, channels=channels, expand_animations=False)
        img = _prepare_image(img, image_size, channels)
        return (img, *label) if label else img

    elements = ([str(p) for p in paths], y) if use_labels else [str(p) for p in paths]
    ds = tf.data.Dataset.from_tensor_slices(elements)
    # A file that changed since the scan is dropped, never a crash mid-fit.
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    return ImageData(ds, len(paths), image_size, channels,
                     len(class_names) if use_labels else None, str(folder), skipped=skipped)


def batch_pipeline(data: ImageData, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                   repeat: bool = True, drop_remainder: bool = True, augment=None):
    """Cache, shuffle, repeat, (augment,) batch and prefetch an `ImageData` for training.

    `augment(*example, seed)` maps one example with a stateless random `seed`
    (int64 pair drawn from `seed`), so augmentation is reproducible.
    """
    import tensorflow as tf

    if batch_size < 1:
        raise KzooError(f"batch size must be positive, got {batch_size}")
    if drop_remainder and data.num_examples < batch_size:
        raise KzooError(
            f"{data.name} has {data.num_examples} examples, fewer than one batch of {batch_size}")
    ds = data.dataset.cache()
    if shuffle:
        ds = ds.shuffle(min(data.num_examples, 10_000), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if augment is not None:
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda example, k: augment(*(example if isinstance(example, tuple) else (example,)), k),
            num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def has_heldout_split(spec: str) -> bool:
    """Whether `spec` names data with a held-out "test" split: builtins and tfds without a split."""
    return spec.startswith("builtin:") or (spec.startswith("tfds:") and ":" not in spec[5:])
