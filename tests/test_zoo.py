"""Every registered model, tiny: forward pass and config round trip (timm-style)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from kzoo.recipes.config import model_options
from kzoo.zoo import create_model, list_models, model_class, tiny_overrides


def test_registry_lists_the_gan_family():
    assert {"dcgan", "wgan_gp", "cgan"} <= set(list_models())


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValueError, match="did you mean dcgan"):
        create_model("dcgn")
    with pytest.raises(ValueError, match="did you mean dcgan"):
        model_class("dcgn")


def test_an_entry_point_names_the_class_it_builds():
    from kzoo.models.dcgan import DCGAN
    from kzoo.zoo import register_model

    assert model_class("dcgan_digits") is DCGAN
    with pytest.raises(TypeError, match="takes the class the entry point builds"):
        register_model("DCGAN")


@pytest.mark.parametrize("name", list_models())
def test_every_model_builds_and_round_trips_its_config(name):
    model = create_model(name, **tiny_overrides(name))
    assert type(model) is model_class(name)  # registered with the entry point
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert set(model_options(type(model))) <= set(model.get_config())  # every declared option is recorded
    parts = model.inference_parts()
    assert parts and all(hasattr(p, "inputs") for p in parts.values())
    size = getattr(model, "image_size", 2)  # unknown H/W of fully convolutional parts
    for part in parts.values():
        zeros = {t.name: np.zeros([2 if i == 0 else size if d is None else d for i, d in enumerate(t.shape)],
                                  t.dtype) for t in part.inputs}
        if isinstance(part.input, dict):
            out = part({k: zeros[t.name] for k, t in part.input.items()})
        else:
            out = part([zeros[t.name] for t in part.inputs] if len(zeros) > 1 else next(iter(zeros.values())))
        assert all(np.isfinite(np.asarray(o)).all() for o in (out.values() if isinstance(out, dict) else [out]))


def test_model_names_are_the_registered_models_without_importing_keras():
    code = ("import sys, json\nfrom kzoo.zoo import model_names\n"
            "print(json.dumps([model_names(), 'keras' in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    names, keras_imported = json.loads(proc.stdout)
    assert names == list_models() and not keras_imported
