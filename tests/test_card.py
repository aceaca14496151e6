import json

import numpy as np
import pytest

from kzoo.card import (Endpoint, ModelCard, Tensor, card_of, concrete_shape, docstring_references,
                       image, image_to_image, inference_parts, label, label_map, latent, probabilities,
                       sample_inputs, timestep)
from kzoo.errors import KzooError


def every_role_card():
    return ModelCard(
        task="test-task", summary="exercises every role", references=("A & B, \"T\", V 2020.",),
        endpoints=(
            Endpoint("generator", inputs=(latent("z", 8), label("label", 10)),
                     outputs=(image("image", 3, 16),)),
            Endpoint("eps_model", inputs=(timestep("t", 50), Tensor("x_t", "tensor", (8, 8, 1))),
                     outputs=(Tensor("eps", "tensor", (8, 8, 1), description="noise"),)),
            Endpoint("segmenter", inputs=(image("image", 1, color_space="lab"),),
                     outputs=(label_map("labels", 5), probabilities("probabilities", 5)),
                     size_multiple=4, base_size=12),
            image_to_image("sr", 3, 3, size_multiple=1, base_size=6, input_name="lr",
                           output_name="sr", clip=True),
        ))


def test_round_trip_through_json():
    card = every_role_card()
    assert ModelCard.from_dict(json.loads(json.dumps(card.to_dict()))) == card


def test_spec_entries():
    card = every_role_card()
    gen = card.spec("generator")
    assert gen["dynamic"] == {"batch": True, "spatial": False}
    z, lab = gen["inputs"]
    assert z == {"name": "z", "dtype": "float32", "shape": [None, 8], "role": "latent",
                 "distribution": "normal(0, 1)",
                 "description": "standard normal N(0, 1), one vector per image"}
    assert (lab["dtype"], lab["shape"], lab["num_classes"]) == ("int32", [None], 10)
    assert gen["outputs"][0]["shape"] == [None, 16, 16, 3]
    assert gen["outputs"][0]["color_space"] == "rgb" and "clip" not in gen["outputs"][0]
    seg = card.spec("segmenter")
    assert seg["dynamic"] == {"batch": True, "spatial": True,
                              "spatial_size": {"base": 12, "multiple": 4}}
    assert seg["inputs"][0]["color_space"] == "lab"  # explicit beats the channel default
    labels, probs = seg["outputs"]
    assert (labels["role"], labels["shape"], labels["num_classes"]) == ("labels", [None, None, None], 5)
    assert (probs["range"], probs["shape"]) == ([0.0, 1.0], [None, None, None, 5])
    assert card.spec("sr")["outputs"][0]["clip"] is True
    assert card.spec("eps_model")["inputs"][0]["timesteps"] == 50


@pytest.mark.parametrize("make, match", [
    (lambda: Endpoint("e", (Tensor("x", "mask", (2,)),), ()), "role 'mask'"),
    (lambda: Endpoint("e", (), (Tensor("y", "latent", (2,)),)), "role 'latent'"),
    (lambda: Endpoint("e", (image("x", 3),), (image("x", 3),), size_multiple=4), "needs base_size"),
    (lambda: Endpoint("e", (image("x", 3),), (), size_multiple=4, base_size=10), "not a multiple"),
    (lambda: Endpoint("e", (latent("z", 2), latent("z", 2)), ()), "input names repeat"),
    (lambda: ModelCard("t", "s", (Endpoint("e", (), ()), Endpoint("e", (), ()))), "endpoint names"),
])
def test_invalid_cards_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_unknown_endpoint_names_the_known_ones():
    with pytest.raises(KzooError, match="no endpoint 'decoder'; endpoints: generator, eps_model"):
        every_role_card().endpoint("decoder")


def test_check_size():
    card = every_role_card()
    card.endpoint("segmenter").check_size(12, 20)
    with pytest.raises(KzooError, match="multiples of 4, got 12x10"):
        card.endpoint("segmenter").check_size(12, 10)
    fixed = Endpoint("encoder", (image("image", 1, 16),), ())
    fixed.check_size(16, 16)
    with pytest.raises(KzooError, match="takes 16x16 images, got 16x32"):
        fixed.check_size(16, 32)
    card.endpoint("generator").check_size(3, 5)  # no image input: nothing to check


def test_sample_inputs_respect_each_role():
    card = every_role_card()
    rng = np.random.default_rng(0)
    gen = sample_inputs(card.spec("generator")["inputs"], 64, rng)
    assert gen["z"].dtype == np.float32 and gen["z"].shape == (64, 8)
    assert gen["z"].min() < -1 and gen["z"].max() > 1  # N(0, 1), not a [-1, 1] image
    assert gen["label"].dtype == np.int32 and gen["label"].min() >= 0 and gen["label"].max() < 10
    assert len(np.unique(gen["label"])) > 1
    eps = sample_inputs(card.spec("eps_model")["inputs"], 64, rng)
    assert eps["t"].dtype == np.int32 and eps["t"].max() < 50 and eps["t"].max() > 10
    assert eps["x_t"].shape == (64, 8, 8, 1)
    seg = sample_inputs(card.spec("segmenter")["inputs"], 2, rng, size=12)
    assert seg["image"].shape == (2, 12, 12, 1)
    assert seg["image"].min() >= -1 and seg["image"].max() <= 1
    unit = sample_inputs([image("x", 3, 4, range=(0, 1)).entry()], 8, rng)["x"]
    assert unit.min() >= 0 and unit.max() <= 1 and unit.dtype == np.float32
    ints = sample_inputs([Tensor("mask", "tensor", (3,), dtype="int32").entry()], 8, rng)["mask"]
    assert ints.dtype == np.int32 and set(np.unique(ints)) <= {0, 1}
    a = sample_inputs(card.spec("generator")["inputs"], 4, np.random.default_rng(7))
    b = sample_inputs(card.spec("generator")["inputs"], 4, np.random.default_rng(7))
    assert all(np.array_equal(a[k], b[k]) for k in a)  # seeded


def test_dynamic_shapes_need_a_size():
    assert concrete_shape([None, None, None, 3], 2, 8) == (2, 8, 8, 3)
    with pytest.raises(KzooError, match="unknown dimension 1; give a size"):
        concrete_shape([None, None, None, 3], 2)


class Documented:
    """Something.

    References:
        Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a
        Generative Adversarial Network", CVPR 2017.
        Shi et al., "Real-Time Sub-Pixel Convolution", CVPR 2016.
    """


def test_docstring_references_one_string_per_entry():
    assert docstring_references(Documented) == (
        'Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative '
        'Adversarial Network", CVPR 2017.',
        'Shi et al., "Real-Time Sub-Pixel Convolution", CVPR 2016.')
    assert docstring_references(Endpoint) == ()


def test_a_model_without_a_card_is_told_what_to_declare():
    from tests.export.common import image_model

    with pytest.raises(KzooError, match=r"Functional has no model card.*card\(self\) -> "
                                        r"kzoo.card.ModelCard.*size_multiple"):
        card_of(image_model())


def test_endpoints_must_be_functional():
    import keras

    class Sub(keras.Model):
        def call(self, x):
            return x

    class Owner(keras.Model):
        def inference_parts(self):
            return {"net": Sub()}

    with pytest.raises(KzooError, match="functional keras.Model"):
        inference_parts(Owner())
