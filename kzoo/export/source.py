"""What `kzoo export SOURCE` can read: a run directory, a `.keras` file, or a preset.

- a run directory (`runs/<recipe>/<run>/`): its `model/model.keras` and
  `model/metadata.json`, as the recipe runner writes them when training ends;
- a preset directory (the same layout as a run's `model/`: `model.keras`,
  `inference.keras`, `metadata.json`);
- a `.keras` file of a full zoo model;
- an in-memory `keras.Model` (from Python);
- a hub reference (`kzoo.hub.load`'s: a catalog name, an archive, a URL, hf://),
  fetched into the hub cache and read as a preset directory.

The model must declare its `card()` (`kzoo.card.ModelCard`), one endpoint per key
of `inference_parts()`: export describes every endpoint from it. The default
export name is a preset's name (`srresnet-photos`), a run's recipe, a file's stem,
else the model class in snake case.

Models load in Keras safe mode: nothing in the file is executed.

`mode` picks the test-time mode of the endpoints (`kzoo.layers.test_mode`): "eval"
(batch norm's running statistics, no dropout: Keras inference) or "authors" (the
junyanz authors' default test.py: batch statistics and dropout on), for networks
converted from junyanz/pytorch-CycleGAN-and-pix2pix (`exact="junyanz"`) only. None:
the mode the source recorded (a converted preset's `test_mode`), else "eval".
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from kzoo.card import card_of, inference_parts
from kzoo.errors import KzooError


@dataclasses.dataclass
class Source:
    """A loaded export source.

    Attributes:
        model: the full model.
        parts: {endpoint: functional keras.Model} to export.
        card: the model's `kzoo.card.ModelCard` (one endpoint per part).
        metadata: the run's/preset's metadata.json (empty for a bare file).
        name: the default export name.
        description: where it came from (for kzoo.json).
        mode: the endpoints' test-time mode, "eval" or "authors".
    """

    model: object
    parts: dict
    card: object
    metadata: dict
    name: str
    description: str
    mode: str = "eval"


def _snake(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def export_name(name):
    """`name` as an export (TF Serving / Triton) model name: lowercase, other characters '-'."""
    cleaned = re.sub(r"[^a-z0-9_.-]+", "-", str(name).lower()).strip("-._")
    return cleaned or "model"


def _source(model, metadata, name, description):
    parts = inference_parts(model)
    card = card_of(model)
    if set(card.names) != set(parts):
        raise KzooError(f"{type(model).__name__}.card() declares endpoints {sorted(card.names)} but "
                        f"inference_parts() returns {sorted(parts)}")
    return Source(model, parts, card, metadata, export_name(name), description)


def in_mode(src: Source, mode=None) -> Source:
    """`src` with its endpoints in test-time `mode` (see module docstring)."""
    from kzoo.layers.test_mode import check_mode, with_test_mode

    recorded = src.metadata.get("test_mode") if isinstance(src.metadata, dict) else None
    mode = check_mode(mode or recorded or "eval")
    if mode == "eval":
        return dataclasses.replace(src, mode="eval")
    if getattr(src.model, "exact", None) != "junyanz":
        raise KzooError(f"--mode {mode} runs the junyanz authors' test.py behaviour: it is for "
                        f"networks converted from junyanz/pytorch-CycleGAN-and-pix2pix "
                        f"(exact='junyanz'), not this {type(src.model).__name__}")
    parts = {ep: with_test_mode(part, mode) for ep, part in src.parts.items()}
    return dataclasses.replace(src, parts=parts, mode=mode)


def _load_keras(path):
    import keras

    from kzoo.zoo import list_models

    list_models()  # imports every model family, registering its classes with Keras

    try:
        return keras.saving.load_model(path)
    except Exception as e:  # corrupt zip, unknown class, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise KzooError(f"cannot load {path}: {first}") from None


def _read_metadata(path):
    if not path.is_file():
        return {}
    from kzoo.hub.schema import read_json

    meta = read_json(path)  # bounded size and nesting: a preset may be hostile
    if not isinstance(meta, dict):
        raise KzooError(f"{path}: not a JSON object")
    return meta


def _from_model_dir(model_dir, default_name, description):
    from kzoo.hub.preset import FORMAT

    meta = _read_metadata(model_dir / "metadata.json")
    from kzoo.hub.schema import is_dataset_name

    preset_name = meta.get("name") if meta.get("format") == FORMAT else None
    if "data" not in meta and is_dataset_name(meta.get("dataset")):  # a name, never a path
        meta = {**meta, "data": meta["dataset"]}
    model = _load_keras(model_dir / "model.keras")
    name = preset_name or meta.get("recipe") or default_name or _snake(type(model).__name__)
    return _source(model, meta, name, description)


def resolve(source):
    """Load `source` (see module docstring) into a `Source`."""
    import keras

    if isinstance(source, keras.Model):
        return _source(source, {}, _snake(type(source).__name__), f"in-memory {type(source).__name__}")
    from kzoo.hub.loader import hub_folder

    preset = hub_folder(source)
    if preset is not None:
        return _from_model_dir(preset, None, f"hub preset {source}")
    path = Path(source)
    if not path.exists():
        raise KzooError(f"export source {str(source)!r} does not exist; give a run directory, "
                        "a preset directory, a .keras file or a hub preset name")
    if path.is_file():
        if path.suffix != ".keras":
            raise KzooError(f"{path} is not a .keras file; give a run directory, a preset "
                            "directory or a .keras file")
        model = _load_keras(path)
        meta = _read_metadata(path.with_name("metadata.json"))
        stem = None if path.stem in ("model", "inference") else path.stem.lower()
        name = meta.get("recipe") or stem or _snake(type(model).__name__)
        return _source(model, meta, name, f"file {path}")
    if (path / "model.keras").is_file():
        return _from_model_dir(path, path.name.lower(), f"preset {path}")
    if (path / "config.json").is_file() or (path / "checkpoints").is_dir():
        if not (path / "model" / "model.keras").is_file():
            raise KzooError(f"run {path} has no trained model ({path / 'model' / 'model.keras'} "
                            "is missing): training has not finished; resume it with "
                            f"`kzoo train RECIPE --resume --out {path}`")
        recipe = _read_metadata(path / "config.json").get("recipe")
        return _from_model_dir(path / "model", recipe, f"run {path}")
    raise KzooError(f"{path} is neither a run directory (config.json + model/model.keras), "
                    "a preset directory (model.keras + metadata.json) nor a .keras file")
