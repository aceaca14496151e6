import keras
import numpy as np

from kzoo.export import spec
from tests.export.common import image_model, tiny_cgan


def test_conditional_generator_roles():
    model = tiny_cgan()
    s = spec.describe("generator", model.inference_parts()["generator"], model)
    z, label = s["inputs"]
    assert (z["name"], z["role"], z["shape"]) == ("z", "latent", [None, 8])
    assert (label["name"], label["role"], label["num_classes"], label["dtype"]) == ("label", "label", 10, "int32")
    (image,) = s["outputs"]
    assert (image["name"], image["role"], image["range"]) == ("image", "image", [-1.0, 1.0])
    assert s["dynamic"] == {"batch": True, "spatial": False}


def test_fully_convolutional_endpoint_is_dynamic_with_its_size_multiple():
    s = spec.describe("model", image_model())
    assert s["inputs"][0]["role"] == "image" and s["inputs"][0]["shape"] == [None, None, None, 1]
    assert s["dynamic"]["spatial"] and s["dynamic"]["spatial_size"]["multiple"] == 2
    assert s["outputs"][0]["name"] == "restored" and s["outputs"][0]["role"] == "image"


def test_dict_outputs_softmax_labels_and_the_export_spec_hook():
    x = keras.Input((8, 8, 3), name="image")
    t = keras.Input((), dtype="int32", name="t")
    logits = keras.layers.Conv2D(4, 1)(x)
    probs = keras.layers.Activation("softmax", name="probabilities")(logits)
    labels = keras.layers.Lambda(lambda p: keras.ops.cast(keras.ops.argmax(p, -1), "int32"),
                                 name="labels")(probs)
    part = keras.Model({"image": x, "t": t}, {"probabilities": probs, "labels": labels})

    class Owner:
        timesteps = 50

        def export_spec(self, endpoint):
            return {"labels": {"classes": ["a", "b", "c", "d"]}}

    s = spec.describe("segmenter", part, Owner())
    roles = {e["name"]: e["role"] for e in s["inputs"] + s["outputs"]}
    assert roles == {"image": "image", "t": "timestep", "labels": "labels",
                     "probabilities": "probabilities"}
    assert s["inputs"][1]["timesteps"] == 50
    assert s["outputs"][0]["classes"] == ["a", "b", "c", "d"]  # hook merged in
    feeds = spec.sample_inputs(s["inputs"], 3, np.random.default_rng(0))
    assert feeds["t"].dtype == np.int32 and feeds["t"].max() < 50
    assert feeds["image"].min() >= -1 and feeds["image"].max() <= 1
    out = part(spec.pack(part, feeds))
    assert out["labels"].shape == (3, 8, 8)
