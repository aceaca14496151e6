import numpy as np
import pytest
from PIL import Image

from kzoo.data.segmentation import (IGNORE_LABEL, SHAPES_CLASSES, augment_fn, check_labels,
                                    load_segmentation, shapes, shapes_scene)
from kzoo.errors import KzooError


def test_shapes_scenes_are_deterministic_with_every_class():
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    a, b = shapes_scene(rng_a, 32), shapes_scene(rng_b, 32)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    images, masks = shapes("test", 16)
    assert images.shape == (512, 16, 16, 3) and masks.shape == (512, 16, 16)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert set(np.unique(masks)) == set(range(len(SHAPES_CLASSES)))
    # each labelled shape differs from the background around it
    img, mask = shapes_scene(np.random.default_rng(0), 64)
    for c in np.unique(mask)[1:]:
        assert np.abs(img[mask == c].mean(0) - img[mask == 0].mean(0)).max() > 0.05


def test_splits_differ_and_load_as_pairs():
    train = load_segmentation("builtin:shapes", image_size=16)
    test = load_segmentation("builtin:shapes", image_size=16, split="test")
    assert (train.num_examples, test.num_examples, train.num_classes) == (2048, 512, 5)
    x, y = next(train.dataset.batch(4).as_numpy_iterator())
    assert x.shape == (4, 16, 16, 3) and y.shape == (4, 16, 16) and y.dtype == np.int32
    assert not np.array_equal(shapes("train", 16)[0][:4], shapes("test", 16)[0][:4])


def test_tfds_oxford_pet_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=6):
        data = load_segmentation("tfds:oxford_iiit_pet", image_size=16, split="test")
        x, y = next(data.dataset.batch(6).as_numpy_iterator())
    assert data.num_classes == 3 and data.num_examples == 6
    assert x.shape == (6, 16, 16, 3) and y.shape == (6, 16, 16)
    assert set(np.unique(y)) <= {0, 1, 2, 255}


def _folder(tmp_path, mask_values, mask_size=(12, 10), image_size=(12, 10)):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i, value in enumerate(mask_values):
        Image.fromarray(np.full(image_size[::-1] + (3,), 40 * i, np.uint8)).save(tmp_path / "images" / f"im{i}.jpg")
        mask = np.zeros(mask_size[::-1], np.uint8)
        mask[:4] = value
        Image.fromarray(mask).save(tmp_path / "masks" / f"im{i}.png")
    return str(tmp_path)


def test_folder_pairs_images_and_masks(tmp_path):
    data = load_segmentation(_folder(tmp_path, [1, 2, 255]), image_size=8)
    assert data.num_classes == 3 and data.num_examples == 3
    x, y = next(data.dataset.batch(3).as_numpy_iterator())
    assert x.shape == (3, 8, 8, 3) and y.shape == (3, 8, 8)
    assert set(np.unique(y)) == {0, 1, 2, 255}


def test_folder_mask_of_another_size_names_the_file(tmp_path):
    folder = _folder(tmp_path, [1], mask_size=(12, 11))
    with pytest.raises(KzooError, match=r"im0\.png is 12x11 but its image .*im0\.jpg is 12x10"):
        load_segmentation(folder, image_size=8)


def test_folder_label_out_of_range_names_the_file(tmp_path):
    folder = _folder(tmp_path, [1, 7])
    with pytest.raises(KzooError, match=r"im1\.png: label 7 is outside the 3 classes"):
        load_segmentation(folder, image_size=8, num_classes=3)
    check_labels(np.array([0, 2, 255]), 3, "ok")  # 255 is allowed


def test_folder_missing_mask_and_layout(tmp_path):
    folder = _folder(tmp_path, [1])
    (tmp_path / "masks" / "im0.png").unlink()
    with pytest.raises(KzooError, match="no mask for image .*im0.jpg"):
        load_segmentation(folder, image_size=8)
    with pytest.raises(KzooError, match="must hold images/ and masks/"):
        load_segmentation(str(tmp_path / "images"), image_size=8)


def test_unknown_sources():
    with pytest.raises(KzooError, match="unknown builtin segmentation dataset 'digits'"):
        load_segmentation("builtin:digits", image_size=8)
    with pytest.raises(KzooError, match="no segmentation mapping for tfds:mnist"):
        load_segmentation("tfds:mnist", image_size=8)


def _augment(fn, image, mask, seed):
    import tensorflow as tf

    out = fn(tf.constant(image), tf.constant(mask.astype(np.int32)), tf.constant(seed, tf.int64))
    return out[0].numpy(), out[1].numpy()


def test_augment_flip_keeps_image_and_mask_aligned():
    images, masks = shapes("train", 32)
    image, mask = images[0], masks[0]
    flip = augment_fn(flip=True)
    outs = [_augment(flip, image, mask, [k, 1]) for k in range(8)]
    flipped = [o for o in outs if not np.array_equal(o[1], mask)]
    assert 0 < len(flipped) < 8  # flipped about half the time
    for img, m in outs:
        if np.array_equal(m, mask):
            np.testing.assert_array_equal(img, image)
        else:
            np.testing.assert_array_equal(m, mask[:, ::-1])
            np.testing.assert_array_equal(img, image[:, ::-1])
    np.testing.assert_array_equal(_augment(flip, image, mask, [3, 1])[0], outs[3][0])  # stateless


def test_augment_scaling_pads_with_ignore_and_keeps_labels():
    images, masks = shapes("train", 32)
    small = augment_fn(flip=False, scale_range=(0.5, 0.5))
    img, m = _augment(small, images[1], masks[1], [0, 2])
    assert img.shape == (32, 32, 3) and m.shape == (32, 32) and m.dtype == np.int32
    assert (m == IGNORE_LABEL).mean() == 0.75  # a 16x16 scene padded to 32x32
    assert np.all(img[m == IGNORE_LABEL] == 0.0)
    assert set(np.unique(m)) <= set(range(len(SHAPES_CLASSES))) | {IGNORE_LABEL}
    big = augment_fn(flip=False, scale_range=(2.0, 2.0))
    img, m = _augment(big, images[1], masks[1], [0, 2])
    assert IGNORE_LABEL not in m and set(np.unique(m)) <= set(np.unique(masks[1]))
    with pytest.raises(KzooError, match="0 < min <= max"):
        augment_fn(scale_range=(2.0, 1.0))


def test_folder_image_tensorflow_cannot_decode_is_skipped_with_its_mask(tmp_path):
    folder = _folder(tmp_path, [1, 2, 1])
    Image.new("RGB", (12, 10), (1, 2, 3)).save(tmp_path / "images" / "tiff.png", format="TIFF")
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "masks" / "tiff.png")
    data = load_segmentation(folder, image_size=8)
    assert (data.num_examples, data.skipped) == (3, 1)
    assert len(list(data.dataset.as_numpy_iterator())) == 3  # no IteratorGetNext error
