"""Write the reference-network fixtures the converter parity tests read (needs torch).

    pip install -e '.[reference]'        # torch (CPU) + diffusers: never needed by CI
    python scripts/make_reference_fixtures.py [--out tests/fixtures/reference]

For each junyanz generator variant (pytorch-CycleGAN-and-pix2pix `models/networks.py`)
the script builds the network in PyTorch at a small configuration with seeded random
weights -- batch norm with non-trivial running statistics -- and writes, in eval mode:

    <variant>.pth   the state dict, `torch.save` (zip format of torch >= 1.6)
    <variant>.npz   `input` and `output` (NHWC float32) and the `config` as JSON
    junyanz_legacy.pth   one state dict in the pre-1.6 stream format (reader test)
    junyanz_full_size.json   {arch: [[name, shape], ...]} of the published architectures
                             (ngf 64: unet_256, unet_128, resnet_9blocks, resnet_6blocks)
    unet_batch_dropout_authors.npz   the same network on the same inputs in the authors'
        default test mode (test.py without --eval: train mode, one image per batch):
        `batch_stats` -- the outputs with batch-norm batch statistics and dropout disabled
        (exact), and for the first input `dropout_mean` / `dropout_std` (float16) over
        `draws` dropout draws
    unet_256_tiny.pth   an 8-level unet_256 state dict at ngf 1 (the published layout at
        a tiny width): what the local stand-in for the authors' host serves in tests

`--only authors` writes just the authors-mode files, from the committed
unet_batch_dropout.pth and .npz (the other fixtures stay byte for byte).

The torch modules below mirror networks.py's `UnetGenerator`/`UnetSkipConnectionBlock`
and `ResnetGenerator`/`ResnetBlock` module for module (same nesting, hence the same
state-dict names); they are fixture generators, not kzoo code. If the diffusers helper
`scripts/reference_fixtures_diffusers.py` is present, its `make_fixtures(out_dir)` adds
the DDPM fixtures to the same folder, and `scripts/reference_fixtures_sr.py` the
super-resolution ones (Real-ESRGAN, EDSR).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "reference"


def norm_layer(kind):
    """networks.py `get_norm_layer`: batch (affine, running stats) or instance (no affine, no stats)."""
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)


class UnetSkipConnectionBlock(nn.Module):
    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False,
                 innermost=False, norm="batch", use_dropout=False):
        super().__init__()
        self.outermost = outermost
        use_bias = norm == "instance"
        make_norm = norm_layer(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            model = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1,
                                        bias=use_bias)
            model = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, make_norm(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1,
                                        bias=use_bias)
            model = [nn.LeakyReLU(0.2, True), downconv, make_norm(inner_nc), submodule,
                     nn.ReLU(True), upconv, make_norm(outer_nc)]
            if use_dropout:
                model.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, num_downs, ngf=64, norm="batch", use_dropout=False):
        super().__init__()
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, norm=norm, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm,
                                            use_dropout=use_dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block,
                                             outermost=True, norm=norm)

    def forward(self, x):
        return self.model(x)


class ResnetBlock(nn.Module):
    def __init__(self, dim, norm, use_dropout, use_bias):
        super().__init__()
        make_norm = norm_layer(norm)
        block = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), make_norm(dim),
                 nn.ReLU(True)]
        if use_dropout:
            block.append(nn.Dropout(0.5))
        block += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), make_norm(dim)]
        self.conv_block = nn.Sequential(*block)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, ngf=64, norm="instance", use_dropout=False, n_blocks=9):
        super().__init__()
        use_bias = norm == "instance"
        make_norm = norm_layer(norm)
        model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=use_bias), make_norm(ngf),
                 nn.ReLU(True)]
        for i in range(2):
            mult = 2 ** i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=use_bias),
                      make_norm(ngf * mult * 2), nn.ReLU(True)]
        model += [ResnetBlock(ngf * 4, norm, use_dropout, use_bias) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            model += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                         output_padding=1, bias=use_bias),
                      make_norm(ngf * mult // 2), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


# name -> (builder, small config, input size); the converter's architecture names
SMALL = {
    "unet_batch_dropout": (UnetGenerator, dict(input_nc=3, output_nc=3, num_downs=6, ngf=2,
                                               norm="batch", use_dropout=True), 64),
    "unet_instance": (UnetGenerator, dict(input_nc=1, output_nc=3, num_downs=5, ngf=4,
                                          norm="instance", use_dropout=False), 32),
    "resnet_instance": (ResnetGenerator, dict(input_nc=3, output_nc=3, ngf=4, norm="instance",
                                              n_blocks=2), 32),
    "resnet_batch": (ResnetGenerator, dict(input_nc=3, output_nc=3, ngf=4, norm="batch",
                                           n_blocks=1), 32),
}
FULL = {
    "unet_256": (UnetGenerator, dict(input_nc=3, output_nc=3, num_downs=8, ngf=64, norm="batch",
                                     use_dropout=True)),
    "unet_128": (UnetGenerator, dict(input_nc=3, output_nc=3, num_downs=7, ngf=64, norm="batch",
                                     use_dropout=True)),
    "resnet_9blocks": (ResnetGenerator, dict(input_nc=3, output_nc=3, ngf=64, norm="instance",
                                             n_blocks=9)),
    "resnet_6blocks": (ResnetGenerator, dict(input_nc=3, output_nc=3, ngf=64, norm="instance",
                                             n_blocks=6)),
}


def randomize(net, seed):
    """Seeded weights, including non-trivial batch-norm affine parameters and running stats."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):  # unit-variance outputs
                fan_in = m.weight[0].numel() if isinstance(m, nn.Conv2d) else \
                    m.weight.shape[0] * m.weight[0, 0].numel() / 4
                m.weight.normal_(0.0, float(fan_in) ** -0.5, generator=g)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.1, generator=g)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.normal_(1.0, 0.2, generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
                m.running_mean.normal_(0.0, 0.3, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.num_batches_tracked.fill_(100)


def make_junyanz(out: Path):
    for i, (name, (cls, config, size)) in enumerate(sorted(SMALL.items())):
        torch.manual_seed(i)
        net = cls(**config)
        randomize(net, seed=100 + i)
        net.eval()
        x = torch.rand(2, config["input_nc"], size, size, generator=torch.Generator().manual_seed(i))
        x = x * 2 - 1
        with torch.no_grad():
            y = net(x)
        torch.save(net.state_dict(), out / f"{name}.pth")
        np.savez_compressed(out / f"{name}.npz", input=x.permute(0, 2, 3, 1).numpy(),
                            output=y.permute(0, 2, 3, 1).numpy(),
                            config=json.dumps({"class": cls.__name__, **config}))
        if name == "resnet_batch":
            torch.save(net.state_dict(), out / "junyanz_legacy.pth",
                       _use_new_zipfile_serialization=False)
        print(f"{name}: {sum(v.numel() for v in net.state_dict().values())} values, "
              f"output range [{y.min():.3f}, {y.max():.3f}], "
              f"saturated {(y.abs() > 0.99).float().mean():.1%}")
    full = {}
    for name, (cls, config) in FULL.items():
        state = cls(**config).state_dict()
        full[name] = [[k, list(v.shape)] for k, v in state.items()]
    (out / "junyanz_full_size.json").write_text(json.dumps(full, indent=0) + "\n")


AUTHORS_DRAWS = 2000


def authors_mode(net, x):
    """`net` on each image of `x` alone in the authors' default test mode: test.py
    without --eval leaves the model in train mode (`model.eval()` only under `if
    opt.eval:`) and runs one image per batch (`opt.batch_size = 1`)."""
    net.train()
    with torch.no_grad():
        return torch.cat([net(x[i:i + 1]) for i in range(len(x))])


def make_authors(out: Path):
    """unet_batch_dropout in train mode: batch statistics without dropout (exact), and
    the per-output mean and std over many dropout draws (statistical comparison)."""
    import copy

    cls, config, _ = SMALL["unet_batch_dropout"]
    net = cls(**config)
    net.load_state_dict(torch.load(out / "unet_batch_dropout.pth"))
    data = np.load(out / "unet_batch_dropout.npz")
    x = torch.from_numpy(data["input"]).permute(0, 3, 1, 2).contiguous()
    no_dropout = copy.deepcopy(net)
    for m in no_dropout.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    batch_stats = authors_mode(no_dropout, x)
    torch.manual_seed(1234)
    draws = torch.stack([authors_mode(net, x[:1])[0] for _ in range(AUTHORS_DRAWS)])
    mean, std = draws.mean(0), draws.std(0)
    np.savez_compressed(out / "unet_batch_dropout_authors.npz",
                        batch_stats=batch_stats.permute(0, 2, 3, 1).numpy(),
                        dropout_mean=mean.permute(1, 2, 0).numpy(),
                        dropout_std=std.permute(1, 2, 0).numpy().astype(np.float16),  # a spread
                        draws=AUTHORS_DRAWS)
    eval_out = torch.from_numpy(data["output"]).permute(0, 3, 1, 2)
    print(f"unet_batch_dropout authors mode: batch statistics differ from eval by up to "
          f"{(batch_stats - eval_out).abs().max():.3f}; dropout std mean {std.mean():.4f}, "
          f"max {std.max():.4f} over {AUTHORS_DRAWS} draws")
    tiny = UnetGenerator(input_nc=3, output_nc=3, num_downs=8, ngf=1, norm="batch", use_dropout=True)
    randomize(tiny, seed=200)
    torch.save(tiny.state_dict(), out / "unet_256_tiny.pth")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--only", choices=("authors",), help="write only these fixtures")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small networks: threads only contend
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only == "authors":
        make_authors(args.out)
        return 0
    make_junyanz(args.out)
    make_authors(args.out)
    for stem in ("reference_fixtures_diffusers", "reference_fixtures_sr"):
        helper = Path(__file__).with_name(f"{stem}.py")
        if helper.is_file():
            spec = importlib.util.spec_from_file_location(stem, helper)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            module.make_fixtures(args.out)
    total = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    print(f"{args.out}: {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
