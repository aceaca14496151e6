"""The preset format: a folder (or archive of it) that holds one trained model.

    <name>/
      model.keras       the full trainable model (every network, e.g. both players of a
                        GAN), saved uncompiled and without training state (optimizer
                        slots, CycleGAN's image pools): about a third of a run's
                        model.keras trained with Adam; fine-tuning starts them afresh
      inference.keras   the part a deployment runs (e.g. the generator)
      metadata.json     name, version, model class, task, the model's card
                        (`kzoo.card.ModelCard.to_dict()`: endpoints, inputs/outputs with
                        roles and value ranges, size multiple, references), versions,
                        dataset, recipe config, metrics, image size, license, and the
                        sha256 + size of every other file
      README.md         the model card in words: what it does, endpoints, how it was
                        trained, metrics, usage, limits (`kzoo.hub.modelcard`)
      samples.png       the run's last sample grid

`build_preset(run_dir, out, name=...)` makes one from a recipe run directory (its
`model/` folder, `config.json`, `metrics.jsonl` and `samples/`); the card and task
come from the trained model itself (`model.card()`). Presets published before
cards existed have no `card` in metadata.json; their model still declares one
when loaded (`kzoo.hub.loader.card`). `verify(folder)`
checks every file against its recorded sha256 and that both model files hold only
Keras and kzoo objects (no Lambda layers, no foreign modules, no pickles).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

from kzoo.errors import KzooError
from kzoo.hub.modelcard import readme
from kzoo.io import publish_dir, temp_dir, write_json, write_text

FORMAT = "kzoo-preset"
FORMAT_VERSION = 1
MODEL_FILES = {"full": "model.keras", "inference": "inference.keras"}
FILES = ("model.keras", "inference.keras", "README.md", "samples.png")
DEFAULT_LICENSE = "Apache-2.0"

_SAFE_MODULES = ("keras", "kzoo")
_KERAS_ENTRIES = {"config.json", "metadata.json", "model.weights.h5"}


def sha256_file(path, chunk=1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# --- reading and checking ------------------------------------------------------

def read_metadata(folder) -> dict:
    path = Path(folder) / "metadata.json"
    if not path.is_file():
        raise KzooError(f"{folder} is not a kzoo preset: it has no metadata.json")
    from kzoo.hub import schema

    meta = schema.read_json(path)  # bounded size and nesting
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "files" not in meta:
        raise KzooError(f"{path} is not kzoo preset metadata (format {FORMAT!r} with 'files')")
    schema.check_metadata(meta, path)  # the type and range of every field kzoo reads
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise KzooError(f"{path}: preset format {meta['format_version']} is newer than this "
                        f"kzoo understands ({FORMAT_VERSION}); upgrade kzoo")
    return meta


def verify(folder) -> dict:
    """Check a preset folder; return its metadata. Raises `KzooError` naming the bad file."""
    folder = Path(folder)
    meta = read_metadata(folder)
    files = meta["files"]
    for required in MODEL_FILES.values():
        if required not in files:
            raise KzooError(f"{folder}: metadata.json lists no {required}")
    for name, info in sorted(files.items()):
        path = folder / name
        if Path(name).is_absolute() or ".." in Path(name).parts or not path.is_file() \
                or path.is_symlink():
            raise KzooError(f"{folder}: {name} is missing (or not a plain file in the preset)")
        digest = sha256_file(path)
        if digest != info["sha256"]:
            raise ChecksumError(f"{path}: sha256 {digest} does not match {info['sha256']} "
                                "recorded in metadata.json")
    for name in MODEL_FILES.values():
        check_keras_file(folder / name)
    return meta


class ChecksumError(KzooError):
    """A file's sha256 does not match the one recorded for it."""


def check_keras_file(path):
    """Refuse a `.keras` file that could run code when loaded.

    Only `config.json`, `metadata.json` and `model.weights.h5` may be inside; every
    object in the config must come from Keras or kzoo, and no layer may be a
    `Lambda` (whose Python code would be deserialized). Keras' own safe mode is
    used when loading as well; this check gives a clear error first.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            extra = sorted(set(zf.namelist()) - _KERAS_ENTRIES)
            if extra:
                raise KzooError(f"{path}: unexpected entries {extra}; a kzoo preset model holds "
                                "only config.json, metadata.json and model.weights.h5")
            config = json.loads(zf.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KzooError(f"{path}: not a valid .keras model file ({e})") from None
    _check_config(path, config)


def _check_config(path, obj):
    if isinstance(obj, dict):
        if "class_name" in obj:
            cls, module = obj["class_name"], obj.get("module")
            if cls in ("Lambda", "TFOpLambda"):
                raise KzooError(f"{path}: contains a {cls} layer (arbitrary Python code); "
                                "kzoo never loads code from a preset")
            if module is not None and module.split(".")[0] not in _SAFE_MODULES:
                raise KzooError(f"{path}: refers to {module}.{cls}; a kzoo preset may only use "
                                "Keras and kzoo objects")
        for value in obj.values():
            _check_config(path, value)
    elif isinstance(obj, list):
        for value in obj:
            _check_config(path, value)


# --- building ------------------------------------------------------------------

def _read_run(run_dir):
    run_dir = Path(run_dir)
    model_dir = run_dir / "model"
    for need in ("model.keras", "inference.keras", "metadata.json"):
        if not (model_dir / need).is_file():
            raise KzooError(f"{run_dir} is not a finished kzoo run: {model_dir / need} is missing")
    run_meta = json.loads((model_dir / "metadata.json").read_text())
    cfg_path = run_dir / "config.json"
    run_cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    final = {}
    metrics_path = run_dir / "metrics.jsonl"
    if metrics_path.is_file():
        for line in metrics_path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("final"):
                final = rec
    samples = sorted((run_dir / "samples").glob("*.png"))
    if not samples:
        raise KzooError(f"{run_dir}/samples has no sample grid (*.png)")
    return run_dir, model_dir, run_meta, run_cfg, final, samples[-1]


def _command(recipe, run_cfg):
    argv = list(run_cfg.get("argv") or [])
    while argv and not argv[0].startswith("-"):  # sys.argv[0]: the program's path
        argv.pop(0)
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--out", "--resume"):
            skip = arg == "--out"
            continue
        if arg.startswith("--out="):
            continue
        if arg.startswith("--") and "=" in arg:
            flag, value = arg.split("=", 1)
            kept.append(f"{flag}={_portable(value)}")
        else:
            kept.append(_portable(arg))
    if not kept:
        kept = ["--preset", run_cfg.get("config", {}).get("preset", "paper")]
    return " ".join(["python", "-m", f"kzoo.recipes.{recipe}", *kept])


LOCAL_PATH = "<local path>"


def _portable(value):
    """`value` with absolute filesystem paths (a run's --init-from, ...) replaced by
    `LOCAL_PATH`: a preset says nothing about the machine it was trained on."""
    import os

    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        return LOCAL_PATH
    return value


def build_preset(run_dir, out, *, name, version="1", license=DEFAULT_LICENSE) -> Path:
    """Make the preset folder `out` from a finished recipe run; returns `out`.

    Both models are loaded in Keras safe mode first (a preset that cannot be loaded
    safely is never written). `out` appears complete or not at all.
    """
    import keras
    import tensorflow as tf

    import kzoo
    from kzoo import zoo
    from kzoo.card import card_of

    _check_name(name)
    run_dir, model_dir, run_meta, run_cfg, final, samples = _read_run(run_dir)
    out = Path(out)
    if out.exists():
        raise KzooError(f"{out} already exists; remove it or choose another destination")
    zoo._load_all()
    for fname in MODEL_FILES.values():
        check_keras_file(model_dir / fname)
    inference = keras.saving.load_model(model_dir / "inference.keras", safe_mode=True)
    full = keras.saving.load_model(model_dir / "model.keras", safe_mode=True, compile=False)
    card = card_of(full)
    recipe = run_meta.get("recipe") or run_cfg.get("recipe", "unknown")
    metrics = run_meta.get("metrics") or {k: v for k, v in final.items()
                                          if k not in ("final", "train_seconds", "untrained")}
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "name": name, "version": str(version), "license": license,
        "model_class": run_meta.get("model_class"),
        "inference_class": type(inference).__name__,
        "task": card.task, "card": card.to_dict(), "recipe": recipe,
        "dataset": run_meta.get("data"),
        "image_size": run_meta.get("image_size"), "channels": run_meta.get("channels"),
        "num_classes": run_meta.get("num_classes"),
        "metrics": metrics, "untrained_metrics": final.get("untrained", {}),
        "train_seconds": final.get("train_seconds"),
        "config": _portable(run_meta.get("config") or run_cfg.get("config", {})),
        "changed_from_paper": _portable(run_cfg.get("changed_from_paper", {})),
        "command": _command(recipe, run_cfg),
        "kzoo_version": run_cfg.get("kzoo_version", kzoo.__version__),
        "keras_version": run_cfg.get("keras_version", keras.__version__),
        "tensorflow_version": run_cfg.get("tensorflow_version", tf.__version__),
        "published_with": {"kzoo": kzoo.__version__, "keras": keras.__version__},
    }
    def fill(tmp):
        _save_uncompiled(model_dir / "model.keras", tmp / "model.keras", full)
        shutil.copyfile(model_dir / "inference.keras", tmp / "inference.keras")
        shutil.copyfile(samples, tmp / "samples.png")
        return readme(meta)

    return _write_folder(out, meta, fill)


def _write_folder(out: Path, meta: dict, fill) -> Path:
    """Make the preset folder `out` atomically: `fill(tmp)` writes the models and samples.png
    into a temporary sibling and returns the README text; the file list with sizes and
    sha256 goes into metadata.json, then the folder is renamed into place (or removed)."""
    tmp = temp_dir(out.parent, out.name)
    try:
        write_text(tmp / "README.md", fill(tmp))
        meta["files"] = {f: {"sha256": sha256_file(tmp / f), "size": (tmp / f).stat().st_size}
                         for f in FILES}
        write_json(tmp / "metadata.json", meta)
        publish_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _save_uncompiled(src, dst, model=None):
    """Save the model in `src` to `dst` without its compile state, optimizer variables or
    other training state (layers with a `reset_state()`, e.g. CycleGAN's fake-image pools,
    are emptied: zeros that the archive compresses away).

    The bytes depend only on `src` (publishing a run twice gives the same sha256):
    Keras' metadata.json (with its save date) and the weights file's attributes
    (layer names, which Keras numbers per process) are taken from `src`, zip
    entries get a fixed date, and HDF5 objects record no times. `model`: `src`
    already loaded uncompiled (its training state is emptied here).
    """
    import keras

    if model is None:
        model = keras.saving.load_model(src, safe_mode=True, compile=False)
    for layer in model._flatten_layers(include_self=False):
        if callable(getattr(layer, "reset_state", None)):
            layer.reset_state()
    with tempfile.TemporaryDirectory(prefix="kzoo-slim-") as tmp:
        saved = Path(tmp) / "model.keras"
        model.save(saved)
        with zipfile.ZipFile(src) as original, zipfile.ZipFile(saved) as zin, \
                zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
            for info in zin.infolist():
                if info.filename == "metadata.json":
                    data = original.read("metadata.json")
                elif info.filename.endswith(".h5"):
                    data = _h5_normalized(zin.read(info), original.read(info.filename),
                                          Path(tmp) / "w.h5")
                else:
                    data = zin.read(info)
                zout.writestr(zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0)),
                              data)


def _h5_normalized(data: bytes, reference: bytes, scratch: Path) -> bytes:
    """A copy of HDF5 file `data` without times, taking attributes from `reference`
    wherever it has the same object."""
    import io

    import h5py

    def copy(src, dst, ref):
        for key, value in (ref if ref is not None else src).attrs.items():
            dst.attrs[key] = value
        for name, obj in src.items():
            sub = ref.get(name) if ref is not None else None
            if isinstance(obj, h5py.Dataset):
                ds = dst.create_dataset(name, data=obj[()], track_times=False)
                for key, value in (sub if sub is not None else obj).attrs.items():
                    ds.attrs[key] = value
            else:
                gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
                gcpl.set_obj_track_times(False)
                group = h5py.Group(h5py.h5g.create(dst.id, name.encode(), gcpl=gcpl))
                copy(obj, group, sub if isinstance(sub, h5py.Group) else None)

    with h5py.File(io.BytesIO(data), "r") as fin, h5py.File(io.BytesIO(reference), "r") as ref, \
            h5py.File(scratch, "w") as fout:
        copy(fin, fout, ref)
    out = scratch.read_bytes()
    scratch.unlink()
    return out


def _check_name(name):
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", name or ""):
        raise KzooError(f"preset name {name!r}: use 1-64 lowercase letters, digits, '.', '_' "
                        "or '-', starting with a letter or digit")


def build_from_models(out, *, full, inference, meta: dict, readme_text: str, sample) -> Path:
    """Make the preset folder `out` from in-memory models (a converted upstream checkpoint).

    `meta` holds every metadata field but `format`, `card`, `files` and the versions,
    which are filled here; `sample` is a uint8 HxWxC picture. Both models must pass
    `check_keras_file`. `out` appears complete or not at all.
    """
    import keras
    import tensorflow as tf

    import kzoo
    from kzoo.card import card_of
    from kzoo.io import save_png

    _check_name(meta["name"])
    out = Path(out)
    if out.exists():
        raise KzooError(f"{out} already exists; remove it or choose another destination")
    card = card_of(full)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "license": DEFAULT_LICENSE,
            "model_class": type(full).__name__, "inference_class": type(inference).__name__,
            "task": card.task, "card": card.to_dict(), "metrics": {}, "config": {},
            "kzoo_version": kzoo.__version__, "keras_version": keras.__version__,
            "tensorflow_version": tf.__version__,
            "published_with": {"kzoo": kzoo.__version__, "keras": keras.__version__}, **meta}
    def fill(tmp):
        full.save(tmp / "model.keras")
        inference.save(tmp / "inference.keras")
        for name in MODEL_FILES.values():
            check_keras_file(tmp / name)
        save_png(tmp / "samples.png", sample)
        return readme_text

    return _write_folder(out, meta, fill)
