"""junyanz/pytorch-CycleGAN-and-pix2pix generators (`*_net_G.pth`) -> kzoo's exact networks.

Architectures, by the names of the authors' `--netG` / `--norm` options:

    unet_256, unet_128           UnetGenerator, 8 / 7 levels (pix2pix; batch norm)
    resnet_9blocks, resnet_6blocks   ResnetGenerator (CycleGAN; instance norm, no affine)

`NAME_batch` / `NAME_instance` choose the other normalization, and any `unet_<2**L>`
or `resnet_<N>blocks` is accepted for smaller configurations. Width (`--ngf`) and
the input/output channels are read from the state dict. The state-dict names are
walked structurally, in the reference module tree's order: the U-Net's nested
`UnetSkipConnectionBlock`s (`model.model.1.model.1...`) and the ResNet's flat
`nn.Sequential` (`model.<index>` and `model.<index>.conv_block.<index>`).

Conv kernels are transposed OIHW -> HWIO; transposed-conv kernels (in, out, kh, kw)
-> (kh, kw, out, in), the layout of `keras.layers.Conv2DTranspose` (both frameworks
compute the same gradient-of-correlation, so no spatial flip). Padding: PyTorch's
4x4 stride-2 `padding=1` equals Keras' "same" (one pixel on each side), the
ResNet's 3x3 stride-2 convs and `output_padding=1` transposed convs do not, so the
exact builders pad and crop explicitly (see `kzoo.models.cyclegan.resnet_generator`).

What each kind converts into is one row of `KINDS`: its reference parameter layout, the
exact kzoo generator, and the full kzoo model of a preset (`Pix2Pix` beside an untrained
PatchGAN; `CycleGAN`, whose `generator_ba` takes the other direction's file, `--reverse`).
As a format of `kzoo hub convert` (`accepts`, `models`: see `kzoo.hub.convert`) it takes
every state dict file the formats before it did not.

Example::

    from kzoo.hub.convert.torchfile import load_state_dict
    generator = convert_junyanz(load_state_dict("facades_label2photo.pth"), "unet_256")
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable

import numpy as np

from kzoo.errors import KzooError

UPSTREAM = "https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix"
LICENSE = "BSD-2-Clause (the authors' code and released models)"
PAPERS = {
    "unet": "Isola, Zhu, Zhou & Efros, \"Image-to-Image Translation with Conditional "
            "Adversarial Networks\", CVPR 2017",
    "resnet": "Zhu, Park, Isola & Efros, \"Unpaired Image-to-Image Translation using "
              "Cycle-Consistent Adversarial Networks\", ICCV 2017",
}
ARCHS = ("unet_256", "unet_128", "resnet_9blocks", "resnet_6blocks")

# Reference equality of the converted network, shown in docs/hub.md's upstream table
# (`kzoo.hub.catalog.upstream_table`): max |kzoo - PyTorch| over the generators' outputs,
# relative to the reference output's range, on the committed fixtures
# (scripts/make_reference_fixtures.py). PROVEN_ERROR is the bound PROVEN_BY asserts;
# MEASURED_ERROR the largest error it measured (resnet_instance; tensorflow 2.21 on CPU,
# 2026-12), so the table never claims more than the test proves.
PROVEN_ERROR = 1e-5
MEASURED_ERROR = 1.4e-6
PROVEN_BY = "tests/hub/convert/test_junyanz.py::test_converted_generator_reproduces_the_reference_outputs"

DEFAULT_NORM = {"unet": "batch", "resnet": "instance"}
# per-norm statistics an older PyTorch saved for InstanceNorm2d (dropped, as junyanz's
# `__patch_instance_norm_state_dict` does)
_INSTANCE_STATS = ("running_mean", "running_var", "num_batches_tracked")


def parse_arch(arch: str):
    """`(kind, depth, norm)` of an architecture name: ("unet", levels, norm) or ("resnet", blocks, norm)."""
    m = re.fullmatch(r"(unet_(\d+)|resnet_(\d+)blocks)(?:_(batch|instance))?", str(arch))
    if m and m[2]:
        size = int(m[2])
        levels = math.log2(size) if size > 0 else 0
        if levels == int(levels) and 5 <= levels <= 12:
            return "unet", int(levels), m[4] or DEFAULT_NORM["unet"]
    elif m and m[3] and 0 <= int(m[3]) <= 64:
        return "resnet", int(m[3]), m[4] or DEFAULT_NORM["resnet"]
    raise KzooError(f"unknown junyanz architecture {arch!r}; use one of {', '.join(ARCHS)} "
                    "(or unet_<2**levels>, resnet_<N>blocks), optionally with _batch or _instance")


# --- the reference parameter layout ----------------------------------------------

def _conv(prefix, layer, out_ch, in_ch, k, bias, transpose=False):
    shape = (in_ch, out_ch, k, k) if transpose else (out_ch, in_ch, k, k)
    yield f"{prefix}.weight", layer, "kernel", shape
    if bias:
        yield f"{prefix}.bias", layer, "bias", (out_ch,)


def _norm(prefix, layer, ch, norm):
    if norm == "batch":
        for torch_name, keras_name in (("weight", "gamma"), ("bias", "beta"),
                                       ("running_mean", "moving_mean"),
                                       ("running_var", "moving_variance")):
            yield f"{prefix}.{torch_name}", layer, keras_name, (ch,)


def _unet_block(depth):
    """The `nn.Sequential` of the U-Net block `depth` levels in: the outermost block holds
    its submodule at index 1 (no activation before its conv), every other one at 3."""
    return "model.model.1.model" + ".3.model" * (depth - 1)


def _unet_params(levels, norm, width, in_ch, out_ch):
    bias = norm == "instance"
    f = [width * min(2 ** i, 8) for i in range(levels)]
    yield from _conv("model.model.0", "down0_conv", f[0], in_ch, 4, bias)
    for d in range(1, levels):
        prefix = _unet_block(d)
        innermost = d == levels - 1
        yield from _conv(f"{prefix}.1", f"down{d}_conv", f[d], f[d - 1], 4, bias)
        if innermost:
            yield from _conv(f"{prefix}.3", f"up{d - 1}_conv", f[d - 1], f[d], 4, bias, True)
            yield from _norm(f"{prefix}.4", f"up{d - 1}_norm", f[d - 1], norm)
        else:
            yield from _norm(f"{prefix}.2", f"down{d}_norm", f[d], norm)
    for d in range(levels - 2, 0, -1):  # the decoder halves, innermost out (tree order is kept below)
        prefix = _unet_block(d)
        yield from _conv(f"{prefix}.5", f"up{d - 1}_conv", f[d - 1], 2 * f[d], 4, bias, True)
        yield from _norm(f"{prefix}.6", f"up{d - 1}_norm", f[d - 1], norm)
    yield from _conv("model.model.3", "out_conv", out_ch, 2 * f[0], 4, True, True)


def _resnet_params(blocks, norm, width, in_ch, out_ch):
    bias = norm == "instance"
    yield from _conv("model.1", "c7s1_conv", width, in_ch, 7, bias)
    yield from _norm("model.2", "c7s1_norm", width, norm)
    for d in (1, 2):
        yield from _conv(f"model.{3 * d + 1}", f"d{d}_conv", width * 2 ** d, width * 2 ** (d - 1), 3,
                         bias)
        yield from _norm(f"model.{3 * d + 2}", f"d{d}_norm", width * 2 ** d, norm)
    for b in range(blocks):
        p = f"model.{10 + b}.conv_block"
        yield from _conv(f"{p}.1", f"res{b}_conv1", width * 4, width * 4, 3, bias)
        yield from _norm(f"{p}.2", f"res{b}_norm1", width * 4, norm)
        yield from _conv(f"{p}.5", f"res{b}_conv2", width * 4, width * 4, 3, bias)
        yield from _norm(f"{p}.6", f"res{b}_norm2", width * 4, norm)
    i = 10 + blocks
    for u in (1, 0):
        yield from _conv(f"model.{i}", f"u{u}_conv", width * 2 ** u, width * 2 ** (u + 1), 3, bias,
                         True)
        yield from _norm(f"model.{i + 1}", f"u{u}_norm", width * 2 ** u, norm)
        i += 3
    yield from _conv(f"model.{i + 1}", "out_conv", out_ch, width, 7, True)


def reference_params(arch, *, width=64, input_channels=3, output_channels=3):
    """`[(torch name, keras layer, keras weight, torch shape)]` of `arch`, in the
    order of the reference network's `state_dict()` (without `num_batches_tracked`)."""
    kind, depth, norm = parse_arch(arch)
    params = list(KINDS[kind].params(depth, norm, width, input_channels, output_channels))
    return sorted(params, key=lambda p: _tree_order(p[0]))


def _tree_order(name):
    """Sort key of a state-dict name in module registration order (numeric indices)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in name.rsplit(".", 1)[0].split(".")] + [(_PARAM_ORDER.get(name.rsplit(".", 1)[-1], 9),)]


_PARAM_ORDER = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3}


def read_dims(kind, state) -> tuple[int, int, int]:
    """`(width, input channels, output channels)` from the first and last convs (defaults 64, 3, 3)."""
    return KINDS[kind].dims(state)


def _unet_dims(state):
    first, last = state.get("model.model.0.weight"), state.get("model.model.3.weight")
    width = first.shape[0] if _is4d(first) else 64
    return width, first.shape[1] if _is4d(first) else 3, last.shape[1] if _is4d(last) else 3


def _resnet_dims(state):
    first = state.get("model.1.weight")
    convs = sorted((int(m[1]), v) for k, v in state.items()
                   if (m := re.fullmatch(r"model\.(\d+)\.weight", k)) and _is4d(v))
    width = first.shape[0] if _is4d(first) else 64
    return width, first.shape[1] if _is4d(first) else 3, convs[-1][1].shape[0] if convs else 3


def _is4d(v):
    return isinstance(v, np.ndarray) and v.ndim == 4


def mismatches(arch, state) -> list[str]:
    """Every difference between `state` and the parameters of `arch`, in tree order."""
    kind, _, norm = parse_arch(arch)
    width, cin, cout = read_dims(kind, state)
    expected = {name: shape for name, _, _, shape in
                reference_params(arch, width=width, input_channels=cin, output_channels=cout)}
    problems = []
    for name, shape in expected.items():
        if name not in state:
            problems.append((name, f"{name} {shape} is missing"))
        elif tuple(state[name].shape) != shape:
            problems.append((name, f"{name} is {tuple(state[name].shape)}, {arch} has {shape}"))
    for name in state:
        if name in expected or name.endswith(".num_batches_tracked"):
            continue
        module, _, param = name.rpartition(".")
        if param in _INSTANCE_STATS and norm == "instance" and f"{module}.weight" not in state:
            continue  # an old PyTorch's InstanceNorm2d statistics: unused in eval
        problems.append((name, f"{name} is not a parameter of {arch}"))
    return [text for _, text in sorted(problems, key=lambda p: _tree_order(p[0]))]


def closest_arch(state, exclude=None) -> tuple[str, int]:
    """The named architecture (with either norm) that `state` matches best, and its mismatch count."""
    scored = []
    for base in ARCHS:
        for norm in ("batch", "instance"):
            arch = base if norm == DEFAULT_NORM[base.split("_")[0]] else f"{base}_{norm}"
            if arch != exclude:
                scored.append((len(mismatches(arch, state)), arch))
    kind_guess = "unet" if any(k.startswith("model.model.") for k in state) else "resnet"
    blocks = {int(m[1]) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
    if kind_guess == "resnet" and blocks:  # a ResNet of another depth: say which
        n, norm = len(blocks), "batch" if any(k.endswith("running_mean") and
                                              k.replace("running_mean", "weight") in state
                                              for k in state) else "instance"
        arch = f"resnet_{n}blocks" + ("" if norm == "instance" else "_batch")
        if arch != exclude:
            scored.append((len(mismatches(arch, state)), arch))
    best = min(scored)
    return best[1], best[0]


def check(arch, state):
    """Raise one `KzooError` line naming the first mismatch and the closest architecture."""
    problems = mismatches(arch, state)
    if not problems:
        return
    from kzoo.hub.convert.torchfile import mismatch_error

    raise mismatch_error(arch, problems, *closest_arch(state, exclude=arch))


# --- conversion --------------------------------------------------------------------

def build_generator(arch, *, width=64, input_channels=3, output_channels=3, image_size=None):
    """The exact kzoo generator of `arch` (untrained)."""
    kind, depth, norm = parse_arch(arch)
    return KINDS[kind].generator(arch, depth, norm, width=width, input_channels=input_channels,
                                 output_channels=output_channels, image_size=image_size)


def _unet_generator(arch, levels, norm, *, width, input_channels, output_channels, image_size):
    from kzoo.models.pix2pix import unet_generator

    return unet_generator(input_channels=input_channels, output_channels=output_channels,
                          width=width, levels=levels, norm=norm, exact="junyanz",
                          image_size=image_size)


def _resnet_generator(arch, blocks, norm, *, width, input_channels, output_channels, image_size):
    if input_channels != output_channels:
        raise KzooError(f"{arch}: kzoo's ResNet generator maps C channels to C, the state dict "
                        f"maps {input_channels} to {output_channels}")
    from kzoo.models.cyclegan import resnet_generator

    return resnet_generator(channels=input_channels, width=width, num_blocks=blocks, norm=norm,
                            exact="junyanz", image_size=image_size)


def generator_kwargs(arch, state) -> dict:
    """The builder arguments (`width`, channels) of the network `state` holds."""
    kind, _, _ = parse_arch(arch)
    width, cin, cout = read_dims(kind, state)
    return {"width": int(width), "input_channels": int(cin), "output_channels": int(cout)}


def load_into(generator, arch, state):
    """Copy `state` (checked against `arch`) into the exact kzoo `generator`, in place."""
    check(arch, state)
    kw = generator_kwargs(arch, state)
    by_layer = {}
    for name, layer, weight, _ in reference_params(arch, **kw):
        value = np.asarray(state[name], dtype=np.float32)
        if weight == "kernel":
            value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO; (I, O, kh, kw) -> (kh, kw, O, I)
        by_layer.setdefault(layer, {})[weight] = value
    for layer_name, values in by_layer.items():
        layer = generator.get_layer(layer_name)
        for variable in layer.weights:
            key = variable.path.rsplit("/", 1)[-1]
            if key not in values:
                raise KzooError(f"{arch}: no value for {layer_name}/{key} (kzoo builder and "
                                "converter disagree)")
            if tuple(variable.shape) != values[key].shape:
                raise KzooError(f"{arch}: {layer_name}/{key} is {tuple(variable.shape)} in kzoo, "
                                f"{values[key].shape} in the state dict")
            variable.assign(values[key])
    loaded = {name for name in by_layer}
    for layer in generator.layers:
        if layer.weights and layer.name not in loaded:
            raise KzooError(f"{arch}: kzoo layer {layer.name} has weights the state dict does "
                            "not provide")
    return generator


def convert_junyanz(state: dict, arch: str, *, image_size=None):
    """A junyanz generator state dict as kzoo's exact Keras generator.

    Args:
        state: {name: array} (`kzoo.hub.convert.torchfile.load_state_dict`).
        arch: `unet_256`, `unet_128`, `resnet_9blocks`, `resnet_6blocks` (+ `_batch` /
            `_instance`), see the module docstring.
        image_size: int or None: fix the input size (None: any suitable size).

    Returns:
        A functional `keras.Model` (image in [-1, 1] -> image in [-1, 1]), equal to the
        reference network in eval mode (`kzoo.layers.test_mode.with_test_mode(net,
        "authors")` gives the authors' default test.py behaviour: train mode).

    Raises:
        KzooError: one line naming the first mismatched name or shape and the closest
            architecture.
    """
    check(arch, state)
    generator = build_generator(arch, image_size=image_size, **generator_kwargs(arch, state))
    return load_into(generator, arch, state)


# --- the kzoo model of a preset --------------------------------------------------------

def _pix2pix(levels, norm, kw):
    """`(Pix2Pix, image size)`: the U-Net beside a PatchGAN sized for its images."""
    from kzoo.models.pix2pix import Pix2Pix

    size = 2 ** levels
    return Pix2Pix(image_size=size, input_channels=kw["input_channels"],
                   output_channels=kw["output_channels"], width=kw["width"], levels=levels,
                   n_layers=min(3, int(np.log2(size / 3))), norm=norm, exact="junyanz"), size


def _cyclegan(blocks, norm, kw):
    """`(CycleGAN, image size)`: 256x256 for 9 or more blocks, else 128x128."""
    from kzoo.models.cyclegan import CycleGAN

    size = 256 if blocks >= 9 else 128
    return CycleGAN(image_size=size, channels=kw["input_channels"], width=kw["width"],
                    num_blocks=blocks, norm=norm, exact="junyanz"), size


@dataclasses.dataclass(frozen=True)
class Kind:
    """One generator kind of the authors' `--netG`, and what kzoo converts it into.

    Attributes:
        params: `(depth, norm, width, in, out)` -> the reference parameters (`reference_params`).
        dims: state dict -> `(width, input channels, output channels)` (`read_dims`).
        generator: the exact kzoo generator builder (`build_generator`).
        model: `(depth, norm, generator_kwargs)` -> `(full kzoo model, image size)`; its
            `generator` takes the converted weights.
        note: what the preset says of the networks the upstream file does not fill.
        reverse: the full model's network that takes the other direction's generator
            (`--reverse`), or None: the family translates one way only (`what` says why).
        reverse_note: the note when `--reverse` filled it.
        what: the kind in words, for that error.
    """

    params: Callable
    dims: Callable
    generator: Callable
    model: Callable
    note: str
    reverse: str | None = None
    reverse_note: str = ""
    what: str = ""


KINDS = {
    "unet": Kind(params=_unet_params, dims=_unet_dims, generator=_unet_generator, model=_pix2pix,
                 note="the discriminator is untrained (the upstream file holds the generator only)",
                 what="a pix2pix U-Net, which translates one way only"),
    "resnet": Kind(params=_resnet_params, dims=_resnet_dims, generator=_resnet_generator,
                   model=_cyclegan,
                   note="generator_ab holds the upstream generator; generator_ba and both "
                        "discriminators are untrained (the upstream file holds one direction only; "
                        "--reverse adds the other direction's file)",
                   reverse="generator_ba",
                   reverse_note="generator_ab and generator_ba hold the upstream generators of the "
                                "two directions; both discriminators are untrained (the upstream "
                                "files hold generators only)"),
}


def models(source):
    """`(full model, inference network, info, image size)` of a junyanz generator file:
    the format protocol of `kzoo.hub.convert`.

    `source.arch`: the architecture (None: the one the state dict matches exactly);
    `source.mode`: the inference network's test-time mode, "eval" or "authors"
    (`kzoo.layers.test_mode.with_test_mode`); `source.reverse_state`: for a CycleGAN
    (ResNet) generator, the state dict of the other direction's generator (the authors
    publish one file a direction, e.g. horse2zebra.pth and zebra2horse.pth), loaded into
    `generator_ba`.
    """
    state, arch, reverse = source.state, source.arch, source.reverse_state
    if arch is None:
        arch, n = closest_arch(state)
        if n:
            raise KzooError(f"cannot tell the architecture of this state dict: give --arch "
                            f"(closest: {arch}, {n} mismatches; known: {', '.join(ARCHS)})")
    kind_name, depth, norm = parse_arch(arch)
    kind = KINDS[kind_name]
    generator = convert_junyanz(state, arch)
    kw = generator_kwargs(arch, state)
    if reverse is not None and kind.reverse is None:
        raise KzooError(f"--reverse is for CycleGAN generators (resnet_*): {arch} is {kind.what}")
    full, size = kind.model(depth, norm, kw)
    note = kind.note
    if reverse is not None:
        try:
            back = convert_junyanz(reverse, arch)
        except KzooError as e:
            raise KzooError(f"the reverse generator: {e}") from None
        back_kw = generator_kwargs(arch, reverse)
        if back_kw != kw:
            raise KzooError(f"the reverse generator ({back_kw}) is not the forward one's shape "
                            f"({kw})")
        getattr(full, kind.reverse).set_weights(back.get_weights())
        note = kind.reverse_note
    full.generator.set_weights(generator.get_weights())
    from kzoo.layers.test_mode import with_test_mode

    info = {"format": "junyanz", "arch": arch, "code": UPSTREAM, "paper": PAPERS[kind_name],
            "license": LICENSE, "note": note, "test_mode": source.mode}
    return full, with_test_mode(full.generator, source.mode), info, size


def accepts(source) -> bool:
    """Every state dict file (the formats before this one in `kzoo.hub.convert.FORMATS`
    took theirs): an unknown one gets the closest junyanz architecture in its error."""
    return source.path.is_file()
