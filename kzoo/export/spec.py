"""What an endpoint takes and returns: names, dtypes, shapes, roles and value ranges.

Every model exports by providing `inference_parts()` -> {endpoint: functional
keras.Model}. This module reads each part and describes it for `kzoo.json`, so
that export, `kzoo.infer` and serving know how to feed it without guessing:

- inputs: float rank-4 tensors are images in [-1, 1] (the zoo's data convention);
  a float vector named `z`/`latent`/`noise` is a latent ~ N(0, I); an int input
  named `label`/`labels`/`class`/`y` is a class label in [0, num_classes); an int
  input named `t`/`timestep` is a diffusion step in [0, timesteps). Anything else
  is a plain `tensor`.
- outputs: the activation of the layer producing an output fixes its range (tanh
  -> [-1, 1], sigmoid -> [0, 1], softmax -> probabilities); an int output is
  `labels`; a float rank-4 output with 1 or 3 channels and a bounded range is an
  `image`.
- a model may refine any entry with `export_spec(endpoint) -> {tensor name: dict}`
  (merged over these defaults), e.g. a DDPM's `eps` output declaring role `tensor`.

An endpoint is spatially dynamic when an image input has unknown height/width in
the functional model (fully convolutional networks built with `Input((None, None, C))`).
"""

from __future__ import annotations

import numpy as np

from kzoo.errors import KzooError

LATENT_NAMES = {"z", "latent", "latents", "noise"}
LABEL_NAMES = {"label", "labels", "class", "class_id", "y"}
TIMESTEP_NAMES = {"t", "timestep", "timesteps"}
IMAGE_RANGE = (-1.0, 1.0)  # every kzoo dataset yields images in [-1, 1]
ACTIVATION_RANGES = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0),
                     "hard_sigmoid": (0.0, 1.0)}


def flat_inputs(part):
    import keras

    return keras.tree.flatten(part.input)


def input_names(part):
    """Input names in the order of `keras.tree.flatten(part.input)`."""
    import keras

    if isinstance(part.input, dict):  # flatten orders dict values by sorted key
        return sorted(part.input)
    return [t.name for t in keras.tree.flatten(part.input)]


def output_names(part):
    """Output names in the order of `keras.tree.flatten(part.output)`."""
    import keras

    if isinstance(part.output, dict):
        return sorted(part.output)
    outs = keras.tree.flatten(part.output)
    names = [_producer(t).name for t in outs]
    if len(set(names)) != len(names):
        names = [f"output_{i}" for i in range(len(outs))]
    return names


def _producer(tensor):
    return tensor._keras_history.operation


def _activation_name(layer):
    import keras

    act = getattr(layer, "activation", None)
    if act is None:
        return None
    try:
        name = keras.activations.serialize(act)
    except Exception:
        return None
    return name if isinstance(name, str) else getattr(act, "__name__", None)


def _dtype(tensor):
    import keras

    return keras.backend.standardize_dtype(tensor.dtype)


def describe_inputs(part, model, metadata):
    out = []
    for name, t in zip(input_names(part), flat_inputs(part)):
        dtype, shape = _dtype(t), [None if d is None else int(d) for d in t.shape]
        entry = {"name": name, "dtype": dtype, "shape": shape, "role": "tensor"}
        integer = dtype.startswith("int") or dtype.startswith("uint")
        lname = name.lower()
        if integer and lname in LABEL_NAMES:
            entry.update(role="label", num_classes=_num_classes(model, metadata))
        elif integer and lname in TIMESTEP_NAMES:
            entry.update(role="timestep", timesteps=_attr(model, metadata, "timesteps", "num_timesteps"))
        elif not integer and len(shape) == 2 and lname in LATENT_NAMES:
            entry.update(role="latent", distribution="normal(0, 1)")
        elif not integer and len(shape) == 4 and shape[-1] in (1, 3) and not lname.startswith("x_t"):
            entry.update(role="image", range=list(IMAGE_RANGE))
        out.append(entry)
    return out


def describe_outputs(part, dtypes=None):
    """Output entries; `dtypes` ({name: dtype} of a real forward pass) beats the symbolic
    dtype, which a `Lambda` layer reports as its float policy whatever it returns."""
    import keras

    out = []
    for name, t in zip(output_names(part), keras.tree.flatten(part.output)):
        dtype, shape = (dtypes or {}).get(name) or _dtype(t), [None if d is None else int(d) for d in t.shape]
        entry = {"name": name, "dtype": dtype, "shape": shape, "role": "tensor"}
        act = _activation_name(_producer(t))
        if dtype.startswith("int"):
            entry["role"] = "labels"
        elif act == "softmax":
            entry.update(role="probabilities", range=[0.0, 1.0])
        elif act in ACTIVATION_RANGES:
            entry["range"] = list(ACTIVATION_RANGES[act])
            if len(shape) == 4 and shape[-1] in (1, 3):
                entry["role"] = "image"
        out.append(entry)
    return out


def _attr(model, metadata, *names):
    for n in names:
        v = getattr(model, n, None)
        if v is None:
            v = (metadata or {}).get(n)
        if v is not None:
            return int(v)
    return None


def _num_classes(model, metadata):
    return _attr(model, metadata, "num_classes")


def describe(endpoint, part, model=None, metadata=None):
    """The `kzoo.json` entry of one endpoint (see module docstring)."""
    hook = getattr(model, "export_spec", None)
    overrides = (hook(endpoint) or {}) if callable(hook) else {}
    inputs = describe_inputs(part, model, metadata)
    for entry in inputs:
        entry.update(overrides.get(entry["name"], {}))
    dynamic = {"batch": True, "spatial": any(e["role"] == "image" and None in e["shape"][1:3]
                                             for e in inputs)}
    size = None
    if dynamic["spatial"]:
        dynamic["spatial_size"] = _probe_sizes(part, inputs, model, metadata)
        size = dynamic["spatial_size"]["base"]
    outputs = describe_outputs(part, _output_dtypes(part, inputs, size))
    for entry in outputs:
        entry.update(overrides.get(entry["name"], {}))
    return {"endpoint": endpoint, "inputs": inputs, "outputs": outputs, "dynamic": dynamic}


def _output_dtypes(part, inputs, size):
    import keras

    feeds = sample_inputs(inputs, 1, np.random.default_rng(0), size=size)
    result = keras.tree.flatten(part(pack(part, feeds), training=False))
    return {n: keras.backend.standardize_dtype(v.dtype) for n, v in zip(output_names(part), result)}


def _probe_sizes(part, inputs, model, metadata):
    """Find a size the model takes (`base`) and the multiple its H/W must be (`multiple`)."""
    candidates = [_attr(model, metadata, "image_size", "input_size"), 32, 64, 16, 128]
    base = None
    for size in [c for c in candidates if c]:
        if _accepts(part, inputs, size):
            base = size
            break
    if base is None:
        raise KzooError(f"cannot find an image size that endpoint {part.name!r} accepts "
                        f"(tried {', '.join(str(c) for c in candidates if c)})")
    multiple = next((m for m in (1, 2, 4, 8, 16, 32, 64) if _accepts(part, inputs, base + m)), base)
    return {"base": base, "multiple": multiple}


def _accepts(part, inputs, size):
    try:
        feeds = sample_inputs(inputs, 1, np.random.default_rng(0), size=size)
        part(pack(part, feeds), training=False)
        return True
    except Exception:
        return False


def pack(part, feeds):
    """Arrange a {name: array} dict into the structure `part` is called with."""
    import keras

    if isinstance(part.input, dict):
        return {k: feeds[k] for k in part.input}
    return keras.tree.pack_sequence_as(part.input, [feeds[n] for n in input_names(part)])


def concrete_shape(shape, batch, size=None):
    dims = [batch]
    for i, d in enumerate(shape[1:], start=1):
        if d is None:
            if size is None:
                raise KzooError(f"shape {shape} has an unknown dimension {i}; give a size")
            d = size if i in (1, 2) else 1
        dims.append(d)
    return tuple(dims)


def sample_inputs(inputs, batch, rng, size=None):
    """Seeded inputs that respect each input's role (and `size` for dynamic H/W)."""
    feeds = {}
    for e in inputs:
        shape = concrete_shape(e["shape"], batch, size)
        if e["role"] == "label":
            n = e.get("num_classes") or 2
            feeds[e["name"]] = rng.integers(0, n, shape).astype(e["dtype"])
        elif e["role"] == "timestep":
            n = e.get("timesteps") or 1000
            feeds[e["name"]] = rng.integers(0, n, shape).astype(e["dtype"])
        elif e["role"] == "image":
            lo, hi = e["range"]
            feeds[e["name"]] = rng.uniform(lo, hi, shape).astype(e["dtype"])
        elif e["dtype"].startswith("int") or e["dtype"].startswith("uint"):
            feeds[e["name"]] = rng.integers(0, 2, shape).astype(e["dtype"])
        else:
            feeds[e["name"]] = rng.standard_normal(shape).astype(e["dtype"])
    return feeds
