"""diffusers `AutoencoderKL` checkpoints (Stable Diffusion's VAE) as kzoo `AutoencoderKL` models.

A diffusers AutoencoderKL folder holds `config.json` (`_class_name` "AutoencoderKL")
and `diffusion_pytorch_model.safetensors` (or `.bin`); stabilityai/sd-vae-ft-mse and
sd-vae-ft-ema are such folders (their model cards load them with
`AutoencoderKL.from_pretrained("stabilityai/sd-vae-ft-mse")`). This module maps them
onto the architecture-exact `kzoo.models.vae.AutoencoderKL` (`kl_encoder` /
`kl_decoder`), reusing the diffusers blocks of the DDPM converter
(`kzoo.hub.convert.diffusers`: the ResnetBlock2D / attention / GroupNorm / conv
parameter layouts, the names of diffusers < 0.14, the checked assignment):

- `autoencoder_options(config)`: the `AutoencoderKL` constructor arguments of a
  `config.json`, or a `KzooError` naming the first field kzoo's network does not build;
- `parameter_names(model)`: every diffusers parameter name the model holds, its
  PyTorch shape and where it goes (drives the conversion and the full-size tests);
- `convert_autoencoder_kl(state, config)` and `autoencoder_kl_models(folder)`.

The architecture, read in diffusers 0.42.1: `models/autoencoders/autoencoder_kl.py`
(`AutoencoderKL`: `Encoder(double_z=True)`, `quant_conv` = Conv2d(2L, 2L, 1),
`post_quant_conv` = Conv2d(L, L, 1), `Decoder`), `models/autoencoders/vae.py`
(`Encoder`/`Decoder`: resnet_eps 1e-6, `downsample_padding=0`, attention_head_dim =
the width, `layers_per_block + 1` resnets per up block; `DiagonalGaussianDistribution`:
chunk into mean/logvar, logvar clamped to [-30, 20]), `models/unets/unet_2d_blocks.py`
(`DownEncoderBlock2D`, `UpDecoderBlock2D`, `UNetMidBlock2D`), `models/downsampling.py`
(`Downsample2D`: padding 0 pads (0, 1, 0, 1) before the stride-2 conv).

References:
    Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR 2022.
"""

from __future__ import annotations

import re
from pathlib import Path

from kzoo.errors import KzooError

CLASS_NAME = "AutoencoderKL"

# Reference equality of the converted network, shown in docs/hub.md's upstream table
# (`kzoo.hub.catalog.upstream_table`): max |kzoo - diffusers| over the posterior mean and
# log-variance, the decoded and the reconstructed images, relative to the reference output's
# range, on the committed fixtures (scripts/reference_fixtures_diffusers.py). PROVEN_ERROR is
# the bound PROVEN_BY asserts; MEASURED_ERROR the largest error it measured
# (kl_three_blocks_no_quant; tensorflow 2.21 on CPU, 2026-12), so the table never claims more
# than the test proves.
PROVEN_ERROR = 1e-5
MEASURED_ERROR = 7.3e-7
PROVEN_BY = "tests/hub/convert/test_autoencoder_kl.py::test_encoder_and_decoder_reproduce_diffusers"

# AutoencoderKL.__init__'s defaults (diffusers 0.42.1 autoencoder_kl.py): what a config.json
# that omits a field means (sd-vae-ft-* configs were written by early diffusers versions).
DEFAULTS = {
    "in_channels": 3, "out_channels": 3, "down_block_types": ("DownEncoderBlock2D",),
    "up_block_types": ("UpDecoderBlock2D",), "block_out_channels": (64,), "layers_per_block": 1,
    "act_fn": "silu", "latent_channels": 4, "norm_num_groups": 32, "sample_size": 32,
    "scaling_factor": 0.18215, "shift_factor": None, "latents_mean": None, "latents_std": None,
    "force_upcast": True, "use_quant_conv": True, "use_post_quant_conv": True,
    "mid_block_add_attention": True,
}
_FIXED = {"act_fn": "silu", "shift_factor": None, "latents_mean": None, "latents_std": None}

CODE = "https://github.com/huggingface/diffusers"
PAPER = ("Rombach, Blattmann, Lorenz, Esser & Ommer, \"High-Resolution Image Synthesis with "
         "Latent Diffusion Models\", CVPR 2022")


def is_autoencoder_kl(config) -> bool:
    return isinstance(config, dict) and config.get("_class_name") == CLASS_NAME


def autoencoder_options(config):
    """The `kzoo.models.vae.AutoencoderKL` arguments of a diffusers AutoencoderKL `config.json`.

    Raises:
        KzooError: one line naming the first field kzoo's network cannot build.

    Example:
    >>> autoencoder_options({"_class_name": "AutoencoderKL", "sample_size": 16,
    ...     "block_out_channels": [8, 16], "down_block_types": ["DownEncoderBlock2D"] * 2,
    ...     "up_block_types": ["UpDecoderBlock2D"] * 2, "norm_num_groups": 4})["block_out_channels"]
    (8, 16)
    """
    cls = config.get("_class_name", CLASS_NAME)
    if cls != CLASS_NAME:
        raise KzooError(f"diffusers model class {cls} is not an {CLASS_NAME}")
    unknown = next((k for k in config if not k.startswith("_") and k not in DEFAULTS), None)
    if unknown is not None:
        raise KzooError(f"diffusers {CLASS_NAME} config field {unknown!r} is not supported "
                        f"(known: {', '.join(sorted(DEFAULTS))})")
    c = {**DEFAULTS, **{k: v for k, v in config.items() if not k.startswith("_")}}
    for key, value in _FIXED.items():
        if c[key] != value:
            raise KzooError(f"diffusers {CLASS_NAME} config {key}={c[key]!r} is not supported; "
                            f"kzoo's network needs {key}={value!r}")
    channels = [int(ch) for ch in c["block_out_channels"]]
    for kind, types, block in (("down", c["down_block_types"], "DownEncoderBlock2D"),
                               ("up", c["up_block_types"], "UpDecoderBlock2D")):
        bad = next((b for b in types if b != block), None)
        if bad is not None:
            raise KzooError(f"diffusers {kind} block type {bad} is not supported; kzoo's "
                            f"{CLASS_NAME} builds {block}")
        if len(types) != len(channels):
            raise KzooError(f"diffusers config has {len(types)} {kind}_block_types for "
                            f"{len(channels)} block_out_channels")
    if c["in_channels"] != c["out_channels"]:
        raise KzooError(f"diffusers config in_channels={c['in_channels']} and out_channels="
                        f"{c['out_channels']} differ; kzoo's autoencoder reconstructs its input")
    groups = int(c["norm_num_groups"])
    bad = next((ch for ch in channels if ch % groups), None)
    if bad is not None:
        raise KzooError(f"diffusers config norm_num_groups={groups} does not divide the width {bad}")
    size = c["sample_size"]
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise KzooError(f"diffusers config sample_size={list(size)} is not square")
        size = size[0]
    factor = 2 ** (len(channels) - 1)
    if not isinstance(size, int) or size < 1 or size % factor:
        raise KzooError(f"diffusers config sample_size {size!r} is not a positive multiple of "
                        f"{factor} for {len(channels)} blocks")
    return {"image_size": size, "channels": int(c["in_channels"]),
            "latent_channels": int(c["latent_channels"]), "block_out_channels": tuple(channels),
            "layers_per_block": int(c["layers_per_block"]), "norm_groups": groups,
            "mid_attention": bool(c["mid_block_add_attention"]),
            "quant_conv": bool(c["use_quant_conv"]),
            "post_quant_conv": bool(c["use_post_quant_conv"]),
            "scaling_factor": float(c["scaling_factor"])}


# --- parameter names ------------------------------------------------------------------

def _module_name(part, layer_name):
    """The diffusers module of a `kl_encoder` / `kl_decoder` layer, or None (no parameters)."""
    if layer_name in ("quant_conv", "post_quant_conv"):
        return layer_name
    fixed = {"conv_in": "conv_in", "mid_res0": "mid_block.resnets.0",
             "mid_attn": "mid_block.attentions.0", "mid_res1": "mid_block.resnets.1",
             "norm_out": "conv_norm_out", "conv_out": "conv_out"}
    if layer_name in fixed:
        return f"{part}.{fixed[layer_name]}"
    m = re.fullmatch(r"(down|up)(\d+)_res(\d+)", layer_name)
    if m:
        return f"{part}.{m[1]}_blocks.{m[2]}.resnets.{m[3]}"
    m = re.fullmatch(r"down(\d+)_downsample", layer_name)
    if m:
        return f"{part}.down_blocks.{m[1]}.downsamplers.0.conv"
    m = re.fullmatch(r"up(\d+)_upsample_conv", layer_name)
    if m:
        return f"{part}.up_blocks.{m[1]}.upsamplers.0.conv"
    return None


def parameter_names(model):
    """Every diffusers `AutoencoderKL` parameter a kzoo `AutoencoderKL` holds.

    Returns:
        dict, in network order: diffusers name -> (PyTorch shape, Keras variable,
        transform from the PyTorch array to the Keras one).
    """
    from kzoo.hub.convert.diffusers import _primitive_params, _sublayers, _torch_shape

    names = {}
    for part, network in (("encoder", model.encoder), ("decoder", model.decoder)):
        for layer in network.layers:
            module = _module_name(part, layer.name)
            if module is None:
                if layer.weights:
                    raise TypeError(f"layer {layer.name} has weights but no diffusers name")
                continue
            for suffix, sub in _sublayers(layer):
                for param, variable, transform in _primitive_params(sub):
                    name = ".".join(p for p in (module, suffix, param) if p)
                    names[name] = (_torch_shape(tuple(variable.shape), transform), variable,
                                   transform)
    return names


def reference_shapes(model):
    """`{diffusers name: PyTorch shape}` (what `AutoencoderKL(**config).state_dict()` holds)."""
    return {name: list(shape) for name, (shape, _, _) in parameter_names(model).items()}


# --- conversion -----------------------------------------------------------------------

def convert_autoencoder_kl(state, config):
    """A kzoo `AutoencoderKL` holding a diffusers `AutoencoderKL` checkpoint.

    Args:
        state: dict of str -> NumPy array. The state dict (`.safetensors` / `.bin`).
        config: dict. Its `config.json`.

    Raises:
        KzooError: an unsupported config field, or a state dict whose names/shapes do not
            match the config (one line, the first mismatch).

    Example:
    >>> config = {"_class_name": "AutoencoderKL", "sample_size": 8, "block_out_channels": [8],
    ...     "norm_num_groups": 4}
    >>> convert_autoencoder_kl({}, config)
    Traceback (most recent call last):
    ...
    kzoo.errors.KzooError: diffusers state dict has no encoder.conv_in.weight (shape [8, 3, 3, 3]) that this config's network needs; 0 keys given, 92 expected
    """
    from kzoo.hub.convert.diffusers import load_weights
    from kzoo.models.vae import AutoencoderKL

    model = AutoencoderKL(**autoencoder_options(config))
    load_weights(model, state, expected=parameter_names(model))
    return model


def autoencoder_kl_models(state, config):
    """`(full AutoencoderKL, its reconstruct network, info, image size)` (see
    `kzoo.hub.convert.diffusers_folder.CLASSES`)."""
    full = convert_autoencoder_kl(state, config)
    info = {"format": "diffusers", "arch": CLASS_NAME, "code": CODE, "paper": PAPER,
            "license": "the source's model card (stabilityai/sd-vae-ft-mse and "
                       "sd-vae-ft-ema: MIT)",
            "note": f"scaling_factor {full.scaling_factor:g} (latent diffusion works on "
                    "scaling_factor x z); endpoints encoder, decoder, reconstruct"}
    return full, full.inference_parts()["reconstruct"], info, full.image_size


def load_autoencoder_kl_folder(path):
    """A kzoo `AutoencoderKL` from a local diffusers folder (`config.json` + weights, or
    a pipeline's `vae/`)."""
    from kzoo.hub.convert.diffusers import WEIGHT_FILES, _read_json, read_state_dict

    root = Path(path)
    folder = root / "vae" if (root / "vae" / "config.json").is_file() else root
    weights = next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)
    if weights is None or not (folder / "config.json").is_file():
        raise KzooError(f"{folder} is not a diffusers AutoencoderKL folder (config.json with "
                        f"{' or '.join(WEIGHT_FILES)})")
    return convert_autoencoder_kl(read_state_dict(weights), _read_json(folder / "config.json"))
