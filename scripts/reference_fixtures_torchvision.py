"""Write the torchvision DeepLabV3 fixtures the segmentation converter's tests read (needs torch).

    pip install -e '.[reference]'      # torch + torchvision (CPU is enough)
    python scripts/reference_fixtures_torchvision.py [--out tests/fixtures/reference]

Written with torchvision 0.28.0 / torch 2.13.0 (recorded in `torchvision/versions.json`):

    torchvision/full_size.json   for deeplabv3_resnet50, deeplabv3_resnet101 and
                                 deeplabv3_mobilenet_v3_large (aux_loss=True, weights=None,
                                 weights_backbone=None): the [name, shape] list of state_dict(),
                                 in order, and the parameter count
    torchvision/<variant>.pth    a seeded random state dict (torch.save)
    torchvision/<variant>.npz    `x` (NHWC in [-1, 1], kzoo's input), `out` (and `aux`) logits
                                 (NHWC), computed by torchvision in eval mode on the CPU from
                                 ((x + 1) / 2 - mean) / std, the `SemanticSegmentation` preset's
                                 normalisation

The full-size networks' state dicts (160-233 MB) cannot be committed, so the parity
fixtures are torchvision's own classes at reduced width: `resnet_small` is a
`torchvision.models.resnet.ResNet(Bottleneck, [1, 1, 2, 2], replace_stride_with_dilation=
[False, True, True])` whose stage widths are 1/32 of torchvision's (`_make_layer` called with
planes // 32; the stem stays 64), in torchvision's `IntermediateLayerGetter` / `DeepLabV3` /
`FCNHead` structure, with the `DeepLabHead` layout at 8 channels (`ASPP(..., out_channels=8)`)
and atrous rates (1, 2, 3) so that every tap lands inside the 5x5 features;
`mobilenet_small` is `mobilenet_v3_large(width_mult=0.1, dilated=True)` without the
auxiliary head, ASPP at 8 channels, rates (1, 2, 3). Inputs are 40x40: odd feature sizes
(5 and 3) test PyTorch's padding arithmetic. Every parameter and BN statistic is redrawn
(no zero-initialised layer hides a mapping error).

The torchvision wheels on this machine are CUDA builds whose `_C` extension cannot load
against the CPU torch: its meta registrations (detection ops, unused here) are skipped by
stubbing `torchvision._meta_registrations` and `torchvision._autograd_registrations`.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "reference"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # transforms/_presets.py


def _import_torchvision():
    for name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
        sys.modules.setdefault(name, types.ModuleType(name))
    import torchvision

    return torchvision


def _randomize(model, seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) * 1.5 + 0.25)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.2)
            elif t.ndim == 1:  # BN gamma/beta, conv biases
                t.copy_(torch.randn(t.shape, generator=g) * 0.2 + (1.0 if name.endswith(
                    ".weight") else 0.0))
            else:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (1.6 / fan_in) ** 0.5)
    return model.eval()


def _head(cin, num_classes, filters, rates):
    from torch import nn
    from torchvision.models.segmentation.deeplabv3 import ASPP

    # DeepLabHead's layout (deeplabv3.py) with `filters` instead of its fixed 256
    return nn.Sequential(ASPP(cin, rates, out_channels=filters),
                         nn.Conv2d(filters, filters, 3, padding=1, bias=False),
                         nn.BatchNorm2d(filters), nn.ReLU(), nn.Conv2d(filters, num_classes, 1))


def resnet_small():
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.resnet import Bottleneck, ResNet
    from torchvision.models.segmentation.deeplabv3 import DeepLabV3
    from torchvision.models.segmentation.fcn import FCNHead

    class NarrowResNet(ResNet):
        def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
            return super()._make_layer(block, planes // 32, blocks, stride, dilate)

    backbone = NarrowResNet(Bottleneck, [1, 1, 2, 2], replace_stride_with_dilation=[False, True, True])
    backbone = IntermediateLayerGetter(backbone, return_layers={"layer4": "out", "layer3": "aux"})
    return DeepLabV3(backbone, _head(64, 21, 8, (1, 2, 3)), FCNHead(32, 21))


def mobilenet_small():
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.mobilenetv3 import mobilenet_v3_large
    from torchvision.models.segmentation.deeplabv3 import DeepLabV3

    features = mobilenet_v3_large(weights=None, width_mult=0.1, dilated=True).features
    cout = features[-1].out_channels
    backbone = IntermediateLayerGetter(features, return_layers={str(len(features) - 1): "out"})
    return DeepLabV3(backbone, _head(cout, 21, 8, (1, 2, 3)), None)


VARIANTS = {"resnet_small": (resnet_small, 1), "mobilenet_small": (mobilenet_small, 2)}


def write_fixtures(out: Path):
    import torch

    tv = _import_torchvision()
    from torchvision.models import segmentation

    folder = Path(out) / "torchvision"
    folder.mkdir(parents=True, exist_ok=True)
    full = {}
    for arch in ("deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large"):
        model = getattr(segmentation, arch)(weights=None, weights_backbone=None, aux_loss=True)
        full[arch] = {"params": [[k, list(v.shape)] for k, v in model.state_dict().items()],
                      "num_params": sum(p.numel() for p in model.parameters())}
    (folder / "full_size.json").write_text(json.dumps(full, indent=0) + "\n")
    for name, (make, seed) in VARIANTS.items():
        torch.manual_seed(seed)
        model = _randomize(make(), seed)
        torch.save(model.state_dict(), folder / f"{name}.pth")
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1, 1, (1, 40, 40, 3)).astype(np.float32)
        t = torch.from_numpy(x).permute(0, 3, 1, 2)
        t = ((t + 1) / 2 - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
        with torch.no_grad():
            result = model(t)
        arrays = {"x": x}
        for key, value in result.items():
            arrays[key] = value.permute(0, 2, 3, 1).numpy().astype(np.float32)
        np.savez_compressed(folder / f"{name}.npz", **arrays)
    (folder / "versions.json").write_text(json.dumps(
        {"torch": torch.__version__, "torchvision": tv.__version__}, indent=1) + "\n")


make_fixtures = write_fixtures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    write_fixtures(parser.parse_args(argv).out)


if __name__ == "__main__":
    main()
