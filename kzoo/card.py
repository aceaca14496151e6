"""The model card in code: what a family's endpoints take and return.

Every model family declares its card next to its network (`Model.card()`), in
the spirit of timm's `PretrainedCfg`: the task, and for each endpoint of
`inference_parts()` its inputs and outputs with their roles, value ranges and
colour spaces, whether height/width are dynamic and the multiple they must be,
and a size the endpoint certainly takes. Export (`kzoo.json`), the hub (metadata
and the README card), serving, `kzoo predict` and the demo page read the card;
nothing guesses from tensor names or probes sizes.

Roles:

- inputs: `image` (NHWC in `range`), `latent` (N(0, I) vector), `label` (int class
  id in [0, num_classes)), `timestep` (int diffusion step in [0, timesteps)),
  `tensor` (anything else, e.g. a DDPM's noisy `x_t`).
- outputs: `image` (NHWC in `range`), `probabilities` (softmax over the last
  axis), `labels` (int class id per pixel), `tensor` (e.g. a DDPM's `eps`).
  An output marked `clip` is not bounded by the network (a linear super-resolution
  output is only about in [-1, 1]): consumers clip it to `range`.

Helpers build the usual tensors (`image`, `latent`, `label`, `timestep`,
`probabilities`, `label_map`) and image-to-image endpoints (`image_to_image`);
`docstring_references(cls)` reads a model class's `References:` section.

Example:
>>> card = ModelCard(task="super-resolution", summary="upscales images 4x", endpoints=(
...     Endpoint("generator", inputs=(image("lr", 3),), outputs=(image("sr", 3),),
...              size_multiple=1, base_size=24),))
>>> card.spec("generator")["dynamic"]
{'batch': True, 'spatial': True, 'spatial_size': {'base': 24, 'multiple': 1}}
>>> ModelCard.from_dict(card.to_dict()) == card
True
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kzoo.errors import KzooError

INPUT_ROLES = ("image", "latent", "label", "timestep", "tensor")
OUTPUT_ROLES = ("image", "probabilities", "labels", "tensor")
IMAGE_RANGE = (-1.0, 1.0)  # every kzoo dataset yields images in [-1, 1]
COLOR_SPACES = {1: "gray", 3: "rgb"}


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One input or output of an endpoint.

    Args:
        name: str. The tensor's name in the exported signature.
        role: str. One of `INPUT_ROLES` / `OUTPUT_ROLES`.
        shape: tuple. Shape without the batch axis; None where dynamic.
        dtype: str. "float32", "int32", ...
        range: (lo, hi) or None. Value range (images, probabilities).
        color_space: str or None. "rgb", "gray", "lab" ... for images.
        num_classes: int or None. Classes of a `label` input or `labels`/
            `probabilities` output.
        timesteps: int or None. Diffusion steps T of a `timestep` input.
        description: str. One line for the model card.
        clip: bool. The network does not bound the values to `range` (e.g. a
            linear super-resolution output): consumers clip them to it.
        class_names: tuple of str or None. The name of each class of a `labels` /
            `probabilities` output (e.g. torchvision's 21 VOC categories).
    """

    name: str
    role: str
    shape: tuple
    dtype: str = "float32"
    range: tuple | None = None
    color_space: str | None = None
    num_classes: int | None = None
    timesteps: int | None = None
    description: str = ""
    clip: bool = False
    class_names: tuple | None = None

    def entry(self) -> dict:
        """The `kzoo.json` entry (with the batch axis, as `None`)."""
        out = {"name": self.name, "dtype": self.dtype, "shape": [None, *self.shape],
               "role": self.role}
        if self.range is not None:
            out["range"] = [float(v) for v in self.range]
        if self.color_space:
            out["color_space"] = self.color_space
        if self.num_classes is not None:
            out["num_classes"] = int(self.num_classes)
        if self.timesteps is not None:
            out["timesteps"] = int(self.timesteps)
        if self.role == "latent":
            out["distribution"] = "normal(0, 1)"
        if self.description:
            out["description"] = self.description
        if self.clip:
            out["clip"] = True
        if self.class_names:
            out["class_names"] = [str(n) for n in self.class_names]
        return out

    @classmethod
    def from_entry(cls, e: dict) -> "Tensor":
        return cls(name=e["name"], role=e["role"], shape=tuple(e["shape"][1:]), dtype=e["dtype"],
                   range=tuple(e["range"]) if e.get("range") is not None else None,
                   color_space=e.get("color_space"), num_classes=e.get("num_classes"),
                   timesteps=e.get("timesteps"), description=e.get("description", ""),
                   clip=bool(e.get("clip", False)),
                   class_names=tuple(e["class_names"]) if e.get("class_names") else None)


def image(name, channels, size=None, *, range=IMAGE_RANGE, color_space=None, description="",
          clip=False):
    """An image tensor `(size, size, channels)` (size None: dynamic height/width)."""
    return Tensor(name, "image", (size, size, channels), range=tuple(range),
                  color_space=color_space or COLOR_SPACES.get(channels), description=description,
                  clip=clip)


def latent(name, dim, description="standard normal N(0, 1), one vector per image"):
    return Tensor(name, "latent", (dim,), description=description)


def label(name, num_classes, description="integer class id in [0, num_classes)"):
    return Tensor(name, "label", (), dtype="int32", num_classes=num_classes,
                  description=description)


def timestep(name, timesteps, description="integer diffusion step in [0, timesteps)"):
    return Tensor(name, "timestep", (), dtype="int32", timesteps=timesteps,
                  description=description)


def probabilities(name, num_classes, size=None,
                  description="softmax class probabilities of every pixel"):
    """Per-pixel class probabilities `(size, size, num_classes)`, summing to 1 over the last axis."""
    return Tensor(name, "probabilities", (size, size, num_classes), range=(0.0, 1.0),
                  num_classes=num_classes, description=description)


def label_map(name, num_classes, size=None, description="integer class id of every pixel"):
    """Per-pixel class ids `(size, size)` in [0, num_classes)."""
    return Tensor(name, "labels", (size, size), dtype="int32", num_classes=num_classes,
                  description=description)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One deployable network (a key of the model's `inference_parts()`).

    Args:
        name: str. The endpoint name.
        inputs: tuple of `Tensor`. In the order the network is called with.
        outputs: tuple of `Tensor`.
        size_multiple: int or None. Height/width are dynamic and must be a
            multiple of this; None: the image size is fixed by the shapes.
        base_size: int or None. A height/width the endpoint certainly takes
            (sample inputs, parity checks); required when `size_multiple` is set.
    """

    name: str
    inputs: tuple
    outputs: tuple
    size_multiple: int | None = None
    base_size: int | None = None

    def __post_init__(self):
        for kind, tensors in (("input", self.inputs), ("output", self.outputs)):
            names = [t.name for t in tensors]
            if len(set(names)) != len(names):
                raise ValueError(f"endpoint {self.name!r}: {kind} names repeat: {names}")
        for t in self.inputs:
            if t.role not in INPUT_ROLES:
                raise ValueError(f"input {t.name!r}: role {t.role!r} is not one of {INPUT_ROLES}")
        for t in self.outputs:
            if t.role not in OUTPUT_ROLES:
                raise ValueError(f"output {t.name!r}: role {t.role!r} is not one of {OUTPUT_ROLES}")
        if self.size_multiple is not None and not self.base_size:
            raise ValueError(f"endpoint {self.name!r}: a dynamic size needs base_size")
        if self.size_multiple and self.base_size % self.size_multiple:
            raise ValueError(f"endpoint {self.name!r}: base_size {self.base_size} is not a "
                             f"multiple of {self.size_multiple}")

    @property
    def spatial(self) -> bool:
        return self.size_multiple is not None

    def spec(self) -> dict:
        """The endpoint's `kzoo.json` description."""
        dynamic = {"batch": True, "spatial": self.spatial}
        if self.spatial:
            dynamic["spatial_size"] = {"base": int(self.base_size), "multiple": int(self.size_multiple)}
        return {"endpoint": self.name, "inputs": [t.entry() for t in self.inputs],
                "outputs": [t.entry() for t in self.outputs], "dynamic": dynamic}

    def check_size(self, height, width):
        """Raise a `KzooError` naming the problem if (height, width) is not accepted."""
        if not self.spatial:
            fixed = next((t.shape[:2] for t in self.inputs if t.role == "image"), None)
            if fixed and tuple(fixed) != (height, width):
                raise KzooError(f"{self.name} takes {fixed[0]}x{fixed[1]} images, got {height}x{width}")
            return
        m = self.size_multiple
        if height % m or width % m:
            raise KzooError(f"{self.name} takes images whose height and width are multiples of {m}, "
                            f"got {height}x{width}")


def image_to_image(name, in_channels, out_channels, *, size_multiple, base_size,
                   input_name="image", output_name="output", output_range=IMAGE_RANGE,
                   clip=False):
    """An endpoint that maps one image to another (translation, super-resolution).

    Args:
        name: str. The endpoint name.
        in_channels: int. Channels of the input image.
        out_channels: int. Channels of the output image.
        size_multiple: int. Height/width must be a multiple of this (dynamic size).
        base_size: int. A height/width the endpoint certainly takes.
        input_name: str. The input tensor's name.
        output_name: str. The output tensor's name.
        output_range: (lo, hi). Value range of the output image.
        clip: bool. The output is not bounded by the network (see `Tensor`).
    """
    return Endpoint(name, inputs=(image(input_name, in_channels),),
                    outputs=(image(output_name, out_channels, range=output_range, clip=clip),),
                    size_multiple=size_multiple, base_size=base_size)


def docstring_references(cls) -> tuple:
    """The entries of the `References:` section of `cls`'s docstring, one string each.

    An entry may wrap over several lines and ends with a line ending in '.'
    (the zoo's "Authors, "Title", Venue Year." convention).
    """
    doc = cls.__doc__ or ""
    if "References:" not in doc:
        return ()
    refs, current = [], []
    for line in doc.split("References:", 1)[1].strip().splitlines():
        if not line.strip():
            continue
        current.append(line.strip())
        if line.rstrip().endswith("."):
            refs.append(" ".join(current))
            current = []
    return tuple(refs + ([" ".join(current)] if current else []))


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """A family's card: its task and endpoints (see the module docstring).

    Args:
        task: str. A task id, e.g. "image-to-image-translation".
        summary: str. What the model does, one sentence for the README card.
        endpoints: tuple of `Endpoint`, one per key of `inference_parts()`.
        references: tuple of str. Papers ("Authors, Title, Venue Year").
    """

    task: str
    summary: str
    endpoints: tuple
    references: tuple = ()

    def __post_init__(self):
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"endpoint names repeat: {self.names}")

    def endpoint(self, name) -> Endpoint:
        for e in self.endpoints:
            if e.name == name:
                return e
        raise KzooError(f"no endpoint {name!r}; endpoints: {', '.join(self.names)}")

    @property
    def names(self):
        return [e.name for e in self.endpoints]

    def spec(self, endpoint) -> dict:
        return self.endpoint(endpoint).spec()

    def to_dict(self) -> dict:
        return {"task": self.task, "summary": self.summary, "references": list(self.references),
                "endpoints": [e.spec() for e in self.endpoints]}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelCard":
        eps = []
        for s in d["endpoints"]:
            size = s.get("dynamic", {}).get("spatial_size") or {}
            eps.append(Endpoint(s["endpoint"], tuple(Tensor.from_entry(e) for e in s["inputs"]),
                                tuple(Tensor.from_entry(e) for e in s["outputs"]),
                                size_multiple=size.get("multiple"), base_size=size.get("base")))
        return cls(task=d["task"], summary=d.get("summary", ""), endpoints=tuple(eps),
                   references=tuple(d.get("references", ())))


def concrete_shape(shape, batch, size=None):
    """`shape` (with a leading batch axis) with the batch and dynamic H/W filled in."""
    dims = [batch]
    for i, d in enumerate(shape[1:], start=1):
        if d is None:
            if size is None:
                raise KzooError(f"shape {shape} has an unknown dimension {i}; give a size")
            d = size if i in (1, 2) else 1
        dims.append(d)
    return tuple(dims)


def sample_inputs(inputs, batch, rng, size=None):
    """Seeded inputs `{name: array}` that respect each `kzoo.json` input entry's role."""
    feeds = {}
    for e in inputs:
        shape = concrete_shape(e["shape"], batch, size)
        if e["role"] == "label":
            feeds[e["name"]] = rng.integers(0, e.get("num_classes") or 2, shape).astype(e["dtype"])
        elif e["role"] == "timestep":
            feeds[e["name"]] = rng.integers(0, e.get("timesteps") or 1000, shape).astype(e["dtype"])
        elif e["role"] == "image":
            lo, hi = e["range"]
            feeds[e["name"]] = rng.uniform(lo, hi, shape).astype(e["dtype"])
        elif e["dtype"].startswith(("int", "uint")):
            feeds[e["name"]] = rng.integers(0, 2, shape).astype(e["dtype"])
        else:
            feeds[e["name"]] = rng.standard_normal(shape).astype(e["dtype"])
    return feeds


def card_of(model) -> ModelCard:
    """The `ModelCard` that `model.card()` declares; a `KzooError` saying what to declare if none."""
    hook = getattr(model, "card", None)
    if not callable(hook):
        raise KzooError(
            f"{type(model).__name__} has no model card: export needs a model that defines "
            "`card(self) -> kzoo.card.ModelCard` declaring, for each endpoint of "
            "`inference_parts()` (a plain keras.Model is its own endpoint 'model'), its inputs and "
            "outputs (name, role, shape, dtype, value range) and whether height/width are dynamic "
            "(`size_multiple`, `base_size`); see kzoo/card.py")
    card = hook()
    if not isinstance(card, ModelCard):
        raise KzooError(f"{type(model).__name__}.card() returned a {type(card).__name__}, "
                        "not a kzoo.card.ModelCard")
    return card


def inference_parts(model):
    """{endpoint: functional model}; a model without `inference_parts` is its own endpoint."""
    import keras

    hook = getattr(model, "inference_parts", None)
    parts = dict(hook()) if callable(hook) else {"model": model}
    if not parts:
        raise KzooError(f"{type(model).__name__}.inference_parts() returned no endpoints")
    for endpoint, part in parts.items():
        try:
            functional = isinstance(part, keras.Model) and bool(part.inputs) and part.output is not None
        except (AttributeError, ValueError):
            functional = False
        if not functional:
            raise KzooError(f"endpoint {endpoint!r} of {type(model).__name__} is not a functional "
                            "keras.Model with named inputs; inference_parts() must return those")
    return parts
