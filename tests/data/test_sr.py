import numpy as np
import pytest
from PIL import Image

from kzoo.data.photos import photos
from kzoo.data.sr import bicubic_upscale, downscale, heldout_images, load_sr, lr_pairs, mod_crop
from kzoo.errors import KzooError


def test_builtin_photos_pairs():
    data = load_sr("builtin:photos", patch_size=32, scale=4)
    assert data.image_size == 32 and data.channels == 3 and data.num_classes is None
    train_pixels = sum(p.shape[0] * p.shape[1] for p in photos("train"))
    assert data.num_examples == train_pixels // 32 ** 2
    lr, hr = next(iter(data.dataset.batch(8)))
    assert lr.shape == (8, 8, 8, 3) and hr.shape == (8, 32, 32, 3)
    assert -1.0 <= float(hr.numpy().min()) and float(hr.numpy().max()) <= 1.0
    # the LR crop is the bicubic x4 downscale of its HR crop, on 8-bit values
    hr8 = np.rint((hr.numpy() + 1.0) * 127.5).astype(np.uint8)
    np.testing.assert_allclose(downscale(hr8, 8).numpy(), lr.numpy(), atol=1e-6)


def test_heldout_photos_are_the_test_split_mod_cropped():
    held = heldout_images("builtin:photos", scale=4)
    test = photos("test")
    assert len(held) == len(test) == 2
    for h, t in zip(held, test):
        assert h.shape[0] % 4 == 0 and h.shape[1] % 4 == 0
        assert t.shape[0] - h.shape[0] < 4 and t.shape[1] - h.shape[1] < 4
        np.testing.assert_array_equal(h, t[:h.shape[0], :h.shape[1]])
    train_bytes = {p.tobytes() for p in photos("train")}
    assert not any(t.tobytes() in train_bytes for t in test)
    small = heldout_images("builtin:photos", scale=4, limit=1, max_size=50)
    assert len(small) == 1 and small[0].shape == (48, 48, 3)


def test_downscale_and_bicubic_baseline():
    flat = np.full((1, 16, 12, 3), 200, np.uint8)
    lr = downscale(flat, (4, 3)).numpy()
    np.testing.assert_allclose(lr, 200 / 127.5 - 1, atol=1e-6)
    up = bicubic_upscale(lr, (16, 12)).numpy()
    assert up.shape == (1, 16, 12, 3)
    np.testing.assert_allclose(up, 200 / 127.5 - 1, atol=1e-5)
    assert mod_crop(np.zeros((10, 7, 3)), 4).shape == (8, 4, 3)
    (lr1, hr1), = lr_pairs([np.zeros((8, 12, 3), np.uint8)], 4)
    assert lr1.shape == (2, 3, 3) and hr1.shape == (8, 12, 3)


def _write(path, size, color=(200, 10, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def test_folder_holds_out_every_tenth_image(tmp_path):
    for i in range(12):
        _write(tmp_path / f"{i:02d}.png", (40, 36), (i * 20, 0, 0))
    data = load_sr(str(tmp_path), patch_size=16, scale=4)
    assert data.num_examples == 11 * 40 * 36 // 16 ** 2  # 12 images, one held out
    lr, hr = next(iter(data.dataset.batch(4)))
    assert lr.shape == (4, 4, 4, 3) and hr.shape == (4, 16, 16, 3)
    held = heldout_images(str(tmp_path), scale=4)
    assert len(held) == 1 and held[0].shape == (36, 40, 3) and held[0][0, 0, 0] == 9 * 20


def test_folder_with_train_test_subfolders(tmp_path):
    _write(tmp_path / "train" / "a.png", (32, 32))
    _write(tmp_path / "test" / "b.png", (21, 18), (0, 0, 255))
    assert load_sr(str(tmp_path), patch_size=32, scale=4).num_examples == 1
    held = heldout_images(str(tmp_path), scale=4)
    assert len(held) == 1 and held[0].shape == (16, 20, 3) and held[0][0, 0, 2] == 255


def test_image_smaller_than_patch_names_the_file(tmp_path):
    _write(tmp_path / "train" / "big.png", (128, 128))
    _write(tmp_path / "train" / "tiny.jpg", (200, 40))
    _write(tmp_path / "test" / "small_is_fine.png", (20, 20))
    with pytest.raises(KzooError, match=r"tiny\.jpg is 200x40, smaller than the 96x96"):
        load_sr(str(tmp_path), patch_size=96, scale=4)


@pytest.mark.parametrize("spec,kw,match", [
    ("builtin:digits", {}, "builtin:photos"),
    ("tfds:mnist", {}, "tfds:div2k"),
    ("/no/such/folder", {}, "does not exist"),
    ("", {}, "empty"),
    ("builtin:photos", {"patch_size": 30}, "multiple of the scale 4"),
])
def test_bad_specs(spec, kw, match):
    with pytest.raises(KzooError, match=match):
        load_sr(spec, **kw)


def test_tfds_div2k_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        data = load_sr("tfds:div2k/bicubic_x4", patch_size=8, scale=2)
        lr, hr = next(iter(data.dataset.batch(6)))
        assert lr.shape == (6, 4, 4, 3) and hr.shape == (6, 8, 8, 3)
        held = heldout_images("tfds:div2k/bicubic_x4", scale=2, limit=2)
        assert len(held) == 2 and all(h.shape[0] % 2 == 0 and h.dtype == np.uint8 for h in held)
        with pytest.raises(KzooError, match="no image is at least 4096x4096"):
            load_sr("tfds:div2k/bicubic_x4", patch_size=4096, scale=4)
