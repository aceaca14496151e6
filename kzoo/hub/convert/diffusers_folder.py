"""A diffusers model folder as a format of `kzoo hub convert` (see `kzoo.hub.convert`).

A diffusers model folder is `config.json` (its `_class_name` names the model class),
`diffusion_pytorch_model.safetensors` (or `.bin` of older uploads) and, for a
`UNet2DModel`, `scheduler_config.json` beside them or in `scheduler/`; a pipeline keeps
the model in `unet/`. `hf://owner/repo` downloads such a folder (`kzoo.hub.hf`).

Each model class is one row of `CLASSES`: the function that turns the folder's state
dict, config and scheduler config into `(full model, inference network, info, image
size)`:

    UNet2DModel     a `DDPM` (`kzoo.hub.convert.diffusers`); a config without
                    `_class_name` is one (diffusers' own default for a UNet folder)
    AutoencoderKL   an `AutoencoderKL` (`kzoo.hub.convert.autoencoder_kl`)
"""

from __future__ import annotations

from pathlib import Path

from kzoo.errors import KzooError

WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
SCHEDULERS = ("scheduler_config.json", "scheduler/scheduler_config.json")
ARCHS = ("diffusers", "UNet2DModel", "AutoencoderKL")  # what --arch may say of a folder

# A diffusers folder names its architecture itself (config.json): the preset's reference
# is the source without `#arch=` (`kzoo.hub.convert.write`'s `load_as`).
ARCH_IN_REFERENCE = False


def _first(folder: Path, *names):
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _model_dir(folder: Path) -> Path:
    """The folder holding the model's config.json: `unet/` of a pipeline, else the folder."""
    return folder / "unet" if (folder / "unet" / "config.json").is_file() else folder


def is_diffusers_folder(path: Path) -> bool:
    """A folder with a diffusers `config.json` (its `_class_name` key) or its weights beside it
    (a kzoo run directory, which also holds a config.json, is neither)."""
    path = Path(path)
    if not path.is_dir() or (path / "metadata.json").is_file():
        return False
    unet = _model_dir(path)
    config = unet / "config.json"
    if not config.is_file():
        return False
    if (path / "model_index.json").is_file() or _first(unet, *WEIGHTS) is not None:
        return True
    try:
        with open(config, "rb") as f:
            return b'"_class_name"' in f.read(1 << 16)
    except OSError:
        return False


def read(folder: Path):
    """`(state, config, scheduler_config or None, weights path)` of a diffusers model folder."""
    from kzoo.hub import schema
    from kzoo.hub.convert.torchfile import load_state_dict

    folder = Path(folder)
    unet = _model_dir(folder)
    weights = _first(unet, *WEIGHTS)
    if weights is None:
        raise KzooError(f"{unet}: a diffusers model folder holds {' or '.join(WEIGHTS)}")
    config = schema.read_json(unet / "config.json")
    scheduler = _first(folder, *SCHEDULERS)
    return (load_state_dict(weights), config,
            schema.read_json(scheduler) if scheduler else None, weights)


def files(source) -> list:
    """The files `read` reads (weights, config.json, scheduler config): their sha256s
    identify the source."""
    folder = Path(source.path)
    unet = _model_dir(folder)
    paths = [_first(unet, *WEIGHTS), unet / "config.json", _first(folder, *SCHEDULERS)]
    return [p for p in paths if p is not None]


# --- one row a model class -------------------------------------------------------------

def _ddpm(state, config, scheduler):
    """`UNet2DModel`: a `DDPM` whose networks hold the checkpoint, sampling as diffusers'
    pipelines do with the folder's scheduler config."""
    from kzoo.card import inference_parts
    from kzoo.hub.convert.diffusers import convert_diffusers

    full = convert_diffusers(state, config, scheduler)
    inference = next(iter(inference_parts(full).values()))
    info = {"format": "diffusers", "arch": str(config.get("_class_name", "UNet2DModel")),
            "code": "https://github.com/huggingface/diffusers",
            "paper": "Ho, Jain & Abbeel, \"Denoising Diffusion Probabilistic Models\", "
                     "NeurIPS 2020",
            "license": "Apache-2.0 (the google/ddpm-* model cards)",
            "note": ("noise schedule and sampler options from scheduler_config.json" if scheduler
                     else "no scheduler_config.json: DDPMScheduler's default schedule") +
                    "; samples as diffusers' DDPMPipeline / DDIMPipeline with their defaults"}
    return full, inference, info, int(config.get("sample_size") or 32)


def _autoencoder_kl(state, config, scheduler):
    from kzoo.hub.convert.autoencoder_kl import autoencoder_kl_models

    return autoencoder_kl_models(state, config)


CLASSES = {"UNet2DModel": _ddpm, "AutoencoderKL": _autoencoder_kl}
DEFAULT_CLASS = "UNet2DModel"


def diffusers_models(folder: Path):
    """`(full model, its inference network, info, image size)` of a diffusers model folder,
    by its config's `_class_name` (`CLASSES`; any other class goes to the UNet2DModel
    converter, whose error names what it does not build)."""
    state, config, scheduler, _ = read(folder)
    name = config.get("_class_name") if isinstance(config, dict) else None
    return CLASSES.get(name, CLASSES[DEFAULT_CLASS])(state, config, scheduler)


# --- the format protocol of `kzoo.hub.convert` ---------------------------------------------

def accepts(source) -> bool:
    return is_diffusers_folder(source.path)


def models(source):
    """`diffusers_models` of `source.path`; `--reverse`, `--mode authors` and a `.pth`
    architecture are refused (one line each)."""
    path = source.path
    if source.reverse is not None:
        raise KzooError(f"{path} is a diffusers folder: --reverse is for CycleGAN generator files")
    if source.mode != "eval":
        raise KzooError(f"{path} is a diffusers folder: --mode {source.mode} is for junyanz "
                        "generators (a DDPM has no batch norm or dropout)")
    if source.arch not in (None, *ARCHS):
        raise KzooError(f"{path} is a diffusers folder: --arch {source.arch} is for .pth files")
    return diffusers_models(path)
