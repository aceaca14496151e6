"""What an endpoint takes and returns: its model card's spec, checked against its network.

Every exportable model provides `inference_parts()` -> {endpoint: functional
keras.Model} and `card()` -> `kzoo.card.ModelCard`, which declares for each
endpoint its inputs and outputs (names, dtypes, shapes, roles, value ranges) and
whether height/width are dynamic. The `kzoo.json` description of an endpoint is
`card.spec(endpoint)`; nothing here guesses from tensor names, activations or
trial calls. `check` only verifies that the card and the network agree (the same
input and output names, dtypes and known dimensions), so a card that drifts from
its network fails at export instead of in a client.

Example:
>>> from kzoo.card import card_of
>>> from kzoo.zoo import create_model, tiny_overrides
>>> model = create_model("cgan", **tiny_overrides("cgan"))
>>> spec = describe("generator", model.inference_parts()["generator"], card_of(model))
>>> [(t["name"], t["role"], t["shape"]) for t in spec["inputs"]]
[('z', 'latent', [None, 8]), ('label', 'label', [None])]
"""

from __future__ import annotations

import numpy as np

from kzoo.card import sample_inputs
from kzoo.errors import KzooError


def input_names(part):
    """Input names in the order of `keras.tree.flatten(part.input)`."""
    import keras

    if isinstance(part.input, dict):  # flatten orders dict values by sorted key
        return sorted(part.input)
    return [t.name for t in keras.tree.flatten(part.input)]


def output_names(part):
    """Output names in the order of `keras.tree.flatten(part.output)`: dict keys, else the
    names of the layers that make them."""
    import keras

    if isinstance(part.output, dict):
        return sorted(part.output)
    outs = keras.tree.flatten(part.output)
    names = [t._keras_history.operation.name for t in outs]
    if len(set(names)) != len(names):
        names = [f"output_{i}" for i in range(len(outs))]
    return names


def pack(part, feeds):
    """Arrange a {name: array} dict into the structure `part` is called with."""
    import keras

    if isinstance(part.input, dict):
        return {k: feeds[k] for k in part.input}
    return keras.tree.pack_sequence_as(part.input, [feeds[n] for n in input_names(part)])


def call(part, feeds, training=False):
    """Run `part` on {input name: array}; returns {output name: tensor}."""
    import keras

    result = part(pack(part, feeds), training=training)
    return dict(zip(output_names(part), keras.tree.flatten(result)))


def describe(endpoint, part, card):
    """The `kzoo.json` description of `endpoint`: `card.spec(endpoint)`, checked against `part`."""
    spec = card.spec(endpoint)
    check(spec, part)
    return spec


def _dims(shape):
    return [None if d is None else int(d) for d in shape]


def _mismatch(endpoint, what, card_value, net_value):
    return KzooError(f"endpoint {endpoint!r}: the model card declares {what} {card_value} but the "
                     f"network has {net_value}; make card() match inference_parts()")


def _check_dims(endpoint, what, declared, actual):
    """Dims known on both sides must agree (the batch axis is always open)."""
    if len(declared) != len(actual):
        raise _mismatch(endpoint, f"{what} shape", declared, actual)
    for i, (d, a) in enumerate(zip(declared, actual)):
        if i == 0 or d is None or a is None:  # the batch axis; a dim one side leaves open
            continue
        if d != a:
            raise _mismatch(endpoint, f"{what} shape", declared, actual)


def check(spec, part):
    """Raise a `KzooError` naming the first disagreement between `spec` and the network `part`.

    Checked: the input names (as a set: the card may list them in any order) and each
    input's dtype and known dimensions; the output names, and each output's dtype and
    known dimensions as a forward pass at the card's size produces them (a `Lambda`
    layer's symbolic dtype is its float policy, whatever it returns).
    """
    import keras

    ep = spec["endpoint"]
    spatial = spec["dynamic"]["spatial"]
    declared = {e["name"]: e for e in spec["inputs"]}
    net_inputs = dict(zip(input_names(part), keras.tree.flatten(part.input)))
    if set(declared) != set(net_inputs):
        raise _mismatch(ep, "inputs", sorted(declared), sorted(net_inputs))
    for name, t in net_inputs.items():
        e = declared[name]
        dtype = keras.backend.standardize_dtype(t.dtype)
        if e["dtype"] != dtype:
            raise _mismatch(ep, f"input {name!r} dtype", e["dtype"], dtype)
        _check_dims(ep, f"input {name!r}", e["shape"], _dims(t.shape))
    outputs = {e["name"]: e for e in spec["outputs"]}
    names = output_names(part)
    if set(outputs) != set(names):
        raise _mismatch(ep, "outputs", sorted(outputs), sorted(names))
    size = spec["dynamic"]["spatial_size"]["base"] if spatial else None
    open_dims = [n for n, e in declared.items() if None in e["shape"][1:]]
    if open_dims and not spatial:
        raise KzooError(f"endpoint {ep!r}: input {open_dims[0]!r} has shape "
                        f"{declared[open_dims[0]]['shape']} with an unknown dimension but the card "
                        "declares no dynamic size (size_multiple, base_size)")
    feeds = sample_inputs(spec["inputs"], 1, np.random.default_rng(0), size=size)
    try:
        result = call(part, feeds)
    except Exception as e:
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise KzooError(f"endpoint {ep!r} does not run on the card's sample inputs"
                        + (f" at {size}x{size}" if size else "") + f": {first}") from None
    for name, value in result.items():
        e = outputs[name]
        dtype = keras.backend.standardize_dtype(value.dtype)
        if e["dtype"] != dtype:
            raise _mismatch(ep, f"output {name!r} dtype", e["dtype"], dtype)
        _check_dims(ep, f"output {name!r}", e["shape"], [None, *_dims(value.shape)[1:]])
