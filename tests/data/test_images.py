import logging

import numpy as np
import pytest
from PIL import Image

from kzoo.data import batch_pipeline, load
from kzoo.data.images import digits_arrays
from kzoo.errors import KzooError


def test_builtin_digits_scaled_labelled_and_split():
    train = load("builtin:digits", image_size=32)
    test = load("builtin:digits", image_size=32, split="test")
    assert (train.num_examples, test.num_examples) == (1347, 450)
    assert train.num_classes == 10 and train.channels == 1
    x, y = next(iter(train.dataset.batch(2000)))
    assert x.shape == (1347, 32, 32, 1) and y.dtype == "int32"
    assert -1.0 <= float(x.numpy().min()) < -0.9 and 0.9 < float(x.numpy().max()) <= 1.0
    tr, _ = digits_arrays("train")
    te, _ = digits_arrays("test")
    flat = {a.tobytes() for a in tr}
    assert sum(a.tobytes() in flat for a in te) < 10  # held out (a few digits are exact repeats)


def test_builtin_faces_and_channel_conversion():
    faces = load("builtin:faces", image_size=16, channels=3)
    assert faces.num_examples == 90 and faces.num_classes is None
    x = next(iter(faces.dataset.batch(4)))
    assert x.shape == (4, 16, 16, 3)


def test_unknown_builtin():
    with pytest.raises(KzooError, match="unknown builtin dataset 'nope'"):
        load("builtin:nope", image_size=16)


def _write(path, size=(20, 12), color=(200, 10, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def test_folder_with_classes_and_unreadable_file(tmp_path, caplog):
    for i in range(3):
        _write(tmp_path / "cats" / f"{i}.png")
        _write(tmp_path / "dogs" / f"{i}.jpg", color=(0, 0, 255))
    (tmp_path / "dogs" / "broken.png").write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING, logger="kzoo.data"):
        data = load(str(tmp_path), image_size=8)
    assert "skipped 1 unreadable image" in caplog.text
    assert data.num_examples == 6 and data.num_classes == 2 and data.channels == 3
    x, y = next(iter(data.dataset.batch(6)))
    assert x.shape == (6, 8, 8, 3)
    assert sorted(y.numpy().tolist()) == [0, 0, 0, 1, 1, 1]
    red = x.numpy()[y.numpy() == 0]
    np.testing.assert_allclose(red[..., 0], 200 / 127.5 - 1, atol=0.02)


def _jpeg_bytes(size=64):
    import io

    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def test_files_pil_opens_but_tensorflow_cannot_decode_are_skipped_at_scan(tmp_path, caplog):
    for i in range(4):
        _write(tmp_path / f"{i}.png")
    Image.new("RGB", (20, 12), (1, 2, 3)).save(tmp_path / "tiff.png", format="TIFF")
    (tmp_path / "cut.jpg").write_bytes(_jpeg_bytes()[:1500])  # a truncated JPEG
    with Image.open(tmp_path / "tiff.png") as im:
        assert im.format == "TIFF"  # PIL opens it: the old check let it through
    with caplog.at_level(logging.WARNING, logger="kzoo.data"):
        data = load(str(tmp_path), image_size=8)
    assert "skipped 2 unreadable image(s) that TensorFlow cannot decode" in caplog.text
    assert (data.num_examples, data.skipped) == (4, 2)
    batches = list(batch_pipeline(data, 2, repeat=False, shuffle=False))  # no IteratorGetNext error
    assert [tuple(b.shape) for b in batches] == [(2, 8, 8, 3)] * 2


def test_scan_uses_the_pipeline_channels(tmp_path, caplog):
    for i in range(3):
        Image.new("L", (10, 10), 100).save(tmp_path / f"{i}.png")
    Image.new("RGB", (10, 10), (1, 2, 3)).save(tmp_path / "anim.gif")  # TF decodes GIF as RGB only
    with caplog.at_level(logging.WARNING, logger="kzoo.data"):
        data = load(str(tmp_path), image_size=8)
    assert data.channels == 1 and data.num_examples == 3 and "anim.gif" in caplog.text
    assert load(str(tmp_path), image_size=8, channels=3).num_examples == 4


def test_the_pipeline_drops_a_file_broken_after_the_scan(tmp_path):
    for i in range(4):
        _write(tmp_path / "a" / f"{i}.png")
        _write(tmp_path / "b" / f"{i}.png", color=(0, 0, 200))
    data = load(str(tmp_path), image_size=8)
    (tmp_path / "b" / "0.png").write_bytes(b"gone bad")
    examples = list(data.dataset.as_numpy_iterator())
    assert len(examples) == 7 and sorted(int(y) for _, y in examples) == [0] * 4 + [1] * 3


def test_only_undecodable_files(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(KzooError, match="no readable images .*; 1 file\\(s\\) could not be decoded"):
        load(str(tmp_path), image_size=8)


@pytest.mark.slow
def test_scan_cost_of_500_images(tmp_path):
    import time

    data = _jpeg_bytes(96)
    for i in range(500):
        (tmp_path / f"{i:03d}.jpg").write_bytes(data)
    start = time.perf_counter()
    assert load(str(tmp_path), image_size=32).num_examples == 500
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("make,match", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: p, "no readable images"),
])
def test_bad_folders(tmp_path, make, match):
    with pytest.raises(KzooError, match=match):
        load(str(make(tmp_path)), image_size=8)


def test_tfds_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        data = load("tfds:mnist", image_size=16)
        assert data.num_classes == 10 and data.channels == 1 and data.num_examples == 12
        x, y = next(iter(data.dataset.batch(12)))
    assert x.shape == (12, 16, 16, 1) and y.shape == (12,)
    assert float(x.numpy().min()) >= -1.0 and float(x.numpy().max()) <= 1.0


def test_unknown_tfds_name():
    with pytest.raises(KzooError, match="unknown tfds dataset 'no_such_dataset_xyz'"):
        load("tfds:no_such_dataset_xyz", image_size=16)


def test_batch_pipeline():
    data = load("builtin:digits", image_size=8)
    x, y = next(iter(batch_pipeline(data, 32, seed=0)))
    assert x.shape == (32, 8, 8, 1)
    with pytest.raises(KzooError, match="fewer than one batch"):
        batch_pipeline(load("builtin:faces", image_size=8), 128)
