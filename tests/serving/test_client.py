"""kzoo.serving.Client over REST and gRPC: NumPy in/out, images in/out, errors."""

import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.infer import OnnxModel
from kzoo.serving import Client
from kzoo.serving.errors import ServingError


@pytest.fixture(params=["rest", "grpc"])
def client(request, server):
    with Client(server.rest_url if request.param == "rest" else server.grpc_url) as c:
        yield c


def test_numpy_in_numpy_out(client, export_tree, cgan_inputs):
    assert client.wait_ready("cgan", timeout=10) is client
    assert [s["version"] for s in client.status("cgan")] == ["2", "1"]
    out = client.predict("cgan", cgan_inputs)
    assert out["image"].dtype == np.float32
    np.testing.assert_allclose(out["image"], OnnxModel(export_tree / "cgan").run(**cgan_inputs)["image"],
                               atol=1e-4)
    old = client.predict("cgan", cgan_inputs, version=1)["image"]
    np.testing.assert_allclose(old, OnnxModel(export_tree / "cgan" / "1").run(**cgan_inputs)["image"], atol=1e-4)
    sig = client.metadata("fcn")["serving_default"]
    assert sig["inputs"] == [{"name": "image", "dtype": "float32", "shape": [None, None, None, 3]}]


def test_images_in_images_out(client, export_tree, cgan_inputs):
    rng = np.random.default_rng(2)
    photos = [rng.integers(0, 256, (8, 12, 3), dtype=np.uint8) for _ in range(2)]
    out = client.predict_images("fcn", photos)["restored_png_bytes"]
    model = OnnxModel(export_tree / "fcn")
    for got, photo in zip(out, photos):
        np.testing.assert_array_equal(got, model.predict_image(photo)["restored"])
    generated = client.predict_images("cgan", **cgan_inputs)["image_png_bytes"]
    expected = OnnxModel(export_tree / "cgan").postprocess(
        OnnxModel(export_tree / "cgan").run(**cgan_inputs))["image"]
    assert len(generated) == 3 and all(g.shape == (16, 16, 1) for g in generated)
    np.testing.assert_array_equal(np.stack(generated), expected)


def test_errors(client, cgan_inputs):
    with pytest.raises(ServingError) as info:
        client.predict("nope", cgan_inputs)
    assert info.value.code == "NOT_FOUND"
    with pytest.raises(ServingError, match="expected z") as info:
        client.predict("cgan", {**cgan_inputs, "z": cgan_inputs["z"][:, :4]})
    assert info.value.code == "INVALID_ARGUMENT"
    with pytest.raises(KzooError, match="pass a dict"):
        client.predict("cgan", cgan_inputs["z"])


def test_bad_urls():
    with pytest.raises(KzooError, match="http://, https:// or grpc://"):
        Client("127.0.0.1:8501")
    with pytest.raises(KzooError, match="give the gRPC port"):
        Client("grpc://localhost")
    with pytest.raises(ServingError) as info:
        Client("http://127.0.0.1:9", timeout=2).status("x")
    assert info.value.code == "UNAVAILABLE"
