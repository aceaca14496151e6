"""Write the StyleGAN2 converter fixtures (`kzoo.hub.convert.stylegan2`; needs torch).

    git clone https://github.com/rosinality/stylegan2-pytorch /tmp/stylegan2-pytorch  # never committed
    python scripts/reference_fixtures_stylegan2.py --rosinality /tmp/stylegan2-pytorch \
        [--out tests/fixtures/reference]

The networks are rosinality's own `model.Generator` (stylegan2-pytorch `model.py`, read at
commit bef283a, 2021-11-24), imported from the folder given, run on the CPU. Its `op`
package compiles CUDA extensions when imported (`op/fused_act.py`, `op/upfirdn2d.py` call
`torch.utils.cpp_extension.load` at module level); on a CPU tensor they never call them
(`fused_leaky_relu` and `upfirdn2d` take their native PyTorch branches when
`input.device.type == "cpu"`), so `load` is stubbed while importing.

`Generator.__init__` hard-codes its channel table (512 up to 32 px, `256 *
channel_multiplier` at 64 px, halving per octave). To keep the fixtures small,
`ScaledGenerator` divides that table by `divisor` as `__init__` assigns it (the rest of the
reference code runs unchanged): the converter reads every width from the state dict.

Writes into `<out>/stylegan2/`, with seeded random weights (biases, noise strengths and the
ToRGB biases non-zero):

    cm1_64.pt   size 64, channel multiplier 1, table / 32 ({4..32: 16, 64: 8}), style_dim 16,
                n_mlp 2: what rosinality's `train.py` saves (zip format of torch >= 1.6):
                {"g", "d", "g_ema", "g_optim", "d_optim", "args", "ada_aug_p"}
                (train.py:318-329), `args` an `argparse.Namespace` with train.py's option
                names. `g` holds other weights than `g_ema` (it must not be converted);
                `d` is a stand-in (its `Discriminator`'s channel table is a local variable
                that cannot be scaled: a full one would weigh 100 MB) with a few of its
                names; the optimiser states are real Adam states after one step.
    cm2_128.pt  size 128, channel multiplier 2, table / 64 ({4..64: 8, 128: 4}),
                style_dim 8, n_mlp 3: what `convert_weight.py` saves from NVIDIA's
                official pickles ({"g_ema", "latent_avg"}, convert_weight.py:254,269), in
                the pre-1.6 stream format; `latent_avg` stands for NVIDIA's `dlatent_avg`
                (here the mean of 4096 mapped z).
    <variant>.npz   `z` (B, style_dim), `noise_<i>` ((1, H, W, 1): rosinality's fixed
                noise, NHWC), `mean_latent` (1, style_dim: `g_ema.mean_latent(4096)`, the
                default `--truncation_mean` of generate.py), `w` (the mapping of `z`),
                `image` (truncation 1) and `image_trunc` (truncation 0.7 towards
                `mean_latent`): NHWC float32 in the generator's range, and `config`
                (JSON).

and `<out>/stylegan2_full_size.json`: {"<size>_cm<m>": [[name, shape], ...]} of
`Generator(size, 512, 8, channel_multiplier=m).state_dict()` (train.py:441-442 sets
latent 512 and n_mlp 8) for sizes 256, 512, 1024 and multipliers 1, 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_fixtures_sr import full_size_json  # noqa: E402  (one layout for both)

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "reference"

# variant -> (size, channel multiplier, table divisor, style_dim, n_mlp, batch, file layout)
VARIANTS = {
    "cm1_64": (64, 1, 32, 16, 2, 2, "train"),
    "cm2_128": (128, 2, 64, 8, 3, 1, "convert_weight"),
}
TRUNCATION = 0.7
TRUNCATION_MEAN = 4096  # generate.py --truncation_mean default


def import_model(root: Path):
    """rosinality's `model` module from a checkout at `root` (CUDA extension loading stubbed)."""
    sys.path.insert(0, str(root))
    with mock.patch("torch.utils.cpp_extension.load", lambda *a, **k: None):
        return importlib.import_module("model")


def scaled_generator(model, divisor):
    class ScaledGenerator(model.Generator):
        """rosinality's Generator with its channel table divided by `divisor`."""

        def __setattr__(self, name, value):
            if name == "channels":
                value = {res: c // divisor for res, c in value.items()}
            super().__setattr__(name, value)

    return ScaledGenerator


def _randomize(net, seed):
    """Weights as trained ones differ from init: non-zero biases, noise strengths."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("bias", "noise.weight")):
                p.copy_(torch.rand(p.shape, generator=g) * 0.4 - 0.2)
            if name.endswith("modulation.bias"):
                p.add_(1.0)  # EqualLinear(style_dim, in_channel, bias_init=1)


def _adam_state(params):
    opt = torch.optim.Adam(params, lr=0.002, betas=(0.0, 0.99))
    sum((p.float() ** 2).sum() for p in params).backward()
    opt.step()
    return opt.state_dict()


def train_namespace(size, channel_multiplier, latent, n_mlp):
    """An `argparse.Namespace` with the option names of rosinality's train.py."""
    return argparse.Namespace(
        path="/data/ffhq-lmdb", arch="stylegan2", iter=800000, batch=16, n_sample=64,
        size=size, r1=10.0, path_regularize=2.0, path_batch_shrink=2, d_reg_every=16,
        g_reg_every=4, mixing=0.9, ckpt=None, lr=0.002, channel_multiplier=channel_multiplier,
        wandb=False, local_rank=0, augment=False, augment_p=0.0, ada_target=0.6,
        ada_length=500000, ada_every=256, distributed=False, latent=latent, n_mlp=n_mlp,
        start_iter=0)


def make_fixtures(out_dir: Path, rosinality: Path):
    model = import_model(Path(rosinality))
    folder = Path(out_dir) / "stylegan2"
    folder.mkdir(parents=True, exist_ok=True)
    for i, (variant, (size, cm, divisor, style_dim, n_mlp, batch, layout)) in \
            enumerate(VARIANTS.items()):
        cls = scaled_generator(model, divisor)
        torch.manual_seed(10 + i)
        g_ema = cls(size, style_dim, n_mlp, channel_multiplier=cm).eval()
        _randomize(g_ema, 20 + i)
        state = g_ema.state_dict()
        torch.manual_seed(30 + i)
        z = torch.randn(batch, style_dim)
        noise = [torch.randn(1, 1, 2 ** ((k + 5) // 2), 2 ** ((k + 5) // 2))
                 for k in range(g_ema.num_layers)]
        with torch.no_grad():
            torch.manual_seed(40 + i)
            mean_latent = g_ema.mean_latent(TRUNCATION_MEAN)
            w = g_ema.get_latent(z)
            image, _ = g_ema([z], noise=noise)
            trunc, _ = g_ema([z], noise=noise, truncation=TRUNCATION,
                             truncation_latent=mean_latent)
        if layout == "train":
            g = cls(size, style_dim, n_mlp, channel_multiplier=cm)
            _randomize(g, 50 + i)
            d = {"convs.0.0.weight": torch.randn(8, 3, 1, 1), "convs.0.1.bias": torch.randn(8),
                 "final_linear.1.weight": torch.randn(1, 8), "final_linear.1.bias": torch.randn(1)}
            d_params = [torch.nn.Parameter(v.clone()) for v in d.values()]
            saved = {"g": g.state_dict(), "d": d, "g_ema": state,
                     "g_optim": _adam_state(list(g.parameters())),
                     "d_optim": _adam_state(d_params),
                     "args": train_namespace(size, cm, style_dim, n_mlp),
                     "ada_aug_p": 0.0}
            torch.save(saved, folder / f"{variant}.pt")
        else:
            torch.save({"g_ema": state, "latent_avg": mean_latent[0].clone()},
                       folder / f"{variant}.pt", _use_new_zipfile_serialization=False)
        nhwc = lambda t: t.numpy().transpose(0, 2, 3, 1).astype(np.float32)
        config = {"size": size, "channel_multiplier": cm, "divisor": divisor,
                  "style_dim": style_dim, "n_mlp": n_mlp, "truncation": TRUNCATION,
                  "truncation_mean": TRUNCATION_MEAN, "layout": layout,
                  "channels": {str(k): v for k, v in g_ema.channels.items()}}
        np.savez_compressed(
            folder / f"{variant}.npz", z=z.numpy(), w=w.numpy(), mean_latent=mean_latent.numpy(),
            image=nhwc(image), image_trunc=nhwc(trunc), config=json.dumps(config),
            **{f"noise_{k}": nhwc(n) for k, n in enumerate(noise)})
        n_params = sum(p.numel() for p in g_ema.parameters())
        print(f"{variant}: {n_params} parameters, {len(state)} state-dict entries, image range "
              f"{image.min():.3f}..{image.max():.3f}")
    full = {}
    for size in (256, 512, 1024):
        for cm in (1, 2):
            net = model.Generator(size, 512, 8, channel_multiplier=cm)
            full[f"{size}_cm{cm}"] = [[k, list(v.shape)] for k, v in net.state_dict().items()]
    (Path(out_dir) / "stylegan2_full_size.json").write_text(full_size_json(full))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rosinality", type=Path, required=True,
                        help="a checkout of github.com/rosinality/stylegan2-pytorch")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    make_fixtures(args.out, args.rosinality)
    return 0


if __name__ == "__main__":
    sys.exit(main())
