"""Small models and sources shared by the export, infer and CLI tests."""

from __future__ import annotations

import json
from pathlib import Path


def image_model(channels=1, name="tiny_fcn", upsample="transpose", size=None):
    """A fully convolutional image-to-image model (dynamic H/W, sizes multiple of 2),
    like pix2pix/SRGAN endpoints will be. `upsample="bilinear"` uses `UpSampling2D`
    (a Resize in ONNX), which Keras cannot trace with unknown height/width; `size`
    fixes height and width."""
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
