import dataclasses

import keras
import numpy as np
import pytest

from kzoo.card import Endpoint, ModelCard, Tensor, card_of, image, label, latent
from kzoo.errors import KzooError
from kzoo.export import spec
from tests.export.common import image_card, image_model, tiny_cgan


def test_the_spec_is_the_cards():
    model = tiny_cgan()
    card = card_of(model)
    s = spec.describe("generator", model.inference_parts()["generator"], card)
    assert s == card.spec("generator")
    z, lbl = s["inputs"]
    assert (z["name"], z["role"], z["shape"]) == ("z", "latent", [None, 8])
    assert (lbl["name"], lbl["role"], lbl["num_classes"], lbl["dtype"]) == ("label", "label", 10, "int32")
    assert s["dynamic"] == {"batch": True, "spatial": False}


def _card_with(endpoint_changes=None, **tensor_changes):
    card = image_card()
    (ep,) = card.endpoints
    inp = dataclasses.replace(ep.inputs[0], **tensor_changes)
    ep = dataclasses.replace(ep, inputs=(inp,), **(endpoint_changes or {}))
    return dataclasses.replace(card, endpoints=(ep,))


@pytest.mark.parametrize("card,match", [
    (_card_with(name="picture"), r"declares inputs \['picture'\] but the network has \['image'\]"),
    (_card_with(dtype="float16"), "input 'image' dtype float16 but the network has float32"),
    (_card_with(shape=(None, None, 3)), r"input 'image' shape \[None, None, None, 3\] but the "
                                        r"network has \[None, None, None, 1\]"),
    (_card_with({"size_multiple": None, "base_size": None}), "unknown dimension but the card "
                                                             "declares no dynamic size"),
])
def test_a_card_that_disagrees_with_its_network_is_refused(card, match):
    with pytest.raises(KzooError, match=match):
        spec.describe("model", image_model(), card)


def test_output_names_dtypes_and_shapes_are_checked_on_a_forward_pass():
    x = keras.Input((8, 8, 3), name="image")
    logits = keras.layers.Conv2D(4, 1)(x)
    probs = keras.layers.Softmax(name="probabilities")(logits)
    labels = keras.layers.Lambda(lambda p: keras.ops.cast(keras.ops.argmax(p, -1), "int32"),
                                 name="labels")(probs)
    part = keras.Model({"image": x}, {"probabilities": probs, "labels": labels})
    outputs = (Tensor("labels", "labels", (8, 8), dtype="int32", num_classes=4),
               Tensor("probabilities", "probabilities", (8, 8, 4), range=(0.0, 1.0)))
    card = ModelCard("semantic-segmentation", "labels pixels",
                     (Endpoint("segmenter", (image("image", 3, 8),), outputs),))
    assert spec.describe("segmenter", part, card)["outputs"][0]["dtype"] == "int32"  # not float32
    wrong = dataclasses.replace(outputs[0], shape=(8, 9))
    bad = ModelCard("semantic-segmentation", "labels pixels",
                    (Endpoint("segmenter", (image("image", 3, 8),), (wrong, outputs[1])),))
    with pytest.raises(KzooError, match=r"output 'labels' shape \[None, 8, 9\] but the network "
                                        r"has \[None, 8, 8\]"):
        spec.describe("segmenter", part, bad)
    feeds = {"image": np.zeros((3, 8, 8, 3), "float32")}
    assert spec.call(part, feeds)["labels"].shape == (3, 8, 8)


def test_a_card_size_the_network_does_not_take_is_named():
    card = _card_with({"base_size": 7, "size_multiple": 7})
    with pytest.raises(KzooError, match="does not run on the card's sample inputs at 7x7"):
        spec.describe("model", image_model(), card)


def test_latent_and_label_inputs_pack_in_the_networks_order():
    z = keras.Input((4,), name="z")
    y = keras.Input((), dtype="int32", name="label")
    out = keras.layers.Dense(2, name="scores")(keras.layers.Concatenate()(
        [z, keras.ops.cast(keras.ops.expand_dims(y, -1), "float32")]))
    part = keras.Model([z, y], out)
    card = ModelCard("x", "y", (Endpoint("model", (label("label", 3), latent("z", 4)),
                                         (Tensor("scores", "tensor", (2,)),)),))
    s = spec.describe("model", part, card)  # the card lists label first: matched by name
    assert [e["name"] for e in s["inputs"]] == ["label", "z"]
    packed = spec.pack(part, {"label": np.zeros(1, "int32"), "z": np.ones((1, 4), "float32")})
    assert packed[0].shape == (1, 4) and packed[1].shape == (1,)
