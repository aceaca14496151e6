"""rosinality/stylegan2-pytorch generators (`g_ema`) -> kzoo's exact StyleGAN2 generator.

    kzoo hub convert 550000.pt --out presets/ffhq-256       # train.py checkpoint
    kzoo hub convert stylegan2-ffhq-config-f.pt --out ...   # convert_weight.py output

What the files hold (rosinality/stylegan2-pytorch, commit bef283a, 2021-11-24):

- `train.py:318-329` saves `{"g", "d", "g_ema", "g_optim", "d_optim", "args",
  "ada_aug_p"}`, `args` an `argparse.Namespace`; `convert_weight.py:254,269` saves
  `{"g_ema", "latent_avg"}` (+ `"g"`, `"d"` with `--gen` / `--disc`) from NVIDIA's
  official pickles, `latent_avg` their tracked mean w (`dlatent_avg`). `generate.py:76`
  loads `g_ema`, the EMA generator: that is what is converted
  (`kzoo.hub.convert.torchfile.load_state_dict` reads only its storages; the optimiser
  states and the other networks are never read).
- `g_ema` is `model.Generator(size, style_dim, n_mlp, channel_multiplier)`'s state dict.
  Everything is read from its names and shapes: `size` = 4 * 2 ** (number of
  `to_rgbs`), `n_mlp` = number of `style.{i}.weight`, `style_dim` from
  `style.1.weight`, and the channel table from `input.input` and each up-sampling
  conv. The official configurations (`size` 256/512/1024, `channel_multiplier` 1 or 2:
  `Generator.channels`, 512 up to 32 px then `2 ** 14 * multiplier / res`) are named as
  such; any other table is kept as read (`channel_base` = channels x resolution at the
  output size). `lr_mlp` (the mapping network's learning-rate multiplier) is not stored:
  it is `model.py`'s default 0.01, which neither `train.py` nor `generate.py` changes.
- Buffers: the blur kernels (`convs.{2k}.conv.blur.kernel`, `to_rgbs.{k}.upsample.kernel`)
  must be the [1, 3, 3, 1] FIR kernel x 4 kzoo's layers use (anything else is refused);
  `noises.noise_{l}` are the fixed noise maps `randomize_noise=False` uses.

The mapping of names (the kzoo side is `kzoo.models.stylegan2`'s table):

| rosinality key                         | kzoo weight                          | layout           |
| -------------------------------------- | ------------------------------------ | ---------------- |
| `style.{i}.weight`, `.bias`            | `mapping` `style_{i}/kernel`, `bias` | (out, in) -> .T  |
| `input.input` (1, C, 4, 4)             | `synthesis` `input/constant`         | NCHW -> NHWC     |
| `conv1.` / `convs.{j}.` `conv.weight`  | `conv1` / `convs_{j}` `conv/kernel`  | [0] OIHW -> HWIO |
| `...conv.modulation.weight`, `.bias`   | `.../conv/modulation/kernel`, `bias` | (out, in) -> .T  |
| `...noise.weight`, `...activate.bias`  | `.../noise/weight`, `activate/bias`  | as is            |
| `to_rgb1.` / `to_rgbs.{k}.` `bias`     | `to_rgb1` / `to_rgbs_{k}` `bias`     | (1, 3, 1, 1) -> (3,) |
| `to_rgb*.conv.*`                       | `to_rgb*/conv/...`                   | as a conv above  |

Truncation: the preset's `w_avg` is the file's `latent_avg` when it has one, else the
mean of the mapping of 4096 z drawn with seed 0 (rosinality's `generate.py` computes
`g_ema.mean_latent(4096)` from fresh random z each run: `--truncation_mean` 4096).

Licences: the code is MIT (rosinality/stylegan2-pytorch `LICENSE`); its CUDA kernels are
under NVIDIA's Source Code License-NC (`LICENSE-NVIDIA`, not used here), and so are
NVIDIA's official networks (NVlabs/stylegan2 `README.md`, License) that
`convert_weight.py` converts. Weights under non-commercial terms are not in kzoo's
catalog: convert your own file; its licence is the one it came with.
"""

from __future__ import annotations

import math
import re

import numpy as np

from kzoo.errors import KzooError

ARCH = "stylegan2"
UPSTREAM = "https://github.com/rosinality/stylegan2-pytorch"
PAPER = ("Karras, Laine, Aittala, Hellsten, Lehtinen & Aila, \"Analyzing and Improving the "
         "Image Quality of StyleGAN\", CVPR 2020")
# (the code, rosinality/stylegan2-pytorch LICENSE, is MIT; NVlabs/stylegan2 README.md, License)
LICENSE = ("that of the converted file (NVIDIA's official StyleGAN2 networks: Nvidia Source Code "
           "License-NC, non-commercial)")
LR_MLP = 0.01  # model.py Generator(lr_mlp=0.01); train.py and generate.py keep it
TRUNCATION_MEAN = 4096  # generate.py --truncation_mean default
# The defaults of a missing tensor: train.py's generator (latent 512, n_mlp 8, size 256,
# channel_multiplier 2: train.py:441-442 and its --size / --channel_multiplier defaults).
DEFAULTS = {"image_size": 256, "latent_dim": 512, "n_mlp": 8, "channel_multiplier": 2,
            "channel_base": 16384, "channel_max": 512}
# keys that make a state dict "meant as" a rosinality generator (checked, then converted)
MARKERS = ("input.input", "to_rgb1.conv.weight", "conv1.conv.modulation.weight")


def _shape(state, name, axis, default):
    value = state.get(name)
    return int(value.shape[axis]) if isinstance(value, np.ndarray) and value.ndim > axis else default


def _indices(state, pattern):
    return sorted({int(m[1]) for k in state if (m := re.fullmatch(pattern, k))})


def channel_table(size, *, channel_multiplier=2, channel_base=16384, channel_max=512):
    """Channels at each resolution 4 .. size: min(channel_max, channel_base * multiplier // res)
    (`kzoo.models.stylegan2.channel_table`; the defaults are rosinality's `Generator.channels`)."""
    from kzoo.models.stylegan2 import channel_table as table

    return table(size, channel_multiplier=channel_multiplier, channel_base=channel_base,
                 channel_max=channel_max)


def read_config(state) -> dict:
    """The generator arguments of the rosinality `g_ema` state dict `state` (see the module
    docstring); a missing tensor takes `DEFAULTS`."""
    c = dict(DEFAULTS)
    rgbs = _indices(state, r"to_rgbs\.(\d+)\.conv\.weight")
    if rgbs:
        c["image_size"] = 4 * 2 ** len(rgbs)
    c["n_mlp"] = len(_indices(state, r"style\.(\d+)\.weight")) or DEFAULTS["n_mlp"]
    c["latent_dim"] = _shape(state, "style.1.weight", 1,
                             _shape(state, "conv1.conv.modulation.weight", 1, 512))
    size = c["image_size"]
    read = {4: _shape(state, "input.input", 1, None)}
    for j in range(int(math.log2(size)) - 2):
        read[2 ** (j + 3)] = _shape(state, f"convs.{2 * j}.conv.weight", 1, None)
    if None in read.values():
        return c  # incomplete: the standard table, the mismatches say what is missing
    for m in (2, 1):
        if channel_table(size, channel_multiplier=m) == read:
            c["channel_multiplier"] = m
            return c
    c.update(channel_multiplier=1, channel_base=read[size] * size, channel_max=read[4])
    return c


def describe(config) -> str:
    """`256 px, channel multiplier 2, style_dim 512, n_mlp 8` (or the channel table)."""
    c = dict(DEFAULTS, **config)
    standard = (c["channel_base"], c["channel_max"]) == (16384, 512)
    table = (f"channel multiplier {c['channel_multiplier']}" if standard else
             "channels " + "/".join(str(v) for v in channel_table(
                 c["image_size"], channel_multiplier=c["channel_multiplier"],
                 channel_base=c["channel_base"], channel_max=c["channel_max"]).values()))
    return f"{c['image_size']} px, {table}, style_dim {c['latent_dim']}, n_mlp {c['n_mlp']}"


# --- the reference parameter layout ----------------------------------------------

def _modconv(prefix, layer, out_ch, in_ch, k, style_dim, blur=False):
    p = [(f"{prefix}.conv.weight", "synthesis", f"{layer}/conv/kernel", (1, out_ch, in_ch, k, k),
          "modconv")]
    if blur:
        p.append((f"{prefix}.conv.blur.kernel", None, None, (4, 4), "blur"))
    return p + [
        (f"{prefix}.conv.modulation.weight", "synthesis", f"{layer}/conv/modulation/kernel",
         (in_ch, style_dim), "linear"),
        (f"{prefix}.conv.modulation.bias", "synthesis", f"{layer}/conv/modulation/bias",
         (in_ch,), "copy")]


def _styled(prefix, layer, out_ch, in_ch, style_dim, upsample=False):
    return _modconv(prefix, layer, out_ch, in_ch, 3, style_dim, blur=upsample) + [
        (f"{prefix}.noise.weight", "synthesis", f"{layer}/noise/weight", (1,), "copy"),
        (f"{prefix}.activate.bias", "synthesis", f"{layer}/activate/bias", (out_ch,), "copy")]


def _to_rgb(prefix, layer, in_ch, style_dim, upsample=True):
    p = [(f"{prefix}.bias", "synthesis", f"{layer}/bias", (1, 3, 1, 1), "rgb_bias")]
    if upsample:
        p.append((f"{prefix}.upsample.kernel", None, None, (4, 4), "blur"))
    return p + _modconv(prefix, layer, 3, in_ch, 1, style_dim)


def reference_params(**config):
    """`[(torch name, kzoo network or None, weight path, torch shape, layout)]` of rosinality's
    `Generator` at `config` (`read_config`'s keys) in its `state_dict()` order: parameters,
    then the buffers (network None: the blur kernels, layout "blur", and the fixed noise
    maps, layout "noise"). Layouts: "copy", "linear" (transposed), "modconv" (`[0]`,
    OIHW -> HWIO), "const" (NCHW -> NHWC), "rgb_bias" ((1, 3, 1, 1) -> (3,))."""
    c = dict(DEFAULTS, **config)
    size, d = c["image_size"], c["latent_dim"]
    ch = channel_table(size, channel_multiplier=c["channel_multiplier"],
                       channel_base=c["channel_base"], channel_max=c["channel_max"])
    params = []
    for i in range(1, c["n_mlp"] + 1):
        params += [(f"style.{i}.weight", "mapping", f"style_{i}/kernel", (d, d), "linear"),
                   (f"style.{i}.bias", "mapping", f"style_{i}/bias", (d,), "copy")]
    params.append(("input.input", "synthesis", "input/constant", (1, ch[4], 4, 4), "const"))
    params += _styled("conv1", "conv1", ch[4], ch[4], d)
    params += _to_rgb("to_rgb1", "to_rgb1", ch[4], d, upsample=False)
    log2 = int(math.log2(size))
    cin = ch[4]
    for j, i in enumerate(range(3, log2 + 1)):
        cout = ch[2 ** i]
        params += _styled(f"convs.{2 * j}", f"convs_{2 * j}", cout, cin, d, upsample=True)
        params += _styled(f"convs.{2 * j + 1}", f"convs_{2 * j + 1}", cout, cout, d)
        cin = cout
    for j, i in enumerate(range(3, log2 + 1)):
        params += _to_rgb(f"to_rgbs.{j}", f"to_rgbs_{j}", ch[2 ** i], d)
    for layer in range((log2 - 2) * 2 + 1):
        res = 2 ** ((layer + 5) // 2)
        params.append((f"noises.noise_{layer}", None, None, (1, 1, res, res), "noise"))
    return params


def _blur_kernel():
    """rosinality's `make_kernel([1, 3, 3, 1]) * 4` (its `Upsample` and up-sampling `Blur`)."""
    from kzoo.layers.stylegan import fir_kernel

    return fir_kernel(gain=4.0)


def mismatches(state) -> list[str]:
    """Every difference between `state` and rosinality's generator, in reference order."""
    from kzoo.hub.convert.torchfile import shape_mismatches

    expected = reference_params(**read_config(state))
    problems = shape_mismatches({name: shape for name, _, _, shape, _ in expected}, state,
                                "a rosinality generator")
    return problems + [f"{name} is not the [1, 3, 3, 1] blur kernel kzoo's layers use"
                       for name, _, _, shape, layout in expected
                       if layout == "blur" and name in state and tuple(state[name].shape) == shape
                       and not np.allclose(state[name], _blur_kernel(), atol=1e-6)]


def claims(state, arch=None) -> bool:
    """Whether this module converts `state`: `--arch stylegan2`, or (no `arch`) a state dict
    with a rosinality generator's own names (then any mismatch is reported by `check`)."""
    if arch is not None:
        return str(arch).lower() == ARCH
    return any(k in state for k in MARKERS)


def check(state, arch=ARCH):
    """Raise one `KzooError` line naming the first mismatch and what the state dict is."""
    problems = mismatches(state)
    if not problems:
        return
    from kzoo.hub.convert import junyanz, sr
    from kzoo.hub.convert.torchfile import mismatch_error

    close, n = junyanz.closest_arch(state)
    other, m = sr.detect(state)
    if m < n:
        close, n = other, m
    if n and len(problems) < n:
        close, n = ARCH, len(problems)
    raise mismatch_error(arch, problems, close, n)


# --- conversion --------------------------------------------------------------------

def keras_value(value, layout):
    """A PyTorch tensor in the layout of the Keras weight it becomes."""
    value = np.asarray(value, dtype=np.float32)
    if layout == "linear":
        return value.T
    if layout == "modconv":
        return value[0].transpose(2, 3, 1, 0)
    if layout == "const":
        return value.transpose(0, 2, 3, 1)
    if layout == "rgb_bias":
        return value.reshape(-1)
    return value


def _variable(network, path):
    """The variable `layer/sub/.../weight` of `network`, found through the layers' attributes."""
    layer_name, *attrs = path.split("/")
    obj = network.get_layer(layer_name)
    for attr in attrs:
        obj = getattr(obj, attr)
    return obj


def noise_maps(state, config):
    """rosinality's fixed noise buffers as NHWC maps (1, H, W, 1), in layer order."""
    return [np.asarray(state[name], np.float32).transpose(0, 2, 3, 1)
            for name, _, _, _, layout in reference_params(**config) if layout == "noise"]


def build(**config):
    """The untrained kzoo `(mapping, synthesis)` networks of rosinality's generator at `config`."""
    from kzoo.models.stylegan2 import mapping_network, synthesis_network

    c = dict(DEFAULTS, **config)
    mapping = mapping_network(latent_dim=c["latent_dim"], n_mlp=c["n_mlp"], lr_mul=LR_MLP)
    synthesis = synthesis_network(image_size=c["image_size"], w_dim=c["latent_dim"],
                                  channel_multiplier=c["channel_multiplier"],
                                  channel_base=c["channel_base"], channel_max=c["channel_max"])
    return mapping, synthesis


def assign(networks: dict, state, config):
    """Load `state` into the kzoo networks {"mapping": ..., "synthesis": ...}."""
    for name, network, path, _, layout in reference_params(**config):
        if network is not None:
            _variable(networks[network], path).assign(keras_value(state[name], layout))


def convert_generator(state: dict, arch=ARCH):
    """A rosinality `g_ema` state dict as kzoo's exact `(mapping, synthesis, config)`.

    Raises:
        KzooError: one line naming the first mismatch and what the state dict is.
    """
    check(state, arch)
    config = read_config(state)
    mapping, synthesis = build(**config)
    assign({"mapping": mapping, "synthesis": synthesis}, state, config)
    return mapping, synthesis, config


def mean_w(mapping, latent_avg=None, n=TRUNCATION_MEAN, seed=0):
    """The w to truncate towards: the file's `latent_avg`, else the mean of `n` mapped z."""
    if latent_avg is not None:
        return np.asarray(latent_avg, np.float32).reshape(-1)
    z = np.random.default_rng(seed).standard_normal((n, mapping.inputs[0].shape[-1]))
    return np.asarray(mapping.predict(z.astype(np.float32), batch_size=512, verbose=0)).mean(0)


def read_latent_avg(path):
    """The `latent_avg` beside `g_ema` in a convert_weight.py file (None if absent); no
    other storage of the file is read."""
    from kzoo.hub.convert.torchfile import load_torch

    value = load_torch(path, pick=lambda ckpt: ckpt.get("latent_avg") if isinstance(ckpt, dict)
                       else None)
    return value if isinstance(value, np.ndarray) else None


def stylegan2_models(state, arch=None, latent_avg=None):
    """`(full StyleGAN2, inference network, info, image size)` of a rosinality `g_ema` state dict.

    The full model's EMA networks (`mapping`, `synthesis`: what its endpoints run) and its
    trained copies (`g_mapping`, `g_synthesis`, to fine-tune from) hold `g_ema`; the fixed
    noise maps (`synthesis_noise`) hold `noises.noise_*`; `w_avg` is `latent_avg` (the
    file's, `read_latent_avg`) or the mean of 4096 mapped z. The discriminator is
    untrained (`g_ema` is a generator only).
    """
    check(state, arch or ARCH)
    from kzoo.models.stylegan2 import StyleGAN2, copy_weights

    config = read_config(state)
    full = StyleGAN2(image_size=config["image_size"], channels=3, latent_dim=config["latent_dim"],
                     n_mlp=config["n_mlp"], lr_mlp=LR_MLP,
                     channel_multiplier=config["channel_multiplier"],
                     channel_base=config["channel_base"], channel_max=config["channel_max"])
    assign({"mapping": full.mapping, "synthesis": full.synthesis}, state, config)
    copy_weights(full.mapping, full.g_mapping)
    copy_weights(full.synthesis, full.g_synthesis)
    for variable, value in zip(full.synthesis_noise.maps, noise_maps(state, config)):
        variable.assign(value)
    full.w_avg.assign(mean_w(full.mapping, latent_avg))
    from kzoo.card import inference_parts

    inference = inference_parts(full)["generator"]
    info = {"format": "rosinality", "arch": ARCH, "code": UPSTREAM, "paper": PAPER,
            "license": LICENSE,
            "note": (f"g_ema, {describe(config)}; w_avg "
                     + ("from the file's latent_avg" if latent_avg is not None else
                        f"the mean of {TRUNCATION_MEAN} mapped z (seed 0)")
                     + "; the discriminator is untrained (g_ema is the generator only)")}
    return full, inference, info, config["image_size"]


# --- the format protocol of kzoo.hub.convert (`accepts`, `models` of a source) ----------

def accepts(source) -> bool:
    """A state dict file that `--arch stylegan2` names, or with a rosinality generator's names."""
    return source.path.is_file() and claims(source.state, source.arch)


def models(source):
    """`stylegan2_models` of `source` (its file's `latent_avg` too); `--reverse` is refused."""
    if source.reverse is not None:
        raise KzooError("--reverse is for CycleGAN generators: this is a StyleGAN2 generator")
    path = source.path
    latent_avg = read_latent_avg(path) if path.suffix != ".safetensors" else None
    return stylegan2_models(source.state, source.arch, latent_avg)
