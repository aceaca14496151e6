"""Published super-resolution weights (Real-ESRGAN, EDSR) -> kzoo's exact `SRResNet` options.

Architectures, by the authors' class names (`--arch NAME`, or detected from the state dict):

    RRDBNet           ESRGAN's generator as Real-ESRGAN ships it (RealESRGAN_x4plus,
                      RealESRGAN_x2plus: 23 blocks, 64 features, growth 32; x2 and x1
                      pixel-unshuffle the input): `SRResNet(arch="rrdb")`
    SRVGGNetCompact   Real-ESRGAN's compact network (realesr-general-x4v3: 32 convs,
                      realesr-animevideov3: 16 convs; PReLU): `SRResNet(arch="srvgg")`
    EDSR              EDSR (baseline: 16 blocks x 64, residual scale 1; the paper's model:
                      32 x 256, residual scale 0.1): `SRResNet(arch="edsr")`

Width, depth, growth, scale and channels are read from the state dict. EDSR's residual
scale is not stored in it: `EDSR` takes the authors' settings (0.1 for 32 blocks of 256
features, `src/demo.sh:11`; else `src/option.py`'s default 1), `EDSR_res<X>` names it.

Files: Real-ESRGAN's `.pth` wraps its state dict in `params_ema` (or `params`; RealESRGANer,
`realesrgan/utils.py`, prefers `params_ema`, and so does
`kzoo.hub.convert.torchfile.load_state_dict`); EDSR's `.pt` is the bare state dict. Both
are read by the restricted unpickler, without torch.

Layouts: conv weights OIHW -> HWIO. PyTorch's `PixelShuffle` takes channel
`c * r**2 + i*r + j` where kzoo's (`depth_to_space`) takes `(i*r + j) * C + c`, so the
output channels of the conv before a pixel shuffle are permuted; likewise the input
channels of RRDBNet's `conv_first` after the x2 pixel unshuffle. PReLU's `weight` (C,) is
Keras' `alpha` (1, 1, C). Value ranges: the Keras networks take and give [-1, 1] and map it
inside to what the weights were trained on ([0, 1]; EDSR [0, 255]).

Tiling: `kzoo predict` runs super-resolution images larger than `kzoo.infer.TILE` in tiles
(`kzoo.infer.OnnxModel.run_tiled`), cut as Real-ESRGAN's `RealESRGANer.tile_process`
(`realesrgan/utils.py`) cuts them: tiles of `tile` LR pixels from the top left, each run
with `overlap` (the authors' `tile_pad`) pixels of context clipped at the image border,
and only the tile's own part of the output kept (no blending). The output equals the
untiled one where the context covers the receptive radius (RRDBNet x4plus's is hundreds of
LR pixels, so the authors' default `tile_pad=10` -- and kzoo's 40 -- trade exactness for
memory there). What differs: kzoo rounds `tile` and `overlap` up to the network's size
multiple (2 for RRDBNet x2), pads the image to that multiple by reflection as
`RealESRGANer.pre_process`'s mod pad does but without its `pre_pad` (10 reflected pixels
at the bottom and right in `RealESRGANer`'s default, 0 in `inference_realesrgan.py`), runs
in float32 (the authors' script defaults to fp16) and tiles by default above 256 LR pixels
(the authors' `--tile 0`: never).

Example::

    from kzoo.hub.convert.torchfile import load_state_dict
    model = convert_sr(load_state_dict("RealESRGAN_x4plus.pth"))   # arch detected: RRDBNet
"""

from __future__ import annotations

import math
import re

import numpy as np

from kzoo.errors import KzooError

ARCHS = ("RRDBNet", "SRVGGNetCompact", "EDSR")

# Reference equality of the converted network, shown in docs/hub.md's upstream table
# (`kzoo.hub.catalog.upstream_table`): max |kzoo - the authors' modules| over the super-resolved
# outputs (Real-ESRGAN and EDSR alike), relative to the reference output's range, on the
# committed fixtures (scripts/reference_fixtures_sr.py). PROVEN_ERROR is the bound PROVEN_BY
# asserts; MEASURED_ERROR the largest error it measured (rrdb_x2; EDSR's largest 4.0e-7,
# edsr_x4; tensorflow 2.21 on CPU, 2026-12), so the table never claims more than the test
# proves.
PROVEN_ERROR = 1e-5
MEASURED_ERROR = 5.7e-7
PROVEN_BY = "tests/hub/convert/test_sr.py::test_converted_network_reproduces_the_reference_outputs"

KZOO_ARCH = {"RRDBNet": "rrdb", "SRVGGNetCompact": "srvgg", "EDSR": "edsr"}
FORMATS = {"RRDBNet": "realesrgan", "SRVGGNetCompact": "realesrgan", "EDSR": "edsr"}
INFO = {
    "realesrgan": {
        "code": "https://github.com/xinntao/Real-ESRGAN",
        "paper": "Wang, Xie, Dong & Shan, \"Real-ESRGAN: Training Real-World Blind "
                 "Super-Resolution with Pure Synthetic Data\", ICCV Workshops 2021",
        "license": "BSD-3-Clause (xinntao/Real-ESRGAN LICENSE, which publishes the weights "
                   "in its releases)"},
    "edsr": {
        "code": "https://github.com/sanghyun-son/EDSR-PyTorch",
        "paper": "Lim, Son, Kim, Nah & Lee, \"Enhanced Deep Residual Networks for Single Image "
                 "Super-Resolution\", CVPR Workshops 2017",
        "license": "MIT (sanghyun-son/EDSR-PyTorch LICENSE)"},
}
# What a missing tensor defaults to: the published full-size configurations.
DEFAULTS = {"RRDBNet": dict(scale=4, channels=3, width=64, num_blocks=23, growth=32),
            "SRVGGNetCompact": dict(scale=4, channels=3, width=64, num_blocks=32),
            "EDSR": dict(scale=4, channels=3, width=64, num_blocks=16)}


def parse_arch(arch):
    """`(kind, res_scale or None)` of an architecture name (case-insensitive)."""
    m = re.fullmatch(r"(rrdbnet|srvggnetcompact|edsr)(?:_res(\d+(?:\.\d+)?))?", str(arch).lower())
    if m and (m[2] is None or m[1] == "edsr"):
        kind = next(a for a in ARCHS if a.lower() == m[1])
        return kind, float(m[2]) if m[2] else None
    raise KzooError(f"unknown super-resolution architecture {arch!r}; use one of "
                    f"{', '.join(ARCHS)} (EDSR_res<X> names EDSR's residual scale)")


def is_arch(arch) -> bool:
    try:
        parse_arch(arch)
    except KzooError:
        return False
    return True


def claims(state, arch=None) -> bool:
    """Whether this module converts `state`: `arch` names an SR architecture, or (no
    `arch`) the state dict matches one exactly."""
    if arch is not None:
        return is_arch(arch)
    return detect(state)[1] == 0


def _shape(state, name, axis, default):
    value = state.get(name)
    return int(value.shape[axis]) if isinstance(value, np.ndarray) and value.ndim == 4 else default


def _indices(state, pattern):
    return sorted({int(m[1]) for k in state if (m := re.fullmatch(pattern, k))})


def read_config(arch, state) -> dict:
    """The `SRResNet` arguments of the network of kind `arch` that `state` holds."""
    kind, res_scale = parse_arch(arch)
    c = dict(DEFAULTS[kind])
    if kind == "RRDBNet":
        c["channels"] = _shape(state, "conv_last.weight", 0, 3)
        c["width"] = _shape(state, "conv_first.weight", 0, 64)
        ratio = _shape(state, "conv_first.weight", 1, 3) // max(c["channels"], 1)
        c["scale"] = {1: 4, 4: 2, 16: 1}.get(ratio, 4)
        c["num_blocks"] = len(_indices(state, r"body\.(\d+)\.rdb1\.conv1\.weight")) or 23
        c["growth"] = _shape(state, "body.0.rdb1.conv1.weight", 0, 32)
    elif kind == "SRVGGNetCompact":
        c["channels"] = _shape(state, "body.0.weight", 1, 3)
        c["width"] = _shape(state, "body.0.weight", 0, 64)
        convs = [i for i in _indices(state, r"body\.(\d+)\.weight")
                 if state[f"body.{i}.weight"].ndim == 4]
        if len(convs) >= 2:
            c["num_blocks"] = convs[-1] // 2 - 1
            r = math.isqrt(max(state[f"body.{convs[-1]}.weight"].shape[0] // c["channels"], 1))
            c["scale"] = r if r * r * c["channels"] == state[f"body.{convs[-1]}.weight"].shape[0] else 4
    else:
        c["width"] = _shape(state, "head.0.weight", 0, 64)
        c["channels"] = _shape(state, "tail.1.weight", 0, 3)
        c["num_blocks"] = len(_indices(state, r"body\.(\d+)\.body\.0\.weight")) or 16
        ups = _indices(state, r"tail\.0\.(\d+)\.weight")
        if len(ups) == 1 and _shape(state, "tail.0.0.weight", 0, 0) == 9 * c["width"]:
            c["scale"] = 3
        elif ups:
            c["scale"] = 2 ** len(ups)
        full = (c["num_blocks"], c["width"]) == (32, 256)  # the paper's EDSR: src/demo.sh:11
        c["res_scale"] = res_scale if res_scale is not None else (0.1 if full else 1.0)
    return c


# --- the reference parameter layout ----------------------------------------------

def _conv(prefix, out_ch, in_ch, k=3, perm=None):
    layer = prefix.replace(".", "_")
    bias_perm = perm if perm is not None and perm[0] == "out" else None
    return [(f"{prefix}.weight", layer, "kernel", (out_ch, in_ch, k, k), perm),
            (f"{prefix}.bias", layer, "bias", (out_ch,), bias_perm)]


def reference_params(arch, **config):
    """`[(torch name, keras layer, keras weight, torch shape, permutation)]` of `arch` at
    `config` (`read_config`'s keys), in the reference module's `state_dict()` order; a
    permutation is None, ("out", C, r) or ("in", C, r) (see the module docstring)."""
    kind, _ = parse_arch(arch)
    c = dict(DEFAULTS[kind], **config)
    ch, w, n = c["channels"], c["width"], c["num_blocks"]
    params = []
    if kind == "RRDBNet":
        r = 4 // c["scale"]
        params += _conv("conv_first", w, ch * r * r, perm=("in", ch, r) if r > 1 else None)
        g = c["growth"]
        for b in range(n):
            for d in (1, 2, 3):
                for i in range(1, 6):
                    params += _conv(f"body.{b}.rdb{d}.conv{i}", g if i < 5 else w, w + (i - 1) * g)
        for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
            params += _conv(name, w, w)
        params += _conv("conv_last", ch, w)
    elif kind == "SRVGGNetCompact":
        for i in range(n + 1):
            params += _conv(f"body.{2 * i}", w, ch if i == 0 else w)
            params.append((f"body.{2 * i + 1}.weight", f"body_{2 * i + 1}", "alpha", (w,), None))
        s = c["scale"]
        params += _conv(f"body.{2 * n + 2}", ch * s * s, w, perm=("out", ch, s))
    else:
        params += _conv("sub_mean", 3, 3, 1) + _conv("add_mean", 3, 3, 1)
        params += _conv("head.0", w, ch)
        for b in range(n):
            params += _conv(f"body.{b}.body.0", w, w) + _conv(f"body.{b}.body.2", w, w)
        params += _conv(f"body.{n}", w, w)
        factors = [3] if c["scale"] == 3 else [2] * (c["scale"].bit_length() - 1)
        for i, r in enumerate(factors):
            params += _conv(f"tail.0.{2 * i}", w * r * r, w, perm=("out", w, r))
        params += _conv("tail.1", ch, w)
    return params


def mismatches(arch, state) -> list[str]:
    """Every difference between `state` and the parameters of `arch`, in reference order."""
    from kzoo.hub.convert.torchfile import shape_mismatches

    expected = {name: shape for name, _, _, shape, _ in reference_params(arch, **read_config(arch, state))}
    return shape_mismatches(expected, state, arch)


def detect(state):
    """`(architecture, mismatch count)` of the SR architecture `state` matches best."""
    return min(((len(mismatches(a, state)), a) for a in ARCHS))[::-1]


def check(arch, state):
    """Raise one `KzooError` line naming the first mismatch and the architecture it matches."""
    problems = mismatches(arch, state)
    if not problems:
        return
    kind, _ = parse_arch(arch)
    scored = [(len(mismatches(a, state)), a) for a in ARCHS if a != kind]
    n, close = min(scored)
    if n:
        from kzoo.hub.convert import junyanz

        other, m = junyanz.closest_arch(state)
        if m == 0:
            n, close = 0, other
    from kzoo.hub.convert.torchfile import mismatch_error

    raise mismatch_error(arch, problems, close, n)


# --- conversion --------------------------------------------------------------------

def _permutation(channels, r):
    """Keras channel f = k*C + c holds PyTorch channel c*r**2 + k."""
    return np.arange(channels * r * r).reshape(channels, r * r).T.reshape(-1)


def keras_value(value, weight, perm):
    """A PyTorch tensor in the layout of the Keras weight it becomes."""
    value = np.asarray(value, dtype=np.float32)
    if weight == "kernel":
        value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    elif weight == "alpha":
        value = value.reshape(1, 1, -1)
    if perm is not None:
        side, channels, r = perm
        index = _permutation(channels, r)
        if side == "out":
            value = value[..., index]
        else:
            value = value[:, :, index, :]
    return value


def build(arch, **config):
    """The exact kzoo network (an untrained `SRResNet` option) of `arch` at `config`."""
    from kzoo.models.srgan import SRResNet

    kind, _ = parse_arch(arch)
    c = dict(DEFAULTS[kind], **config)
    return SRResNet(arch=KZOO_ARCH[kind], name=kind.lower(), **c)


def convert_sr(state: dict, arch=None):
    """A Real-ESRGAN or EDSR state dict as kzoo's exact Keras network.

    Args:
        state: {name: array} (`kzoo.hub.convert.torchfile.load_state_dict`).
        arch: `RRDBNet`, `SRVGGNetCompact`, `EDSR` or `EDSR_res<X>`; None: the one the
            state dict matches exactly.

    Returns:
        An `SRResNet` (LR in [-1, 1] -> SR in [-1, 1]) equal to the reference network.

    Raises:
        KzooError: one line naming the first mismatch and the architecture it matches.
    """
    if arch is None:
        arch, n = detect(state)
        if n:
            raise KzooError(f"cannot tell the architecture of this state dict: give --arch "
                            f"(closest: {arch}, {n} mismatches; known: {', '.join(ARCHS)})")
    check(arch, state)
    config = read_config(arch, state)
    model = build(arch, **config)
    for name, layer, weight, _, perm in reference_params(arch, **config):
        variable = next(v for v in model.get_layer(layer).weights
                        if v.path.rsplit("/", 1)[-1] == weight)
        variable.assign(keras_value(state[name], weight, perm))
    return model


def sr_models(state, arch=None):
    """`(full model, inference network, info, image size)` of a Real-ESRGAN / EDSR state
    dict (the full model is the network: SR has no second network to ship)."""
    if arch is None:
        arch, n = detect(state)
        if n:
            raise KzooError(f"cannot tell the architecture of this state dict: give --arch "
                            f"(closest: {arch}, {n} mismatches; known: {', '.join(ARCHS)})")
    model = convert_sr(state, arch)
    kind, _ = parse_arch(arch)
    fmt = FORMATS[kind]
    c = read_config(arch, state)
    note = (f"{kind} x{c['scale']}, {c['num_blocks']} blocks of {c['width']} features"
            + (f", residual scale {c['res_scale']}" if kind == "EDSR" else "")
            + "; [-1, 1] in and out (the weights' own range is mapped inside the network)")
    info = dict(INFO[fmt], format=fmt, arch=arch if kind != "EDSR" or "_res" in str(arch)
                else "EDSR", note=note)
    return model, model, info, 32


# --- the format protocol of `kzoo.hub.convert` ---------------------------------------------

def accepts(source) -> bool:
    """A state dict file that `--arch` names an SR architecture for, or (no `--arch`) that
    matches one exactly (`claims`)."""
    return source.path.is_file() and claims(source.state, source.arch)


def models(source):
    """`sr_models` of `source`'s state dict (`--reverse` is refused: SR is one network)."""
    if source.reverse is not None:
        raise KzooError("--reverse is for CycleGAN generators: this is a super-resolution network")
    return sr_models(source.state, source.arch)
