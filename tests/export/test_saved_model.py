import io

import numpy as np
import pytest
from PIL import Image

from kzoo.export.saved_model import load_signature, write_saved_model
from kzoo.card import card_of
from kzoo.export.spec import describe
from tests.export.common import image_card, image_model, tiny_cgan


def test_serving_default_has_named_inputs_outputs_and_dynamic_batch(tmp_path):
    import tensorflow as tf

    model = tiny_cgan()
    g = model.inference_parts()["generator"]
    assert write_saved_model(g, describe("generator", g, card_of(model)), tmp_path) == [
        "serving_default"]
    sig = tf.saved_model.load(str(tmp_path)).signatures["serving_default"]
    assert sorted(sig.structured_input_signature[1]) == ["label", "z"]
    assert list(sig.structured_outputs) == ["image"]
    run = load_signature(tmp_path)
    for batch in (1, 5):
        z = np.random.default_rng(batch).standard_normal((batch, 8)).astype("float32")
        label = np.arange(batch, dtype="int32")
        np.testing.assert_allclose(run(z=z, label=label)["image"], g([z, label]), atol=1e-6)


def _png(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_image_signature_takes_and_returns_png(tmp_path):
    part = image_model(channels=3)
    spec = describe("model", part, image_card(channels=3))
    assert write_saved_model(part, spec, tmp_path, image_signature=True) == [
        "serving_default", "serving_images"]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 12, 12, 3), dtype=np.uint8)
    run = load_signature(tmp_path, "serving_images")
    out = run(image_bytes=np.array([_png(i) for i in images], dtype=object))
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(b))) for b in out["restored_png_bytes"]])
    expected = part(images.astype("float32") / 127.5 - 1.0).numpy()
    expected = np.rint((expected + 1) / 2 * 255)
    assert decoded.shape == (2, 12, 12, 3)
    assert np.abs(decoded.astype(float) - expected).max() <= 1.0


def test_image_signature_is_left_out_without_images(tmp_path):
    import keras

    from kzoo.card import Endpoint, ModelCard, Tensor

    x = keras.Input((4,), name="features")
    part = keras.Model(x, keras.layers.Dense(2, name="scores")(x))
    card = ModelCard("scoring", "scores features", (Endpoint(
        "model", (Tensor("features", "tensor", (4,)),), (Tensor("scores", "tensor", (2,)),)),))
    assert write_saved_model(part, describe("model", part, card), tmp_path,
                             image_signature=True) == ["serving_default"]
    with pytest.raises(KeyError):
        load_signature(tmp_path, "serving_images")
