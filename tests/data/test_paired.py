import numpy as np
import pytest
from PIL import Image

from kzoo.data.paired import check_side_by_side, load_pairs, pair_pipeline, warm_grade
from kzoo.errors import KzooError

GRAY = np.array([0.299, 0.587, 0.114], np.float32)


@pytest.mark.parametrize("task,ca,paired", [("edges2photo", 1, True), ("gray2color", 1, True),
                                            ("domains", 3, False)])
def test_builtin_tasks(task, ca, paired):
    spec = f"builtin:photos/{task}"
    train = load_pairs(spec, image_size=16, num_crops=12, paired=False)
    test = load_pairs(spec, image_size=16, split="test", paired=False)
    assert (train.paired, train.num_examples, train.input_channels, train.channels) == (paired, 12, ca, 3)
    assert test.paired  # held-out pairs can always be scored
    a, b = test.arrays()
    assert a.shape == (24, 16, 16, ca) and b.shape == (24, 16, 16, 3)
    assert a.min() >= -1 and b.max() <= 1
    b01 = (b + 1) / 2
    if task == "edges2photo":
        assert set(np.unique(a)) == {-1.0, 1.0}
    elif task == "gray2color":  # the gray of the same CIE L*: Lab (L, 0, 0) of the colour crop
        from skimage.color import rgb2lab

        gray_lab = rgb2lab(np.repeat((a + 1) / 2, 3, -1).astype(np.float64))
        np.testing.assert_allclose(gray_lab[..., 0], rgb2lab(b01.astype(np.float64))[..., 0], atol=2e-3)
        np.testing.assert_allclose(gray_lab[..., 1:], 0, atol=1e-2)
        assert np.abs((a[..., 0] + 1) / 2 - b01 @ GRAY).mean() < 0.05  # close to, not, the luma
    else:
        np.testing.assert_allclose((b + 1) / 2, warm_grade((a + 1) / 2), atol=1e-5)
    # held-out crops are of other photographs than the training crops
    assert not np.allclose(train.arrays(1)[1], b[:1])


def test_pix2pix_needs_paired_data_and_direction_swaps():
    with pytest.raises(KzooError, match="unpaired"):
        load_pairs("builtin:photos/domains", image_size=16, num_crops=4)
    swapped = load_pairs("builtin:photos/gray2color", image_size=16, split="test", direction="BtoA")
    assert (swapped.input_channels, swapped.channels) == (3, 1)
    with pytest.raises(KzooError, match="unknown builtin"):
        load_pairs("builtin:photos/nope", image_size=16)


def test_jitter_keeps_pairs_aligned():
    pairs = load_pairs("builtin:photos/gray2color", image_size=16, num_crops=8)
    a, b = next(iter(pair_pipeline(pairs, 8, seed=3)))
    a, b = a.numpy(), b.numpy()
    assert a.shape == (8, 16, 16, 1)
    from kzoo.data.paired import gray_of

    # resampling is not exactly linear in L*: a few thousandths apart after jitter
    np.testing.assert_allclose((a + 1) / 2, gray_of((b + 1) / 2), atol=0.02)
    raw_a, _ = pairs.arrays()
    assert not any(np.allclose(x, y) for x in a for y in raw_a)  # jittered
    with pytest.raises(KzooError, match="fewer than one batch"):
        pair_pipeline(pairs, 9)


def _save(path, w, h, left=0, right=255):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = left
    img[:, w // 2:] = right
    Image.fromarray(img).save(path)


def test_pix2pix_folder(tmp_path):
    for i in range(3):
        _save(tmp_path / "train" / f"{i}.png", 64, 32, left=0, right=255)
    _save(tmp_path / "test" / "t.jpg", 64, 32)
    pairs = load_pairs(str(tmp_path), image_size=16)
    assert pairs.paired and pairs.num_examples == 3
    a, b = pairs.arrays()
    np.testing.assert_allclose(a, -1.0)
    np.testing.assert_allclose(b, 1.0)
    assert load_pairs(str(tmp_path), image_size=16, split="test").num_a == 1
    flat = tmp_path / "flat"
    _save(flat / "x.png", 64, 32)
    assert load_pairs(str(flat), image_size=16, split="test") is None


@pytest.mark.parametrize("w,h,match", [(65, 32, "odd"), (48, 32, "not a side-by-side")])
def test_pix2pix_folder_bad_pairs_name_the_file(tmp_path, w, h, match):
    _save(tmp_path / "ok.png", 64, 32)
    _save(tmp_path / "bad.png", w, h)
    with pytest.raises(KzooError, match=match) as e:
        load_pairs(str(tmp_path), image_size=16)
    assert "bad.png" in str(e.value)
    check_side_by_side(tmp_path / "ok.png")


def test_cyclegan_folder(tmp_path):
    for d, n in (("trainA", 2), ("trainB", 3), ("testA", 1), ("testB", 1)):
        (tmp_path / d).mkdir()
        for i in range(n):
            Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(tmp_path / d / f"{i}.png")
    pairs = load_pairs(str(tmp_path), image_size=16, paired=False)
    assert not pairs.paired and (pairs.num_a, pairs.num_b, pairs.num_examples) == (2, 3, 3)
    a, b = next(iter(pair_pipeline(pairs, 2)))
    assert a.shape == b.shape == (2, 16, 16, 3)
    assert load_pairs(str(tmp_path), image_size=16, split="test", paired=False).num_b == 1


def test_cyclegan_folder_with_an_empty_domain(tmp_path):
    (tmp_path / "trainA").mkdir()
    (tmp_path / "trainB").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "trainA" / "a.png")
    with pytest.raises(KzooError, match="trainB.*no readable images"):
        load_pairs(str(tmp_path), image_size=16, paired=False)
    (tmp_path / "trainB").rmdir()
    with pytest.raises(KzooError, match="no trainB/"):
        load_pairs(str(tmp_path), image_size=16, paired=False)


def test_tfds_cycle_gan_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=3):
        pairs = load_pairs("tfds:cycle_gan/horse2zebra", image_size=16, paired=False)
        assert (pairs.num_a, pairs.num_b, pairs.paired) == (3, 3, False)
        a, b = next(iter(pair_pipeline(pairs, 2)))
        assert a.shape == b.shape == (2, 16, 16, 3)
        held = load_pairs("tfds:cycle_gan/horse2zebra", image_size=16, split="test", paired=False)
        assert held.arrays(2)[0].shape == (2, 16, 16, 3)
    with pytest.raises(KzooError, match="cycle_gan"):
        load_pairs("tfds:mnist", image_size=16, paired=False)


def test_gray_domains_repeat_to_the_models_channels():
    """`with_channels`: gray A repeated to RGB (as junyanz's `.convert('RGB')`); a
    domain of other channels than 1 is refused with one line."""
    from kzoo.data.paired import with_channels

    pairs = load_pairs("builtin:photos/gray2color", image_size=16, num_crops=2)
    rgb = with_channels(pairs, 3, 3)
    assert (rgb.input_channels, rgb.channels) == (3, 3)
    a, b = rgb.arrays()
    gray, _ = pairs.arrays()
    assert a.shape == (2, 16, 16, 3) and np.array_equal(a, np.repeat(gray, 3, -1))
    assert with_channels(pairs, None, None) is pairs
    with pytest.raises(KzooError, match="domain B has 3 channels, the model takes 1"):
        with_channels(pairs, 3, 1)
