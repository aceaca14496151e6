"""Export contract over the registry: every model of `kzoo.zoo` exports every endpoint
of its card to SavedModel + ONNX with parity, and `kzoo.json` is the card's spec.

A new family is covered by registering it (with `tiny=` overrides) and declaring
its `card()`; nothing here names a family. Entry points that build the same class
(`cgan` and `cgan_digits`) are exported once: at the tiny sizes they are the same
network, and this is the slowest contract test.
"""

import numpy as np
import pytest

from kzoo.export import export
from kzoo.export.source import export_name
from kzoo.zoo import create_model, list_models, tiny_overrides

TOLERANCE = 1e-4


def _one_entry_per_class():
    seen = {}
    for name in list_models():
        seen.setdefault(type(create_model(name, **tiny_overrides(name))).__name__, name)
    return sorted(seen.values())


def _parity_ok(figures):
    if "mismatch_fraction" in figures:  # integer outputs (segmentation labels)
        return figures["mismatch_fraction"] <= 0.01
    return "shape_mismatch" not in figures and figures["finite"] and figures["max_rel"] <= TOLERANCE


@pytest.mark.parametrize("name", _one_entry_per_class())
def test_every_endpoint_exports_with_parity_as_its_card_declares(tmp_path, name):
    from kzoo.infer import OnnxModel

    model = create_model(name, **tiny_overrides(name))
    card = model.card()
    results = export(model, name=export_name(name), out=tmp_path)
    # a diffusion model's export adds its sampler endpoint (tests/export/test_sampler.py)
    samplers = [r for r in results if r.info.get("sampler") is not None]
    results = [r for r in results if r.info.get("sampler") is None]
    assert sorted(r.info["endpoint"] for r in results) == sorted(card.names)
    assert [s.name for s in samplers] == [r.info["sampler_endpoint"] for r in results
                                          if "sampler_endpoint" in r.info]
    for r in results:
        spec = card.spec(r.info["endpoint"])
        assert {k: r.info[k] for k in spec} == spec  # kzoo.json is the card's spec
        assert r.info["task"] == card.task
        for fmt in ("savedmodel", "onnx"):
            for case, outputs in r.info["parity"][fmt].items():
                for out, figures in outputs.items():
                    assert _parity_ok(figures), (fmt, case, out, figures)
        size = spec["dynamic"].get("spatial_size")
        if size:  # parity at the base size and one more accepted size, both formats
            sizes = [size["base"], size["base"] + size["multiple"]]
            assert r.info["parity_inputs"]["random"].endswith(f"sizes {sizes}")
            onnx = OnnxModel(r.path)
            image = next(e for e in spec["inputs"] if e["role"] == "image")
            for s in sizes:
                feeds = onnx.sample(2, fixed={image["name"]: np.zeros(
                    (2, s, s, image["shape"][-1]), image["dtype"])})
                out = next(iter(onnx.run(**feeds).values()))
                assert out.shape[0] == 2 and out.shape[1] % s == 0 and out.shape[1] // s \
                    == out.shape[2] // s, (s, out.shape)  # output scales with the input
