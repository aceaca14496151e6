"""The model-card contract, checked for every registered model (a new family needs no edit here).

Each model, built at its `tiny_overrides`, must declare in `card()` exactly the
endpoints of `inference_parts()`, with the names, dtypes and fixed dimensions of
the functional networks, output values inside their declared ranges on a forward
pass of `kzoo.card.sample_inputs`, and, for a spatially dynamic endpoint, an
architecture that takes `base_size` and `base_size + size_multiple`.
"""

import functools
import json

import keras
import numpy as np
import pytest

from kzoo.card import ModelCard, sample_inputs
from kzoo.zoo import create_model, list_models, tiny_overrides

# Built at `image_size` with an ASPP image-pooling branch that upsamples by the
# built feature size: the architecture's multiple of 16 holds only once that
# branch resizes to the runtime shape.


@functools.lru_cache(maxsize=None)
def tiny(name):
    return create_model(name, **tiny_overrides(name))


def input_names(part):
    if isinstance(part.input, dict):  # keras.tree.flatten orders a dict by sorted key
        return sorted(part.input)
    return [t.name for t in keras.tree.flatten(part.input)]


def output_names(part):
    return sorted(part.output) if isinstance(part.output, dict) else list(part.output_names)


def pack(part, feeds):
    """{name: array} -> the structure `part` is called with."""
    return keras.tree.pack_sequence_as(part.input, [feeds[n] for n in input_names(part)])


def run(part, endpoint, size, batch=2, seed=0):
    feeds = sample_inputs([t.entry() for t in endpoint.inputs], batch, np.random.default_rng(seed),
                          size=size)
    outputs = keras.tree.flatten(part(pack(part, feeds), training=False))
    return [keras.ops.convert_to_numpy(o) for o in outputs]


def dtype(tensor):
    return keras.backend.standardize_dtype(tensor.dtype)


@pytest.mark.parametrize("name", list_models())
def test_card_declares_the_inference_networks(name):
    model = tiny(name)
    card, parts = model.card(), model.inference_parts()
    assert card.names == list(parts)
    assert card.task and card.summary and card.references
    assert ModelCard.from_dict(json.loads(json.dumps(card.to_dict()))) == card
    for ep in card.endpoints:
        part = parts[ep.name]
        for declared, names, tensors in (
                (ep.inputs, input_names(part), keras.tree.flatten(part.input)),
                (ep.outputs, output_names(part), keras.tree.flatten(part.output))):
            assert [t.name for t in declared] == names, ep.name
            for t, symbolic in zip(declared, tensors):
                assert t.dtype == dtype(symbolic), (ep.name, t.name)
                assert len(t.shape) == len(symbolic.shape) - 1, (ep.name, t.name)
                for d, s in zip(t.shape, symbolic.shape[1:]):
                    assert d is None or d == s, (ep.name, t.name, t.shape, symbolic.shape)
                if t.role == "image":
                    assert t.range and t.color_space, (ep.name, t.name)
                if t.role in ("label", "labels", "probabilities"):
                    assert t.num_classes and t.num_classes >= 2, (ep.name, t.name)
                if t.role == "timestep":
                    assert t.timesteps, (ep.name, t.name)


@pytest.mark.parametrize("name", list_models())
def test_outputs_hold_their_declared_values(name):
    model = tiny(name)
    card, parts = model.card(), model.inference_parts()
    for ep in card.endpoints:
        values = dict(zip([t.name for t in ep.outputs], run(parts[ep.name], ep, ep.base_size)))
        for t in ep.outputs:
            v = values[t.name]
            assert keras.backend.standardize_dtype(v.dtype) == t.dtype, (ep.name, t.name)
            assert v.shape[0] == 2 and len(v.shape) == len(t.shape) + 1
            assert all(d is None or d == s for d, s in zip(t.shape, v.shape[1:]))
            assert np.all(np.isfinite(v)), (ep.name, t.name)
            if t.range is not None and not t.clip:
                lo, hi = t.range
                assert v.min() >= lo - 1e-6 and v.max() <= hi + 1e-6, (ep.name, t.name, v.min(), v.max())
            if t.role == "probabilities":
                np.testing.assert_allclose(v.sum(-1), 1.0, atol=1e-5)
            if t.role == "labels":
                assert v.min() >= 0 and v.max() < t.num_classes
        probs = [values[t.name] for t in ep.outputs if t.role == "probabilities"]
        labels = [values[t.name] for t in ep.outputs if t.role == "labels"]
        if probs and labels:  # each label is a most probable class (ties: any of them)
            chosen = np.take_along_axis(probs[0], labels[0][..., None].astype(np.int64), -1)[..., 0]
            np.testing.assert_allclose(chosen, probs[0].max(-1), atol=1e-6)


def dynamic_network(part, endpoint):
    """`part`, or its clone with dynamic height/width where it was built at one image size."""
    flat = keras.tree.flatten(part.input)
    if all(t.shape[1] is None for t, e in zip(flat, endpoint.inputs) if e.role == "image"):
        return part
    inputs = [keras.Input((None, None, *t.shape[3:]) if e.role == "image" else t.shape[1:],
                          dtype=t.dtype, name=e.name) for t, e in zip(flat, endpoint.inputs)]
    return keras.models.clone_model(part, input_tensors=keras.tree.pack_sequence_as(part.input, inputs))


@pytest.mark.parametrize("name", list_models())
def test_dynamic_endpoints_take_base_size_and_the_next_multiple(name):
    """A spatially dynamic endpoint's architecture takes `base_size` and `base_size + size_multiple`
    and its spatial outputs scale with the input (a network built at one size is cloned with
    dynamic height/width first: that is what the card promises an export)."""
    model = tiny(name)
    card, parts = model.card(), model.inference_parts()
    for ep in [e for e in card.endpoints if e.spatial]:
        net = dynamic_network(parts[ep.name], ep)
        base, bigger = ep.base_size, ep.base_size + ep.size_multiple
        for t, small, large in zip(ep.outputs, run(net, ep, base), run(net, ep, bigger)):
            if t.shape[:2] == (None, None):
                scale = small.shape[1] / base
                assert small.shape[1:3] == (base * scale,) * 2, (ep.name, t.name, small.shape)
                assert large.shape[1:3] == (bigger * scale,) * 2, (ep.name, t.name, large.shape)
