import numpy as np

from kzoo.data.photos import HELDOUT, TRAIN, photos, random_crops


def test_splits_are_disjoint_colour_photos():
    assert not set(TRAIN) & set(HELDOUT)
    train, test = photos("train"), photos("test")
    assert len(train) == len(TRAIN) and len(test) == len(HELDOUT)
    for img in train + test:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[-1] == 3
    train_bytes = {img.tobytes() for img in train}
    assert not any(img.tobytes() in train_bytes for img in test)


def test_random_crops():
    rng = np.random.default_rng(0)
    crops = random_crops(photos("train"), 32, 10, rng)
    assert crops.shape == (10, 32, 32, 3) and crops.dtype == np.uint8
    scaled = random_crops(photos("test"), 32, 4, rng, scale=(0.5, 1.0))
    assert scaled.shape == (4, 32, 32, 3)
    again = random_crops(photos("train"), 32, 10, np.random.default_rng(0))
    np.testing.assert_array_equal(crops, again)
