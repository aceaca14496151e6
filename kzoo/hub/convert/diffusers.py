"""diffusers `UNet2DModel` checkpoints (google/ddpm-*) as kzoo `DDPM` models.

A diffusers model folder holds the ε-network's `config.json`, its weights
(`diffusion_pytorch_model.safetensors`, or `.bin` from older uploads) and, for a
pipeline, `scheduler/scheduler_config.json`. This module maps them onto the
architecture-exact kzoo network, `kzoo.models.ddpm.ddpm_unet` (Ho et al.'s U-Net,
which is what `UNet2DModel` with `DownBlock2D`/`AttnDownBlock2D` and
`UpBlock2D`/`AttnUpBlock2D` blocks builds), and the noise schedule onto
`kzoo.diffusion.NoiseSchedule`:

- `ddpm_options(config)`: the `DDPM` constructor arguments of a `config.json`, or a
  `KzooError` naming the first field kzoo's network does not build (an unsupported
  block type gets the list of supported ones);
- `schedule_options(scheduler_config)` / `scheduler_config(model)`: the schedule and
  sampler options both ways;
- `parameter_names(network)`: every diffusers parameter name the network holds, its
  PyTorch shape and where it goes -- one table drives the conversion and the tests
  that compare the full-size networks with the published ones' names and shapes;
- `convert_diffusers(state, config, scheduler_config)` and
  `load_diffusers_folder(path)`: a `DDPM` whose raw and EMA networks both hold the
  checkpoint's weights (the published DDPM checkpoints are the EMA weights).

PyTorch layouts: a conv weight is (out, in, kh, kw) where Keras keeps (kh, kw, in,
out); a linear weight is (out, in) where Keras' Dense keeps (in, out); GroupNorm's
weight/bias are Keras' gamma/beta. Attention projections are `to_q`, `to_k`, `to_v`,
`to_out.0`; checkpoints saved by diffusers < 0.14 (all google/ddpm-* uploads) call
them `query`, `key`, `value`, `proj_attn`, which are read as well.

References:
    Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
    von Platen et al., "Diffusers: State-of-the-art diffusion models", GitHub 2022
    (`models/unets/unet_2d.py`, `schedulers/scheduling_ddpm.py`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from kzoo.errors import KzooError

DOWN_BLOCKS = ("DownBlock2D", "AttnDownBlock2D")
UP_BLOCKS = ("UpBlock2D", "AttnUpBlock2D")

# Reference equality of the converted network, shown in docs/hub.md's upstream table
# (`kzoo.hub.catalog.upstream_table`): max |kzoo - diffusers| over the raw and EMA eps-networks'
# outputs, relative to the reference output's range, on the committed fixtures
# (scripts/reference_fixtures_diffusers.py). PROVEN_ERROR is the bound PROVEN_BY asserts;
# MEASURED_ERROR the largest error it measured (ho_legacy_names; tensorflow 2.21 on CPU,
# 2026-12), so the table never claims more than the test proves.
PROVEN_ERROR = 1e-5
MEASURED_ERROR = 4.9e-7
PROVEN_BY = "tests/hub/convert/test_diffusers.py::test_converted_network_reproduces_diffusers"

# UNet2DModel's constructor defaults (diffusers 0.3x-0.4x): what a config.json that
# omits a field means.
UNET_DEFAULTS = {
    "sample_size": None, "in_channels": 3, "out_channels": 3, "center_input_sample": False,
    "time_embedding_type": "positional", "time_embedding_dim": None, "freq_shift": 0,
    "flip_sin_to_cos": True,
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
    "mid_block_type": "UNetMidBlock2D",
    "up_block_types": ("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (224, 448, 672, 896), "layers_per_block": 2,
    "mid_block_scale_factor": 1, "downsample_padding": 1, "downsample_type": "conv",
    "upsample_type": "conv", "dropout": 0.0, "act_fn": "silu", "attention_head_dim": 8,
    "norm_num_groups": 32, "attn_norm_num_groups": None, "norm_eps": 1e-5,
    "resnet_time_scale_shift": "default", "add_attention": True, "class_embed_type": None,
    "num_class_embeds": None,
}

# config.json fields that must hold one value: kzoo's network has no other
_FIXED = {"time_embedding_type": "positional", "act_fn": "silu", "mid_block_type": "UNetMidBlock2D",
          "resnet_time_scale_shift": "default", "downsample_type": "conv", "upsample_type": "conv",
          "class_embed_type": None, "num_class_embeds": None}

_LEGACY_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


# --- config.json and scheduler_config.json -------------------------------------------

def ddpm_options(config):
    """The `DDPM` architecture arguments of a diffusers `UNet2DModel` `config.json`.

    Args:
        config: dict. The parsed `config.json` (missing fields take UNet2DModel's defaults).

    Returns:
        dict of `kzoo.models.ddpm.DDPM` keyword arguments (image_size, channels, width,
        channel_mults, num_res_blocks, attention_resolutions, ...).

    Raises:
        KzooError: one line naming the first field kzoo's network cannot build.

    Example:
    >>> ddpm_options({"sample_size": 8, "in_channels": 1, "out_channels": 1,
    ...     "block_out_channels": [8, 16], "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
    ...     "up_block_types": ["AttnUpBlock2D", "UpBlock2D"], "norm_num_groups": 4})["attention_resolutions"]
    (4,)
    """
    cls = config.get("_class_name", "UNet2DModel")
    if cls != "UNet2DModel":
        raise KzooError(f"diffusers model class {cls} is not supported; kzoo converts UNet2DModel")
    c = {**UNET_DEFAULTS, **{k: v for k, v in config.items() if not k.startswith("_")}}
    for key, value in _FIXED.items():
        if c[key] != value:
            raise KzooError(f"diffusers config {key}={c[key]!r} is not supported; kzoo's DDPM network "
                            f"needs {key}={value!r}")
    if c["mid_block_scale_factor"] != 1:
        raise KzooError(f"diffusers config mid_block_scale_factor={c['mid_block_scale_factor']} is "
                        "not supported; kzoo's DDPM network needs 1")
    if c["in_channels"] != c["out_channels"]:
        raise KzooError(f"diffusers config in_channels={c['in_channels']} and out_channels="
                        f"{c['out_channels']} differ; a DDPM eps-network maps an image to its shape")
    size = c["sample_size"]
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise KzooError(f"diffusers config sample_size={list(size)} is not square; kzoo's DDPM "
                            "is square")
        size = size[0]
    if not isinstance(size, int) or size < 1:
        raise KzooError(f"diffusers config needs an integer sample_size, got {size!r}")
    channels = [int(ch) for ch in c["block_out_channels"]]
    down, up = list(c["down_block_types"]), list(c["up_block_types"])
    for kind, types, supported in (("down", down, DOWN_BLOCKS), ("up", up, UP_BLOCKS)):
        bad = next((b for b in types if b not in supported), None)
        if bad is not None:
            raise KzooError(f"diffusers {kind} block type {bad} is not supported; supported: "
                            f"{', '.join(supported)}")
        if len(types) != len(channels):
            raise KzooError(f"diffusers config has {len(types)} {kind}_block_types for "
                            f"{len(channels)} block_out_channels")
    width = channels[0]
    if any(ch % width for ch in channels):
        raise KzooError(f"diffusers config block_out_channels={channels} are not multiples of the "
                        f"first ({width}), as kzoo's width x channel_mults needs")
    if c["time_embedding_dim"] not in (None, 4 * width):
        raise KzooError(f"diffusers config time_embedding_dim={c['time_embedding_dim']} is not "
                        f"supported; kzoo's DDPM network uses 4 x {width}")
    if c["attn_norm_num_groups"] not in (None, c["norm_num_groups"]):
        raise KzooError(f"diffusers config attn_norm_num_groups={c['attn_norm_num_groups']} differs "
                        f"from norm_num_groups={c['norm_num_groups']}; kzoo uses one group count")
    down_attn = [i for i, b in enumerate(down) if b == "AttnDownBlock2D"]
    up_attn = [len(up) - 1 - i for i, b in enumerate(up) if b == "AttnUpBlock2D"]
    if sorted(down_attn) != sorted(up_attn):
        raise KzooError(f"diffusers config has attention in down blocks {down_attn} but in up blocks "
                        f"{sorted(up_attn)} (by resolution level); kzoo's DDPM attends at the "
                        "same resolutions on both paths")
    if size % 2 ** (len(channels) - 1):
        raise KzooError(f"diffusers config sample_size {size} is not divisible by "
                        f"2^{len(channels) - 1} for {len(channels)} blocks")
    return {"image_size": size, "channels": int(c["in_channels"]), "width": width,
            "channel_mults": tuple(ch // width for ch in channels),
            "num_res_blocks": int(c["layers_per_block"]),
            "attention_resolutions": tuple(size // 2 ** i for i in down_attn),
            "dropout": float(c["dropout"]), "norm_groups": int(c["norm_num_groups"]),
            "norm_eps": float(c["norm_eps"]),
            "attention_head_dim": (None if c["attention_head_dim"] is None
                                   else int(c["attention_head_dim"])),
            "mid_attention": bool(c["add_attention"]),
            "flip_sin_to_cos": bool(c["flip_sin_to_cos"]), "freq_shift": int(c["freq_shift"]),
            "downsample_padding": int(c["downsample_padding"]),
            "center_input_sample": bool(c["center_input_sample"])}


def schedule_options(scheduler_config):
    """The `DDPM` schedule and sampler arguments of a diffusers `scheduler_config.json`.

    Read by `kzoo.diffusion.scheduler_config_options` (every key of DDPMScheduler /
    DDIMScheduler; an unknown one, or a value kzoo does not run, is a one-line
    KzooError): the converted model samples as diffusers' `DDPMPipeline` /
    `DDIMPipeline` with their defaults (e.g. DDIM does not re-derive ε from the
    clipped x_0).

    Args:
        scheduler_config: dict. A `DDPMScheduler` (or `DDIMScheduler`) config; missing
            fields take diffusers' defaults.

    Returns:
        dict with num_timesteps, beta_start, beta_end, beta_schedule, variance,
        clip_sample and sampler_options (the other `SamplerOptions` fields).

    Example:
    >>> schedule_options({"variance_type": "fixed_large"})["variance"]
    'beta'
    """
    from kzoo.diffusion import scheduler_config_options

    schedule, options = scheduler_config_options(scheduler_config)
    variance = "beta" if options.variance_type == "fixed_large" else "beta_tilde"  # fixed_small(_log)
    rest = {k: v for k, v in options.config().items() if k not in ("variance_type", "clip_sample")}
    return {**schedule, "variance": variance, "clip_sample": options.clip_sample,
            "sampler_options": rest}


def scheduler_config(model):
    """A diffusers `DDPMScheduler` config of a kzoo `DDPM`'s schedule and sampler options
    (inverse of `schedule_options`); a KzooError where diffusers has no such option
    (kzoo's own "even" timestep spacing)."""
    options = model.sampler_options
    if options.timestep_spacing not in ("leading", "trailing", "linspace"):
        raise KzooError(f"timestep_spacing={options.timestep_spacing!r} has no diffusers "
                        "equivalent (kzoo's own sampler)")
    config = {"_class_name": "DDPMScheduler", "num_train_timesteps": model.num_timesteps,
              "beta_start": model.beta_start, "beta_end": model.beta_end,
              "beta_schedule": model.beta_schedule, "trained_betas": None}
    config.update({k: v for k, v in options.config().items() if k != "use_clipped_model_output"})
    return config


# --- parameter names ------------------------------------------------------------------

def _conv(kernel):  # PyTorch (out, in, kh, kw) -> Keras (kh, kw, in, out)
    return np.transpose(kernel, (2, 3, 1, 0))


def _linear(kernel):  # PyTorch (out, in) -> Keras (in, out)
    return np.transpose(kernel)


def _same(value):
    return value


def _torch_shape(shape, transform):
    if transform is _conv:
        return (shape[3], shape[2], shape[0], shape[1])
    if transform is _linear:
        return (shape[1], shape[0])
    return tuple(shape)


def _primitive_params(layer):
    """(suffix, variable, transform) of one Conv2D / Dense / GroupNormalization."""
    from keras import layers

    if isinstance(layer, layers.Conv2D):
        return [("weight", layer.kernel, _conv), ("bias", layer.bias, _same)]
    if isinstance(layer, layers.Dense):
        return [("weight", layer.kernel, _linear), ("bias", layer.bias, _same)]
    if isinstance(layer, layers.GroupNormalization):
        return [("weight", layer.gamma, _same), ("bias", layer.beta, _same)]
    raise TypeError(f"no diffusers parameters for layer {layer.name} ({type(layer).__name__})")


def _sublayers(layer):
    """(diffusers module suffix, Keras layer) of a kzoo diffusion block."""
    from kzoo.layers import SpatialSelfAttention, TimeResidualBlock

    if isinstance(layer, TimeResidualBlock):
        subs = [("norm1", layer.norm1), ("conv1", layer.conv1), ("time_emb_proj", layer.temb_proj),
                ("norm2", layer.norm2), ("conv2", layer.conv2), ("conv_shortcut", layer.skip)]
        return [(name, sub) for name, sub in subs if sub is not None]  # no temb / shortcut
    if isinstance(layer, SpatialSelfAttention):
        return [("group_norm", layer.norm), ("to_q", layer.q), ("to_k", layer.k),
                ("to_v", layer.v), ("to_out.0", layer.proj_out)]
    return [("", layer)]


def _module_name(layer_name, levels):
    """The diffusers module of a `ddpm_unet` layer name, or None (no parameters)."""
    fixed = {"conv_in": "conv_in", "time_dense0": "time_embedding.linear_1",
             "time_dense1": "time_embedding.linear_2", "mid_attn": "mid_block.attentions.0",
             "norm_out": "conv_norm_out", "conv_out": "conv_out"}
    if layer_name in fixed:
        return fixed[layer_name]
    m = re.fullmatch(r"mid_res(\d+)", layer_name)
    if m:
        return f"mid_block.resnets.{m[1]}"
    m = re.fullmatch(r"(down|up)(\d+)_(res|attn)(\d+)", layer_name)
    if m:
        block = int(m[2]) if m[1] == "down" else levels - 1 - int(m[2])  # up blocks run reversed
        kind = "resnets" if m[3] == "res" else "attentions"
        return f"{m[1]}_blocks.{block}.{kind}.{m[4]}"
    m = re.fullmatch(r"down(\d+)_downsample", layer_name)
    if m:
        return f"down_blocks.{m[1]}.downsamplers.0.conv"
    m = re.fullmatch(r"up(\d+)_upsample_conv", layer_name)
    if m:
        return f"up_blocks.{levels - 1 - int(m[1])}.upsamplers.0.conv"
    return None


def parameter_names(network):
    """Every diffusers `UNet2DModel` parameter a kzoo `ddpm_unet` network holds.

    Args:
        network: a `kzoo.models.ddpm.ddpm_unet` model (built).

    Returns:
        dict, in network order: diffusers name -> (PyTorch shape, Keras variable,
        transform from the PyTorch array to the Keras one).
    """
    levels = sum(1 for layer in network.layers if re.fullmatch(r"up\d+_res0", layer.name))
    names = {}
    for layer in network.layers:
        module = _module_name(layer.name, levels)
        if module is None:
            if layer.weights:
                raise TypeError(f"layer {layer.name} has weights but no diffusers name")
            continue
        for suffix, sub in _sublayers(layer):
            for param, variable, transform in _primitive_params(sub):
                name = ".".join(p for p in (module, suffix, param) if p)
                names[name] = (_torch_shape(tuple(variable.shape), transform), variable, transform)
    return names


def reference_shapes(network):
    """`{diffusers name: PyTorch shape}` of a kzoo `ddpm_unet` network (what
    `UNet2DModel(**config).state_dict()` holds for the same config)."""
    return {name: list(shape) for name, (shape, _, _) in parameter_names(network).items()}


def canonical_name(name):
    """A state-dict key in current diffusers naming (legacy attention names renamed)."""
    module, _, param = name.rpartition(".")
    head, _, leaf = module.rpartition(".")
    if ".attentions." in name and leaf in _LEGACY_ATTENTION:
        return f"{head}.{_LEGACY_ATTENTION[leaf]}.{param}"
    return name


# --- conversion -----------------------------------------------------------------------

def load_weights(network, state, expected=None):
    """Assign a diffusers state dict to a `ddpm_unet` network, all names and shapes checked.

    `expected`: the `{name: (PyTorch shape, variable, transform)}` table to fill (default:
    `parameter_names(network)`; `kzoo.hub.convert.autoencoder_kl` passes its own).

    Raises:
        KzooError: one line naming the first missing, unexpected or mis-shaped parameter.
    """
    state = {canonical_name(k): v for k, v in state.items()}
    expected = parameter_names(network) if expected is None else expected
    for name, (shape, _, _) in expected.items():
        if name not in state:
            raise KzooError(f"diffusers state dict has no {name} (shape {list(shape)}) that this "
                            f"config's network needs; {len(state)} keys given, {len(expected)} expected")
        got = tuple(np.shape(state[name]))
        if got != shape:
            raise KzooError(f"diffusers parameter {name} has shape {list(got)}, the config's network "
                            f"needs {list(shape)}")
    extra = next((k for k in state if k not in expected), None)
    if extra is not None:
        raise KzooError(f"diffusers state dict has {extra} (shape {list(np.shape(state[extra]))}), "
                        "which this config's network does not have")
    for name, (_, variable, transform) in expected.items():
        variable.assign(transform(np.asarray(state[name], np.float32)))


def convert_diffusers(state, config, scheduler_config=None):
    """A kzoo `DDPM` holding a diffusers `UNet2DModel` checkpoint.

    Args:
        state: dict of str -> NumPy array. The UNet's state dict (e.g.
            `safetensors.numpy.load_file("diffusion_pytorch_model.safetensors")`).
        config: dict. Its `config.json`.
        scheduler_config: dict or None. The pipeline's `scheduler_config.json`;
            None: DDPMScheduler's defaults (T 1000, linear β 1e-4..0.02, fixed_small, clip).

    Returns:
        `kzoo.models.ddpm.DDPM`; both the raw and the EMA network hold the weights.

    Raises:
        KzooError: an unsupported config field or block type, or a state dict whose
            names/shapes do not match the config (one line, the first mismatch).

    Example:
    >>> import numpy as np
    >>> config = {"sample_size": 8, "in_channels": 1, "out_channels": 1,
    ...     "block_out_channels": [8], "down_block_types": ["DownBlock2D"],
    ...     "up_block_types": ["UpBlock2D"], "norm_num_groups": 4, "layers_per_block": 1}
    >>> convert_diffusers({}, config)
    Traceback (most recent call last):
    ...
    kzoo.errors.KzooError: diffusers state dict has no time_embedding.linear_1.weight (shape [32, 8]) that this config's network needs; 0 keys given, 74 expected
    """
    from kzoo.models.ddpm import DDPM

    options = ddpm_options(config)
    options.update(schedule_options(scheduler_config or {}))  # diffusers' sampler options
    model = DDPM(**options)
    load_weights(model.network, state)
    model.ema_network.set_weights(model.network.get_weights())
    return model


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise KzooError(f"cannot read {path}: {e}") from None


def read_state_dict(path):
    """A `.safetensors` or PyTorch `.bin`/`.pth` state dict as NumPy arrays (no PyTorch)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise KzooError("reading .safetensors needs the safetensors package "
                            "(pip install safetensors)") from None
        try:
            return load_file(str(path))
        except Exception as e:  # safetensors raises its own error types
            raise KzooError(f"cannot read {path}: {e}") from None
    from kzoo.hub.convert.torchfile import load_state_dict

    return load_state_dict(path)


WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def load_diffusers_folder(path):
    """A kzoo `DDPM` from a local diffusers folder: a pipeline (`unet/`, `scheduler/`)
    or a flat model folder (`config.json`, weights, optional `scheduler_config.json`).

    Args:
        path: str or Path. The folder.

    Returns:
        `kzoo.models.ddpm.DDPM` (see `convert_diffusers`).
    """
    root = Path(path)
    unet = root / "unet" if (root / "unet" / "config.json").is_file() else root
    if not (unet / "config.json").is_file():
        raise KzooError(f"{root} is not a diffusers model folder (no config.json or unet/config.json)")
    weights = next((unet / f for f in WEIGHT_FILES if (unet / f).is_file()), None)
    if weights is None:
        raise KzooError(f"{unet} has no weights ({' or '.join(WEIGHT_FILES)})")
    schedulers = [root / "scheduler" / "scheduler_config.json", root / "scheduler_config.json",
                  unet / "scheduler_config.json"]
    scheduler = next((p for p in schedulers if p.is_file()), None)
    return convert_diffusers(read_state_dict(weights), _read_json(unet / "config.json"),
                             _read_json(scheduler) if scheduler else None)
