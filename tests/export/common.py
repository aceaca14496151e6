"""Small models and sources shared by the export, infer and CLI tests."""

from __future__ import annotations

import json
from pathlib import Path


def image_model(channels=1, name="tiny_fcn", upsample="transpose", size=None):
    """A fully convolutional image-to-image network (sizes multiple of 2), like the
    pix2pix/SRGAN endpoints. `upsample="bilinear"` uses `UpSampling2D` (a Resize in
    ONNX), which Keras 3.15 cannot trace with unknown height/width as it is; `size`
    builds it with a fixed height and width."""
    import keras
    from keras import layers

    x = keras.Input((size, size, channels), name="image")
    h = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    if upsample == "bilinear":
        h = layers.UpSampling2D(2, interpolation="bilinear")(h)
    else:
        h = layers.Conv2DTranspose(4, 3, strides=2, padding="same")(h)
    h = layers.Concatenate()([h, x])  # needs even sizes
    out = layers.Conv2D(channels, 3, padding="same", activation="tanh", name="restored")(h)
    return keras.Model(x, out, name=name)


def image_card(channels=1, size=None, dynamic=True, endpoint="model"):
    """The card of `image_model`: any size that is a multiple of 2 (base 8), or only `size`."""
    from kzoo.card import Endpoint, ModelCard, image

    shape = None if dynamic else size
    ep = Endpoint(endpoint, inputs=(image("image", channels, shape),),
                  outputs=(image("restored", channels, shape),),
                  size_multiple=2 if dynamic else None, base_size=(size or 8) if dynamic else None)
    return ModelCard(task="image-to-image-translation", summary="restores images",
                     endpoints=(ep,), references=("Nobody, A test network, 2026.",))


def _owner_class():
    import keras

    from kzoo.card import ModelCard

    @keras.saving.register_keras_serializable(package="kzoo_tests")
    class CardedOwner(keras.Model):
        """A test model: functional `networks` as endpoints, with the ModelCard `card`."""

        def __init__(self, networks, card, **kwargs):
            super().__init__(**kwargs)
            self.networks = dict(networks)
            self._card = card
            for key, net in self.networks.items():
                setattr(self, f"net_{key}", net)  # tracked: saved with the model
            self.built = True

        def call(self, x):
            return next(iter(self.networks.values()))(x)

        def inference_parts(self):
            return dict(self.networks)

        def card(self):
            return self._card

        def get_config(self):
            return {"name": self.name, "card": self._card.to_dict(),
                    "networks": {k: keras.saving.serialize_keras_object(v)
                                 for k, v in self.networks.items()}}

        @classmethod
        def from_config(cls, config):
            config = dict(config)
            networks = {k: keras.saving.deserialize_keras_object(v)
                        for k, v in config.pop("networks").items()}
            return cls(networks, ModelCard.from_dict(config.pop("card")), **config)

    return CardedOwner


_OWNER = []


def carded(networks, card):
    """A model whose `inference_parts()` are `networks` ({endpoint: functional}) and whose
    `card()` is `card` (a zoo model's two hooks, for test networks)."""
    if not _OWNER:
        _OWNER.append(_owner_class())
    return _OWNER[0](networks, card)


def fcn(channels=1, upsample="transpose", size=None, dynamic=True):
    """`image_model` with its card, as endpoint `model`."""
    return carded({"model": image_model(channels, upsample=upsample, size=size)},
                  image_card(channels, size, dynamic))


def save_preset(directory, model, metadata):
    """A hub-preset-like directory: model.keras + metadata.json."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / "model.keras")
    (directory / "metadata.json").write_text(json.dumps(metadata))
    return directory


def save_run(directory, model, recipe):
    """A finished run directory as the recipe runner leaves it."""
    from kzoo.recipes.runner import save_trained

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"recipe": recipe, "config": {}}))
    save_trained(directory / "model", model, model.inference_parts()["generator"],
                 {"recipe": recipe, "data": "builtin:digits", "image_size": model.image_size,
                  "channels": model.channels, "num_classes": model.num_classes})
    return directory


def tiny_cgan():
    from kzoo.zoo import create_model, tiny_overrides

    return create_model("cgan", **{**tiny_overrides("cgan"), "num_classes": 10})
