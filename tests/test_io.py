import json

import numpy as np
import pytest
from PIL import Image

from kzoo.io import atomic_path, save_png, write_json


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "config.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_save_png_round_trip(tmp_path):
    img = (np.arange(48).reshape(4, 4, 3) * 5).astype(np.uint8)
    save_png(tmp_path / "a" / "x.png", img)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a" / "x.png")), img)
    save_png(tmp_path / "g.png", img[..., :1])
    assert np.asarray(Image.open(tmp_path / "g.png")).shape == (4, 4)
