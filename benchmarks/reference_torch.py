"""The PyTorch networks a user would otherwise run, for `benchmarks/paper.py` (needs torch).

    pip install -e '.[reference]'    # torch (CPU), diffusers: never installed by CI
    python -m benchmarks.reference_torch [--basicsr PATH] [--junyanz PATH] [--batch 1]

`build(key)` returns `(module in eval mode, input size)` for each paper-size workload of
`benchmarks.paper.MODELS`, at the authors' options:

- `unet_256`, `resnet_9blocks`: the junyanz generators. With `--junyanz PATH` (a clone of
  junyanz/pytorch-CycleGAN-and-pix2pix, or its `models/networks.py`), its `define_G(3, 3,
  64, arch, norm, use_dropout)` builds them; else the module-for-module mirror of
  networks.py in `scripts/make_reference_fixtures.py` (same nesting and state-dict names,
  checked by the converter fixtures). Options: pix2pix's `unet_256` with batch norm and
  dropout, CycleGAN's `resnet_9blocks` with instance norm, no dropout (the two
  `train.py` presets, `options/base_options.py`, `models/pix2pix_model.py`,
  `models/cycle_gan_model.py`); eval mode (`test.py --eval`).
- `realesrgan_x4`: `RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23,
  num_grow_ch=32, scale=4)`, RealESRGAN_x4plus in xinntao/Real-ESRGAN
  `inference_realesrgan.py`. With `--basicsr PATH` (a clone of XPixelGroup/BasicSR, or its
  `basicsr/archs/rrdbnet_arch.py`) the authors' file is imported -- its registry and
  `arch_util` helpers (`make_layer`, `pixel_unshuffle`, `default_init_weights`) are
  replaced by plain stand-ins here, so BasicSR's compiled ops and its `distutils` import
  are not needed; else the mirror in `scripts/reference_fixtures_sr.py`.
- `ddpm_cifar10`: diffusers' `UNet2DModel(**config)` with google/ddpm-cifar10-32's
  `unet/config.json` (as recorded in tests/fixtures/reference/diffusers/full_size.json by
  `scripts/reference_fixtures_diffusers.py`), called as `unet(x, t).sample`.

Weights are seeded PyTorch initialisations: timing does not depend on their values.
Nothing from the authors' repositories is part of kzoo; the paths are the user's.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PATHS = {"junyanz": os.environ.get("KZOO_JUNYANZ"), "basicsr": os.environ.get("KZOO_BASICSR")}
"""User-supplied paths of the authors' code (set by the flags or the environment)."""


def _load(path, name, package=None):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    if package:
        module.__package__ = package
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _file(path, inside):
    path = Path(path)
    return path if path.is_file() else path / inside


def junyanz_generator(arch):
    import torch  # noqa: F401

    if PATHS["junyanz"]:
        networks = _load(_file(PATHS["junyanz"], "models/networks.py"), "junyanz_networks")
        if arch == "unet_256":
            return networks.define_G(3, 3, 64, arch, norm="batch", use_dropout=True)
        return networks.define_G(3, 3, 64, arch, norm="instance", use_dropout=False)
    mirror = _load(REPO / "scripts" / "make_reference_fixtures.py", "kzoo_junyanz_mirror")
    if arch == "unet_256":
        return mirror.UnetGenerator(3, 3, 8, 64, norm="batch", use_dropout=True)
    return mirror.ResnetGenerator(3, 3, 64, norm="instance", use_dropout=False, n_blocks=9)


def rrdbnet():
    import torch

    options = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 23, "num_grow_ch": 32, "scale": 4}
    if PATHS["basicsr"]:
        def make_layer(block, n, **kw):
            return torch.nn.Sequential(*[block(**kw) for _ in range(n)])

        registry = types.SimpleNamespace(register=lambda *a, **k: (lambda cls: cls))
        stubs = {"basicsr": types.ModuleType("basicsr"), "basicsr.archs": types.ModuleType("basicsr.archs"),
                 "basicsr.utils": types.ModuleType("basicsr.utils"),
                 "basicsr.utils.registry": types.SimpleNamespace(ARCH_REGISTRY=registry),
                 "basicsr.archs.arch_util": types.SimpleNamespace(
                     make_layer=make_layer, default_init_weights=lambda *a, **k: None,
                     pixel_unshuffle=lambda x, scale: torch.nn.functional.pixel_unshuffle(x, scale))}
        sys.modules.update(stubs)
        module = _load(_file(PATHS["basicsr"], "basicsr/archs/rrdbnet_arch.py"),
                       "basicsr.archs.rrdbnet_arch", package="basicsr.archs")
        return module.RRDBNet(**options)
    mirror = _load(REPO / "scripts" / "reference_fixtures_sr.py", "kzoo_sr_mirror")
    return mirror.RRDBNet(**options)


def ddpm_cifar10_config():
    full = json.loads((REPO / "tests/fixtures/reference/diffusers/full_size.json").read_text())
    return full["google/ddpm-cifar10-32"]["config"]


def ddpm_unet():
    from diffusers import UNet2DModel

    config = {k: v for k, v in ddpm_cifar10_config().items() if not k.startswith("_")}
    unet = UNet2DModel(**config)
    return lambda x, t: unet(x, t).sample, unet


def build(key):
    """`(call, module, input size)`: `call(x)` (NCHW float32 tensor; DDPM: `call(x, t)`)."""
    import torch

    torch.manual_seed(0)
    if key in ("unet_256", "resnet_9blocks"):
        module = junyanz_generator(key)
        call, size = module, 256
    elif key == "realesrgan_x4":
        module = rrdbnet()
        call, size = module, None
    elif key == "ddpm_cifar10":
        call, module = ddpm_unet()
        size = 32
    else:
        raise KeyError(key)
    module.eval()
    return call, module, size


def runner(key, feeds):
    """A no-argument function running the reference on kzoo's NHWC `feeds` (same values)."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    call, module, _ = build(key)
    images = [v for v in feeds.values() if v.ndim == 4]
    steps = [v for v in feeds.values() if v.ndim == 1]  # a DDPM's timesteps
    x = torch.from_numpy(images[0]).permute(0, 3, 1, 2).contiguous()
    args = (x,) + tuple(torch.from_numpy(t).long() for t in steps)

    def run():
        with torch.inference_mode():
            return call(*args)

    return run, sum(p.numel() for p in module.parameters())


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.reference_torch", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="unet_256,resnet_9blocks,ddpm_cifar10,realesrgan_x4")
    p.add_argument("--junyanz", help="junyanz/pytorch-CycleGAN-and-pix2pix clone (or models/networks.py)")
    p.add_argument("--basicsr", help="XPixelGroup/BasicSR clone (or basicsr/archs/rrdbnet_arch.py)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--sr-size", type=int, default=128, help="Real-ESRGAN input size (default 128)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    PATHS.update({k: getattr(args, k) or v for k, v in PATHS.items()})
    import numpy as np

    for key in args.models.split(","):
        size = {"ddpm_cifar10": 32, "realesrgan_x4": args.sr_size}.get(key, 256)
        feeds = {"x": np.random.default_rng(0).uniform(-1, 1, (args.batch, size, size, 3)).astype("float32")}
        if key == "ddpm_cifar10":
            feeds["t"] = np.full((args.batch,), 500, "int64")
        run, params = runner(key, feeds)
        run()
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
        print(f"{key}: {params / 1e6:.1f} M parameters, batch {args.batch} at {size}x{size}: "
              f"{1000 * sorted(times)[len(times) // 2]:.1f} ms (median of {args.repeats})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
