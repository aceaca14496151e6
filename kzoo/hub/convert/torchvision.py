"""torchvision's DeepLabV3 segmentation weights (`deeplabv3_*_coco-*.pth`) -> kzoo's `DeepLabV3`.

Architectures, by torchvision's builder names (torchvision 0.28.0,
torchvision/models/segmentation/deeplabv3.py):

    deeplabv3_resnet50             ResNet-50, dilated (output stride 8), DeepLabHead
    deeplabv3_resnet101            ResNet-101, dilated (output stride 8), DeepLabHead
    deeplabv3_mobilenet_v3_large   MobileNetV3-Large, dilated (output stride 16), DeepLabHead

each with or without the auxiliary `FCNHead` (`aux_classifier.*`: present in the published
files, which torchvision builds with `aux_loss=True`). `deeplabv3_resnet` is a ResNet with
the block counts the state dict holds (smaller test networks). The widths (ResNet stem and
stage widths, MobileNetV3's width multiplier, the ASPP channels) and the number of classes
are read from the state dict; the atrous rates are not parameters: torchvision's (12, 24,
36) unless given.

kzoo's layers are named after torchvision's module paths ("." -> "_"), so the mapping is
one to one: conv weights OIHW -> HWIO, depthwise (C, 1, kh, kw) -> (kh, kw, C, 1), batch
norm weight/bias/running_mean/running_var -> gamma/beta/moving_mean/moving_variance
(`num_batches_tracked` is a training counter, not used in eval).

Example::

    from kzoo.hub.convert.torchfile import load_state_dict
    model = convert_torchvision(load_state_dict("deeplabv3_resnet50_coco-cd0a2569.pth"))
"""

from __future__ import annotations

import re

import numpy as np

from kzoo.errors import KzooError

UPSTREAM = "https://github.com/pytorch/vision"
# pytorch/vision LICENSE ("BSD 3-Clause License", as shipped in torchvision-0.28.0.dist-info);
# the weights enums (deeplabv3.py) state no licence of their own in `meta` (categories,
# min_size, num_params, recipe, metrics): they are distributed with the code
LICENSE = "BSD-3-Clause (torchvision's code and the weights it distributes)"
PAPER = ("Chen, Papandreou, Schroff & Adam, \"Rethinking Atrous Convolution for Semantic "
         "Image Segmentation\", arXiv:1706.05587, 2017")
ARCHS = ("deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large")

# Reference equality of the converted network, shown in docs/hub.md's upstream table
# (`kzoo.hub.catalog.upstream_table`): max |kzoo - torchvision| over the logits of the main and
# auxiliary heads, relative to the reference output's range, on the committed fixtures
# (scripts/reference_fixtures_torchvision.py). PROVEN_ERROR is the bound PROVEN_BY asserts;
# MEASURED_ERROR the largest error it measured (mobilenet_small; tensorflow 2.21 on CPU,
# 2026-12), so the table never claims more than the test proves.
PROVEN_ERROR = 1e-5
MEASURED_ERROR = 2.3e-6
PROVEN_BY = "tests/hub/convert/test_torchvision.py::test_converted_network_reproduces_torchvision"

GENERIC_RESNET = "deeplabv3_resnet"
DEFAULT_RATES = (12, 24, 36)  # deeplabv3.py DeepLabHead(atrous_rates=(12, 24, 36))
IMAGE_SIZE = 520  # deeplabv3.py: partial(SemanticSegmentation, resize_size=520)
_MOBILENET_WIDTHS = (1.0, 0.75, 0.5, 0.35, 0.25, 0.1)
from kzoo.options.deeplab import TORCH_BN as _BN  # noqa: E402  (torch <-> Keras batch-norm names)


def parse_arch(arch):
    """`(backbone, blocks or None)` of an architecture name."""
    from kzoo.models.deeplab import RESNET_BLOCKS

    name = str(arch)
    if name == GENERIC_RESNET:
        return "resnet", None
    if name.startswith("deeplabv3_") and name[10:] in (*RESNET_BLOCKS, "mobilenet_v3_large"):
        backbone = name[10:]
        return backbone, RESNET_BLOCKS.get(backbone)
    raise KzooError(f"unknown torchvision architecture {arch!r}; use one of {', '.join(ARCHS)}")


# --- the reference parameter layout ----------------------------------------------

def _conv(prefix, out_ch, in_ch, k, bias=False):
    yield f"{prefix}.weight", (out_ch, in_ch, k, k)
    if bias:
        yield f"{prefix}.bias", (out_ch,)


def _bn(prefix, ch):
    for torch_name, _ in _BN:
        yield f"{prefix}.{torch_name}", (ch,)
    yield f"{prefix}.num_batches_tracked", ()


def _resnet_params(blocks, stem, planes):
    yield from _conv("backbone.conv1", stem, 3, 7)
    yield from _bn("backbone.bn1", stem)
    inplanes = stem
    for stage, n in enumerate(blocks):
        width = planes * 2 ** stage
        for b in range(n):
            p = f"backbone.layer{stage + 1}.{b}"
            yield from _conv(f"{p}.conv1", width, inplanes, 1)
            yield from _bn(f"{p}.bn1", width)
            yield from _conv(f"{p}.conv2", width, width, 3)
            yield from _bn(f"{p}.bn2", width)
            yield from _conv(f"{p}.conv3", 4 * width, width, 1)
            yield from _bn(f"{p}.bn3", 4 * width)
            if b == 0 and (stage > 0 or inplanes != 4 * width):
                yield from _conv(f"{p}.downsample.0", 4 * width, inplanes, 1)
                yield from _bn(f"{p}.downsample.1", 4 * width)
            inplanes = 4 * width
    return inplanes


def _mobilenet_params(width_mult):
    from kzoo.models.deeplab import make_divisible, mobilenet_v3_large_config

    config, last = mobilenet_v3_large_config(width_mult)
    yield from _conv("backbone.0.0", config[0][0], 3, 3)
    yield from _bn("backbone.0.1", config[0][0])
    for i, (cin, k, exp, cout, se, _, _, _) in enumerate(config, start=1):
        p, j = f"backbone.{i}.block", 0
        if exp != cin:
            yield from _conv(f"{p}.0.0", exp, cin, 1)
            yield from _bn(f"{p}.0.1", exp)
            j = 1
        yield from _conv(f"{p}.{j}.0", exp, 1, k)  # depthwise: groups = channels
        yield from _bn(f"{p}.{j}.1", exp)
        j += 1
        if se:
            squeeze = make_divisible(exp // 4)
            yield from _conv(f"{p}.{j}.fc1", squeeze, exp, 1, bias=True)
            yield from _conv(f"{p}.{j}.fc2", exp, squeeze, 1, bias=True)
            j += 1
        yield from _conv(f"{p}.{j}.0", cout, exp, 1)
        yield from _bn(f"{p}.{j}.1", cout)
    n = len(config) + 1
    yield from _conv(f"backbone.{n}.0", last, config[-1][3], 1)
    yield from _bn(f"backbone.{n}.1", last)


def _head_params(cin, num_classes, filters, n_rates):
    p = "classifier.0"
    for i in range(n_rates + 1):
        yield from _conv(f"{p}.convs.{i}.0", filters, cin, 3 if i else 1)
        yield from _bn(f"{p}.convs.{i}.1", filters)
    yield from _conv(f"{p}.convs.{n_rates + 1}.1", filters, cin, 1)
    yield from _bn(f"{p}.convs.{n_rates + 1}.2", filters)
    yield from _conv(f"{p}.project.0", filters, (n_rates + 2) * filters, 1)
    yield from _bn(f"{p}.project.1", filters)
    yield from _conv("classifier.1", filters, filters, 3)
    yield from _bn("classifier.2", filters)
    yield from _conv("classifier.4", num_classes, filters, 1, bias=True)


def _aux_params(cin, num_classes):
    yield from _conv("aux_classifier.0", cin // 4, cin, 3)
    yield from _bn("aux_classifier.1", cin // 4)
    yield from _conv("aux_classifier.4", num_classes, cin // 4, 1, bias=True)


def reference_params(arch, dims) -> list:
    """`[(torch name, shape)]` of `arch` at `dims` (`read_dims`), in the order of
    torchvision's `state_dict()` (backbone, classifier, aux_classifier)."""
    backbone, blocks = parse_arch(arch)
    if backbone == "mobilenet_v3_large":
        from kzoo.models.deeplab import mobilenet_v3_large_config

        params = list(_mobilenet_params(dims["width_mult"]))
        config, cout = mobilenet_v3_large_config(dims["width_mult"])
        aux_in = config[3][3]  # the C2 block (features[4]), stride 8
    else:
        blocks = blocks or dims["blocks"]
        gen = _resnet_params(blocks, dims["stem"], dims["planes"])
        params = list(gen)
        cout, aux_in = 32 * dims["planes"], 16 * dims["planes"]  # layer4, layer3 (x4 expansion)
    params += _head_params(cout, dims["num_classes"], dims["aspp_filters"], dims["n_rates"])
    if dims["aux"]:
        params += _aux_params(aux_in, dims["num_classes"])
    return params


def _shape(state, name):
    v = state.get(name)
    return tuple(v.shape) if isinstance(v, np.ndarray) else None


def read_dims(state) -> dict:
    """The widths, block counts, classes and heads `state` holds (torchvision's defaults where
    it does not say)."""
    blocks = tuple(len({int(m[1]) for k in state
                        if (m := re.match(rf"backbone\.layer{s}\.(\d+)\.", k))})
                   for s in (1, 2, 3, 4))
    width_mult = 1.0
    project = {int(m[1]): v.shape[0] for k, v in state.items()
               if (m := re.fullmatch(r"backbone\.(\d+)\.0\.weight", k)) and np.ndim(v) == 4}
    if project:
        from kzoo.models.deeplab import mobilenet_v3_large_config

        for w in _MOBILENET_WIDTHS:
            config, last = mobilenet_v3_large_config(w)
            if project.get(0) == config[0][0] and project.get(len(config) + 1) == last:
                width_mult = w
                break
    n_convs = len({int(m[1]) for k in state
                   if (m := re.match(r"classifier\.0\.convs\.(\d+)\.", k))})
    conv1, layer1, aspp, cls = (_shape(state, n) for n in (
        "backbone.conv1.weight", "backbone.layer1.0.conv1.weight",
        "classifier.0.convs.0.0.weight", "classifier.4.weight"))
    return {"blocks": blocks, "stem": conv1[0] if conv1 else 64,
            "planes": layer1[0] if layer1 else 64, "width_mult": width_mult,
            "aspp_filters": aspp[0] if aspp else 256, "num_classes": cls[0] if cls else 21,
            "n_rates": n_convs - 2 if n_convs > 2 else 3,
            "aux": any(k.startswith("aux_classifier.") for k in state)}


def _order(name, order):
    return order.get(name, len(order))


def mismatches(arch, state, dims=None) -> list[str]:
    """Every difference between `state` and `arch` (at the widths `state` holds)."""
    dims = dims or read_dims(state)
    expected = dict(reference_params(arch, dims))
    order = {n: i for i, n in enumerate(expected)}
    problems = []
    for name, shape in expected.items():
        if name.endswith(".num_batches_tracked"):
            continue  # a training counter some checkpoints lack
        if name not in state:
            problems.append((_order(name, order), f"{name} {shape} is missing"))
        elif _shape(state, name) != shape:
            problems.append((_order(name, order),
                             f"{name} is {_shape(state, name)}, {arch} has {shape}"))
    for i, name in enumerate(state):
        if name not in expected:
            problems.append((len(order) + i, f"{name} is not a parameter of {arch}"))
    return [text for _, text in sorted(problems)]


def detect(state) -> str:
    """The architecture of `state`, by its backbone's names and block counts."""
    dims = read_dims(state)
    if "backbone.0.0.weight" in state:
        return "deeplabv3_mobilenet_v3_large"
    for arch in ("deeplabv3_resnet50", "deeplabv3_resnet101"):
        if dims["blocks"] == parse_arch(arch)[1]:
            return arch
    return GENERIC_RESNET


def closest_arch(state, exclude=None) -> tuple[str, int]:
    """The architecture `state` matches best, and its mismatch count."""
    candidates = [a for a in (*ARCHS, detect(state)) if a != exclude]
    return min((len(mismatches(a, state)), a) for a in dict.fromkeys(candidates))[::-1]


def check(arch, state):
    """Raise one `KzooError` line naming the first mismatch and the closest architecture."""
    problems = mismatches(arch, state)
    if not problems:
        return
    from kzoo.hub.convert.torchfile import mismatch_error

    raise mismatch_error(arch, problems, *closest_arch(state, exclude=arch))


# --- conversion --------------------------------------------------------------------

def model_kwargs(arch, state, *, image_size=IMAGE_SIZE, aspp_rates=DEFAULT_RATES) -> dict:
    """The `kzoo.models.deeplab.DeepLabV3` arguments of the network `state` holds."""
    from kzoo.models.deeplab import VOC_CLASSES

    backbone, blocks = parse_arch(arch)
    dims = read_dims(state)
    if len(aspp_rates) != dims["n_rates"]:
        raise KzooError(f"the state dict's ASPP has {dims['n_rates']} atrous branches, "
                        f"{len(aspp_rates)} rates were given")
    kw = {"image_size": int(image_size), "num_classes": int(dims["num_classes"]),
          "aspp_filters": int(dims["aspp_filters"]), "aspp_rates": tuple(aspp_rates),
          "aux": dims["aux"],
          "class_names": VOC_CLASSES if dims["num_classes"] == len(VOC_CLASSES) else None}
    if backbone == "mobilenet_v3_large":
        return {**kw, "backbone": backbone, "width_mult": dims["width_mult"]}
    return {**kw, "backbone": backbone if blocks else "resnet50",
            "blocks": tuple(blocks or dims["blocks"]), "stem": int(dims["stem"]),
            "planes": int(dims["planes"])}


def load_into(model, arch, state):
    """Copy `state` (checked against `arch`) into the `DeepLabV3` `model`, in place."""
    from kzoo.models.deeplab import assign_torch_weights as _assign, torch_by_layer as _by_layer

    check(arch, state)
    network = model.aux_network or model.network
    by_layer = _by_layer(state, [n for n, _ in reference_params(arch, read_dims(state))])
    _assign(network, by_layer, arch)
    return model


def convert_torchvision(state: dict, arch=None, *, image_size=IMAGE_SIZE,
                        aspp_rates=DEFAULT_RATES):
    """A torchvision DeepLabV3 state dict as kzoo's `DeepLabV3` (eval-mode equal).

    Args:
        state: {name: array} (`kzoo.hub.convert.torchfile.load_state_dict`).
        arch: one of `ARCHS` (or `deeplabv3_resnet`); None: the one `state` matches.
        image_size: int. The fixed input size of the Keras network (520: torchvision's preset).
        aspp_rates: tuple of ints. ASPP atrous rates (torchvision's 12, 24, 36).

    Returns:
        `kzoo.models.deeplab.DeepLabV3` (images in [-1, 1] -> logits at the input size).

    Raises:
        KzooError: one line naming the first mismatched name or shape and the closest
            architecture.
    """
    from kzoo.models.deeplab import DeepLabV3

    arch = arch or detect(state)
    check(arch, state)
    model = DeepLabV3(**model_kwargs(arch, state, image_size=image_size, aspp_rates=aspp_rates))
    return load_into(model, arch, state)


# torch/hub.py (torch 2.13.0) `HASH_REGEX`: torchvision's `Weights.get_state_dict(check_hash=
# True)` -> `load_state_dict_from_url` requires the file's sha256 to start with the hex digits
# after the last "-" of its name (deeplabv3_resnet50_coco-cd0a2569.pth: cd0a2569)
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")


def check_hash_prefix(source, sha256):
    """Refuse a downloaded file whose sha256 does not start with the prefix its name carries
    (torch.hub's `check_hash`, as torchvision loads these weights)."""
    import urllib.parse

    name = urllib.parse.urlsplit(str(source)).path.rsplit("/", 1)[-1]
    m = HASH_REGEX.search(name)
    if m and m[1] and not str(sha256).startswith(m[1]):
        raise KzooError(f"{source}: its sha256 {sha256} does not start with {m[1]}, the prefix "
                        "its name carries (torch.hub's check_hash); nothing was converted")


def is_torchvision_state(state) -> bool:
    """Whether `state` looks like a torchvision segmentation model (backbone + classifier)."""
    return any(k.startswith("backbone.") for k in state) and \
        any(k.startswith("classifier.") for k in state)


def torchvision_models(state, arch=None, *, image_size=IMAGE_SIZE, aspp_rates=DEFAULT_RATES):
    """`(full model, inference network, info, image size)` of a torchvision DeepLabV3 state
    dict (`image_size`, `aspp_rates`: see `convert_torchvision`)."""
    if arch is None:
        arch, n = closest_arch(state)
        if n:
            raise KzooError(f"cannot tell the architecture of this state dict: give --arch "
                            f"(closest: {arch}, {n} mismatches; known: {', '.join(ARCHS)})")
    model = convert_torchvision(state, arch, image_size=image_size, aspp_rates=aspp_rates)
    info = {"format": "torchvision", "arch": arch, "code": UPSTREAM, "paper": PAPER,
            "license": LICENSE,
            "note": ("COCO train2017 restricted to the 20 Pascal VOC categories (torchvision's "
                     "weights meta); images in [-1, 1] are normalised inside the network by "
                     "the ImageNet mean/std; the auxiliary FCN head is kept for fine-tuning")}
    return model, model.network, info, int(image_size)


# --- the format protocol of `kzoo.hub.convert` ---------------------------------------------

def accepts(source) -> bool:
    """A state dict file with torchvision's segmentation names, or one `--arch deeplabv3_*`
    names."""
    return source.path.is_file() and (str(source.arch).startswith("deeplabv3_") or
                                      is_torchvision_state(source.state))


def models(source):
    """`torchvision_models` of `source`'s state dict; a downloaded file's sha256 must start
    with the prefix its name carries (`check_hash_prefix`)."""
    if source.reverse is not None:
        raise KzooError(f"{source.path} is a torchvision segmentation state dict: --reverse is "
                        "for CycleGAN generator files")
    if source.origin.startswith(("https://", "http://")):
        from kzoo.hub.preset import sha256_file

        check_hash_prefix(source.origin, source.sha256 or sha256_file(source.path))
    return torchvision_models(source.state, source.arch)
