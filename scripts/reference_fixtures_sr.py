"""Write the super-resolution reference fixtures (`kzoo.hub.convert.sr`; needs torch).

    python scripts/reference_fixtures_sr.py [--out tests/fixtures/reference]
    (also run by scripts/make_reference_fixtures.py)

The torch modules below reproduce the authors' modules as far as needed to instantiate
them with the same state-dict names and to run them (no registry, no init helpers):

- `ResidualDenseBlock`, `RRDB`, `RRDBNet`, `pixel_unshuffle`: xinntao/BasicSR
  `basicsr/archs/rrdbnet_arch.py` and `arch_util.py` (the x2 / x1 input unshuffle of
  the Real-ESRGAN era; the 2021-01 snapshot `basicsr/models/archs/rrdbnet_arch.py`
  has the same x4 network without it);
- `SRVGGNetCompact`: xinntao/Real-ESRGAN `realesrgan/archs/srvgg_arch.py`;
- `MeanShift`, `ResBlock`, `Upsampler`, `EDSR`: sanghyun-son/EDSR-PyTorch
  `src/model/common.py`, `src/model/edsr.py` (`rgb_range` 255, `res_scale` 1 are
  `src/option.py`'s defaults; the paper's model uses 0.1, `src/demo.sh:11`).

Writes into `<out>/sr/`, at small configurations with seeded random weights:

    <variant>.pth   what the authors' files hold: Real-ESRGAN's `{"params_ema": ...}`
                    (x4 also with a different `"params"`, which RealESRGANer ignores when
                    `params_ema` exists) or `{"params": ...}`, EDSR's bare state dict
    <variant>.npz   `input` and `output`, NHWC float32 in the network's own range
                    ([0, 1]; EDSR [0, 255]), and the `config` as JSON

and `<out>/sr_full_size.json`: {catalog name: [[name, shape], ...]} of the published
full-size networks (the configs of Real-ESRGAN's `inference_realesrgan.py` model table
and EDSR's `url` dict).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "reference"


# --- BasicSR basicsr/archs/rrdbnet_arch.py, arch_util.py ----------------------------

def pixel_unshuffle(x, scale):
    b, c, hh, hw = x.size()
    h, w = hh // scale, hw // scale
    return x.view(b, c, h, scale, w, scale).permute(0, 1, 3, 5, 2, 4).reshape(b, c * scale ** 2, h, w)


class ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat=64, num_grow_ch=32):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, num_feat, num_grow_ch=32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x):
        out = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * 0.2 + x


class RRDBNet(nn.Module):
    def __init__(self, num_in_ch, num_out_ch, scale=4, num_feat=64, num_block=23, num_grow_ch=32):
        super().__init__()
        self.scale = scale
        if scale == 2:
            num_in_ch = num_in_ch * 4
        elif scale == 1:
            num_in_ch = num_in_ch * 16
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        if self.scale == 2:
            feat = pixel_unshuffle(x, scale=2)
        elif self.scale == 1:
            feat = pixel_unshuffle(x, scale=4)
        else:
            feat = x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


# --- Real-ESRGAN realesrgan/archs/srvgg_arch.py ---------------------------------------

class SRVGGNetCompact(nn.Module):
    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4,
                 act_type="prelu"):
        super().__init__()
        self.upscale = upscale
        self.body = nn.ModuleList()
        self.body.append(nn.Conv2d(num_in_ch, num_feat, 3, 1, 1))
        self.body.append(self._act(act_type, num_feat))
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(self._act(act_type, num_feat))
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    @staticmethod
    def _act(act_type, num_feat):
        if act_type == "relu":
            return nn.ReLU(inplace=True)
        if act_type == "prelu":
            return nn.PReLU(num_parameters=num_feat)
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


# --- EDSR-PyTorch src/model/common.py, src/model/edsr.py -------------------------------

def default_conv(in_channels, out_channels, kernel_size, bias=True):
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Conv2d):
    def __init__(self, rgb_range, rgb_mean=(0.4488, 0.4371, 0.4040), rgb_std=(1.0, 1.0, 1.0),
                 sign=-1):
        super().__init__(3, 3, kernel_size=1)
        std = torch.Tensor(rgb_std)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        self.bias.data = sign * rgb_range * torch.Tensor(rgb_mean) / std
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    def __init__(self, conv, n_feats, kernel_size, bias=True, act=nn.ReLU(True), res_scale=1):
        super().__init__()
        self.body = nn.Sequential(conv(n_feats, n_feats, kernel_size, bias=bias), act,
                                  conv(n_feats, n_feats, kernel_size, bias=bias))
        self.res_scale = res_scale

    def forward(self, x):
        res = self.body(x).mul(self.res_scale)
        res += x
        return res


class Upsampler(nn.Sequential):
    def __init__(self, conv, scale, n_feats, bias=True):
        m = []
        if (scale & (scale - 1)) == 0:
            for _ in range(int(math.log(scale, 2))):
                m.append(conv(n_feats, 4 * n_feats, 3, bias))
                m.append(nn.PixelShuffle(2))
        elif scale == 3:
            m.append(conv(n_feats, 9 * n_feats, 3, bias))
            m.append(nn.PixelShuffle(3))
        super().__init__(*m)


class EDSR(nn.Module):
    def __init__(self, n_resblocks=16, n_feats=64, scale=2, rgb_range=255, n_colors=3,
                 res_scale=1, conv=default_conv):
        super().__init__()
        self.sub_mean = MeanShift(rgb_range)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(conv(n_colors, n_feats, 3))
        self.body = nn.Sequential(*[ResBlock(conv, n_feats, 3, act=nn.ReLU(True), res_scale=res_scale)
                                    for _ in range(n_resblocks)], conv(n_feats, n_feats, 3))
        self.tail = nn.Sequential(Upsampler(conv, scale, n_feats), conv(n_feats, n_colors, 3))

    def forward(self, x):
        x = self.head(self.sub_mean(x))
        res = self.body(x)
        res += x
        return self.add_mean(self.tail(res))


# --- fixtures ---------------------------------------------------------------------

# variant -> (module, its constructor arguments, the wrapper key(s) of the saved file, range)
VARIANTS = {
    "rrdb_x4": (RRDBNet, dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=2, num_grow_ch=4,
                              scale=4), ("params_ema", "params"), 1.0),
    "rrdb_x2": (RRDBNet, dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4,
                              scale=2), ("params",), 1.0),
    "srvgg_x4": (SRVGGNetCompact, dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=3,
                                       upscale=4, act_type="prelu"), ("params",), 1.0),
    "edsr_x2": (EDSR, dict(n_resblocks=2, n_feats=8, scale=2), (), 255.0),
    "edsr_x3_res0.1": (EDSR, dict(n_resblocks=2, n_feats=8, scale=3, res_scale=0.1), (), 255.0),
    "edsr_x4": (EDSR, dict(n_resblocks=1, n_feats=8, scale=4), (), 255.0),
}

# The published networks: Real-ESRGAN inference_realesrgan.py model table, EDSR url dict.
FULL_SIZE = {
    "RealESRGAN_x4plus": (RRDBNet, dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23,
                                        num_grow_ch=32, scale=4)),
    "RealESRGAN_x2plus": (RRDBNet, dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23,
                                        num_grow_ch=32, scale=2)),
    "realesr-animevideov3": (SRVGGNetCompact, dict(num_in_ch=3, num_out_ch=3, num_feat=64,
                                                   num_conv=16, upscale=4, act_type="prelu")),
    "realesr-general-x4v3": (SRVGGNetCompact, dict(num_in_ch=3, num_out_ch=3, num_feat=64,
                                                   num_conv=32, upscale=4, act_type="prelu")),
    **{f"edsr_baseline_x{s}": (EDSR, dict(n_resblocks=16, n_feats=64, scale=s)) for s in (2, 3, 4)},
    **{f"edsr_x{s}": (EDSR, dict(n_resblocks=32, n_feats=256, scale=s, res_scale=0.1))
       for s in (2, 3, 4)},
}


def _randomize(module, seed):
    """Seeded weights of the default init's scale; PReLU slopes varied per channel."""
    torch.manual_seed(seed)
    for name, p in module.named_parameters():
        if name.endswith("mean.weight") or name.endswith("mean.bias"):
            continue  # EDSR's MeanShift is fixed
        with torch.no_grad():
            if p.ndim == 1 and "body" in name and isinstance(module, SRVGGNetCompact) and \
                    name.endswith("weight"):
                p.uniform_(0.0, 0.5)
            elif p.ndim == 1:
                p.uniform_(-0.1, 0.1)


def make_fixtures(out_dir: Path):
    folder = Path(out_dir) / "sr"
    folder.mkdir(parents=True, exist_ok=True)
    for i, (variant, (cls, config, wrappers, top)) in enumerate(VARIANTS.items()):
        torch.manual_seed(100 + i)
        net = cls(**config).eval()
        _randomize(net, 200 + i)
        state = net.state_dict()
        if not wrappers:
            saved = state
        else:
            saved = {wrappers[0]: state}
            for other in wrappers[1:]:  # a decoy that must not be loaded
                saved[other] = {k: torch.randn_like(v) for k, v in state.items()}
        torch.save(saved, folder / f"{variant}.pth")
        rng = np.random.default_rng(300 + i)
        x = (rng.uniform(0, 1, (2, 3, 8, 12)) * top).astype(np.float32)
        with torch.no_grad():
            y = net(torch.from_numpy(x)).numpy()
        np.savez_compressed(folder / f"{variant}.npz", input=x.transpose(0, 2, 3, 1),
                            output=y.transpose(0, 2, 3, 1),
                            config=json.dumps(dict(config, module=cls.__name__)))
        print(f"{variant}: {sum(v.numel() for v in state.values())} parameters, output range "
              f"{y.min():.3f}..{y.max():.3f}")
    full = {}
    for name, (cls, config) in FULL_SIZE.items():
        net = cls(**config)
        full[name] = [[k, list(v.shape)] for k, v in net.state_dict().items()]
    (Path(out_dir) / "sr_full_size.json").write_text(full_size_json(full))


def full_size_json(full):
    """{name: [[param, shape], ...]} with one parameter a line."""
    return "{\n" + ",\n".join(
        f"{json.dumps(name)}: [\n" + ",\n".join(json.dumps(p) for p in params) + "\n]"
        for name, params in full.items()) + "\n}\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    make_fixtures(parser.parse_args(argv).out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
