"""Check kzoo's StyleGAN2 networks against rosinality/stylegan2-pytorch's, numerically (dev only).

    python scripts/check_stylegan2_rosinality.py /path/to/stylegan2-pytorch

Needs torch (`pip install torch==2.13.0`) and a checkout of rosinality/stylegan2-pytorch
(checked at commit bef283a1c24087da704d16c30abc8e36e63efa0e). Its CUDA ops are replaced by
CPU stand-ins (its own `upfirdn2d_native`, F.leaky_relu for the fused activation, plain
F.conv2d / F.conv_transpose2d for conv2d_gradfix). A small random Generator and
Discriminator (32x32, style 32, 2 mapping layers, random biases and noise weights) are
copied into kzoo's networks by the key table of `kzoo.models.stylegan2`, and the outputs
are compared: mapping, synthesis (also with style mixing) and discriminator. Measured
2026-12-07: max abs errors 8.6e-7 (mapping), 1.5e-5 (synthesis, outputs up to 6.9; mixed: 1.5e-5),
2.3e-6 (discriminator).
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

OP_STUB = '''
import types
import torch
from torch import nn
from torch.nn import functional as F

def fused_leaky_relu(input, bias=None, negative_slope=0.2, scale=2 ** 0.5):
    if bias is not None:
        input = input + bias.view(1, -1, *([1] * (input.ndim - 2)))
    return F.leaky_relu(input, negative_slope=negative_slope) * scale

class FusedLeakyReLU(nn.Module):
    def __init__(self, channel, bias=True, negative_slope=0.2, scale=2 ** 0.5):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None
        self.negative_slope, self.scale = negative_slope, scale

    def forward(self, input):
        return fused_leaky_relu(input, self.bias, self.negative_slope, self.scale)

_ns = {"torch": torch, "F": F}
_src = open(__file__.replace("__init__.py", "upfirdn2d_src.py")).read()
exec(_src[_src.index("def upfirdn2d_native"):], _ns)

def upfirdn2d(input, kernel, up=1, down=1, pad=(0, 0)):
    pad = (pad[0], pad[1], pad[0], pad[1]) if len(pad) == 2 else pad
    return _ns["upfirdn2d_native"](input, kernel, up, up, down, down, *pad)

conv2d_gradfix = types.SimpleNamespace(conv2d=F.conv2d, conv_transpose2d=F.conv_transpose2d)
'''


def torch_conv(w):
    """(out, in, k, k) -> (k, k, in, out)."""
    return w.transpose(2, 3, 1, 0)


def generator_value(key, t):
    """rosinality generator tensor `t` of `key` in kzoo's layout."""
    if key.endswith("input.input"):
        return t.transpose(0, 2, 3, 1)
    if t.ndim == 5:  # ModulatedConv2d weight (1, out, in, k, k)
        return torch_conv(t[0])
    if t.ndim == 4:  # ToRGB bias (1, C, 1, 1)
        return t.reshape(-1)
    return t.T if t.ndim == 2 else t


def generator_key(layer, path):
    """rosinality key of kzoo weight `path` (e.g. "convs_0/conv/modulation/kernel") in `layer`."""
    name = layer.name
    prefix = {"input": "input", "conv1": "conv1", "to_rgb1": "to_rgb1"}.get(name)
    if prefix is None:
        base, index = name.rsplit("_", 1)
        prefix = f"{'style' if base == 'style' else base}.{index}"
    rest = path.split("/")[1:]
    if name == "input":
        return "input.input"
    rest = ["weight" if r == "kernel" else r for r in rest]
    return ".".join([prefix, *rest])


def discriminator_key(name, path):
    rest = path.split("/")[1:]
    if name == "convs_0":
        return "convs.0.0.weight" if rest[0] == "kernel" else "convs.0.1.bias"
    if name.startswith("convs_"):
        i, (sub, w) = name.split("_")[1], rest
        if sub == "skip":
            return f"convs.{i}.skip.1.weight"
        o = 1 if sub == "conv2" else 0  # conv2's Sequential starts with its Blur
        return f"convs.{i}.{sub}.{o}.weight" if w == "kernel" else f"convs.{i}.{sub}.{o + 1}.bias"
    if name == "final_conv":
        return "final_conv.0.weight" if rest[0] == "kernel" else "final_conv.1.bias"
    return f"final_linear.{name[-1]}.{'weight' if rest[0] == 'kernel' else 'bias'}"


def main(repo):
    import torch

    repo = Path(repo)
    tmp = Path(tempfile.mkdtemp())
    (tmp / "op").mkdir()
    (tmp / "op" / "__init__.py").write_text(OP_STUB)
    (tmp / "op" / "upfirdn2d_src.py").write_text((repo / "op" / "upfirdn2d.py").read_text())
    (tmp / "rosinality_model.py").write_text((repo / "model.py").read_text())
    sys.path.insert(0, str(tmp))
    import rosinality_model as R

    from kzoo.models.stylegan2 import (
        discriminator_network,
        mapping_network,
        num_ws,
        synthesis_network,
    )

    size, style, n_mlp, cm = 32, 32, 2, 1
    torch.manual_seed(0)
    G = R.Generator(size, style, n_mlp, channel_multiplier=cm).eval()
    D = R.Discriminator(size, channel_multiplier=cm)
    with torch.no_grad():
        for n, p in [*G.named_parameters(), *D.named_parameters()]:
            if n.endswith(("noise.weight", "bias")):
                p.normal_(0, 0.3)
    sd = {k: v.detach().numpy() for k, v in G.state_dict().items()}
    mapping = mapping_network(latent_dim=style, n_mlp=n_mlp)
    synthesis = synthesis_network(image_size=size, channels=3, w_dim=style, channel_multiplier=cm)
    for net in (mapping, synthesis):
        for layer in net.layers:
            for v in layer.weights:
                v.assign(generator_value(generator_key(layer, v.path), sd[generator_key(layer, v.path)]))
    z = torch.randn(3, style)
    noise = [torch.randn(3, 1, s, s) for s in (2 ** ((i + 5) // 2) for i in range(G.num_layers))]
    noise_k = [n.numpy().transpose(0, 2, 3, 1) for n in noise]
    with torch.no_grad():
        w, w2 = G.style(z), G.style(torch.randn(3, style))
        image, _ = G([w], input_is_latent=True, noise=noise)
        mixed, latents = G([w, w2], input_is_latent=True, noise=noise, inject_index=3, return_latents=True)
    print("mapping max error", np.abs(np.asarray(mapping(z.numpy())) - w.numpy()).max())
    ws = np.repeat(w.numpy()[:, None], num_ws(size), 1)
    for what, ws_, ref in (("synthesis", ws, image), ("mixed synthesis", latents.numpy(), mixed)):
        out = np.asarray(synthesis([ws_, *noise_k]))
        print(f"{what} max error", np.abs(out - ref.numpy().transpose(0, 2, 3, 1)).max(),
              "of outputs up to", float(ref.abs().max()))
    dsd = {k: v.detach().numpy() for k, v in D.state_dict().items()}
    d = discriminator_network(image_size=size, channels=3, channel_multiplier=cm)
    for layer in d.layers:
        for v in layer.weights:
            key = discriminator_key(layer.name, v.path)
            t = dsd[key]
            if key == "final_linear.0.weight":  # NCHW flatten -> NHWC flatten
                t = t.reshape(t.shape[0], -1, 4, 4).transpose(2, 3, 1, 0).reshape(-1, t.shape[0])
            else:
                t = torch_conv(t) if t.ndim == 4 else (t.T if t.ndim == 2 else t)
            v.assign(t)
    x = torch.randn(8, 3, size, size)
    with torch.no_grad():
        ref = D(x).numpy()
    print("discriminator max error", np.abs(np.asarray(d(x.numpy().transpose(0, 2, 3, 1))) - ref).max())


if __name__ == "__main__":
    main(sys.argv[1])
