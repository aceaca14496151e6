"""kzoo.hub.convert.sr: Real-ESRGAN and EDSR weights, converted, equal the reference outputs.

The fixtures are written by scripts/reference_fixtures_sr.py (the authors' modules in
PyTorch at small configurations, seeded random weights); CI needs no torch.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import kzoo.hub
from kzoo.errors import KzooError
from kzoo.hub import catalog
from kzoo.hub.convert import junyanz, sr
from kzoo.hub.convert.torchfile import load_state_dict

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "reference"
SR = FIXTURES / "sr"

# fixture -> (architecture given, or None for detection; the weights' own value range)
VARIANTS = {
    "rrdb_x4": (None, 1.0),  # params_ema beside a decoy params: RealESRGANer loads params_ema
    "rrdb_x2": (None, 1.0),  # pixel-unshuffled input, {"params": ...}
    "srvgg_x4": (None, 1.0),  # per-channel PReLU, pixel shuffle, nearest upsampled input added
    "edsr_x2": (None, 255.0),  # MeanShift, res_scale 1, bare state dict
    "edsr_x3_res0.1": ("EDSR_res0.1", 255.0),  # the x3 upsampler, residual scale 0.1
    "edsr_x4": (None, 255.0),  # two x2 pixel-shuffle stages
}


def _run(model, x, top):
    """The kzoo network ([-1, 1]) on an input in the weights' range, back in that range."""
    return (np.asarray(model(x / top * 2 - 1, training=False)) + 1) / 2 * top


@pytest.fixture(scope="module")
def converted():
    return {v: sr.convert_sr(load_state_dict(SR / f"{v}.pth"), arch) for v, (arch, _) in VARIANTS.items()}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_converted_network_reproduces_the_reference_outputs(converted, variant):
    data = np.load(SR / f"{variant}.npz")
    got, want = _run(converted[variant], data["input"], VARIANTS[variant][1]), data["output"]
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= sr.PROVEN_ERROR * np.ptp(want)
    assert np.abs(got - want).max() < 1e-2 * np.abs(want - want.mean()).max()  # not trivially


def test_configs_are_read_from_the_state_dict_and_the_file_wrappers():
    rrdb = load_state_dict(SR / "rrdb_x4.pth")
    assert sr.read_config("RRDBNet", rrdb) == dict(scale=4, channels=3, width=8, num_blocks=2, growth=4)
    assert sr.read_config("RRDBNet", load_state_dict(SR / "rrdb_x2.pth"))["scale"] == 2
    assert sr.read_config("SRVGGNetCompact", load_state_dict(SR / "srvgg_x4.pth")) == \
        dict(scale=4, channels=3, width=8, num_blocks=3)
    edsr = load_state_dict(SR / "edsr_x3_res0.1.pth")
    assert sr.read_config("EDSR", edsr) == dict(scale=3, channels=3, width=8, num_blocks=2, res_scale=1.0)
    assert sr.read_config("EDSR_res0.1", edsr)["res_scale"] == 0.1
    # the residual scale is not in the state dict: the wrong one gives another network
    data = np.load(SR / "edsr_x3_res0.1.npz")
    wrong = _run(sr.convert_sr(edsr), data["input"], 255.0)
    assert np.abs(wrong - data["output"]).max() > 1.0
    # RealESRGANer prefers params_ema; the decoy params would give another output
    from kzoo.hub.convert.torchfile import load_torch

    raw = load_torch(SR / "rrdb_x4.pth")
    assert set(raw) == {"params_ema", "params"}
    np.testing.assert_array_equal(rrdb["conv_first.weight"], raw["params_ema"]["conv_first.weight"])


def test_full_size_architectures_have_the_reference_names_shapes_and_counts():
    """The published networks (sr_full_size.json, from the authors' modules at the configs of
    Real-ESRGAN's model table and EDSR's url dict) against kzoo's table and Keras networks."""
    reference = json.loads((FIXTURES / "sr_full_size.json").read_text())
    arch = {e["name"]: e["upstream"]["arch"] for e in catalog.entries()
            if e.get("upstream", {}).get("format") in ("realesrgan", "edsr")}
    names = {"RealESRGAN_x4plus": "realesrgan-x4plus", "RealESRGAN_x2plus": "realesrgan-x2plus",
             **{n: n.replace("_", "-").lower() for n in reference if not n.startswith("RealESRGAN")}}
    assert set(names.values()) == set(arch)  # every catalog entry has its reference
    built = set()
    for name, params in reference.items():
        params = [(n, tuple(s)) for n, s in params]
        state = {n: np.broadcast_to(np.float32(0), s) for n, s in params}
        kind = arch[names[name]]
        assert sr.detect(state) == (kind, 0), name
        config = sr.read_config(kind, state)
        ours = [(n, shape) for n, _, _, shape, _ in sr.reference_params(kind, **config)]
        assert ours == params, name
        if name in ("edsr_x2", "edsr_x4", "RealESRGAN_x2plus"):
            continue  # built once per kind and width (~1,100 Keras layers for RRDBNet: ~20 s)
        model = sr.build(kind, **config)
        built.add(name)
        assert model.count_params() == sum(int(np.prod(s)) for _, s in params), name
        assert len(model.weights) == len(params), name
    assert set(reference) - built == {"edsr_x2", "edsr_x4", "RealESRGAN_x2plus"}
    assert sum(int(np.prod(s)) for _, s in reference["RealESRGAN_x4plus"]) == 16_697_987
    assert sr.read_config("EDSR", {n: np.broadcast_to(np.float32(0), s)
                                   for n, s in reference["edsr_x4"]})["res_scale"] == 0.1


def test_pixel_shuffle_channel_orders_are_permuted_not_ignored(converted):
    """Loading the last SRVGG conv without the permutation gives a wrong picture."""
    state = load_state_dict(SR / "srvgg_x4.pth")
    model = sr.convert_sr(state)
    layer = model.get_layer("body_8")
    layer.kernel.assign(state["body.8.weight"].transpose(2, 3, 1, 0))
    layer.bias.assign(state["body.8.bias"])
    data = np.load(SR / "srvgg_x4.npz")
    assert np.abs(_run(model, data["input"], 1.0) - data["output"]).max() > 1e-2


def test_a_state_dict_for_another_architecture_is_one_line_naming_what_it_is():
    edsr = load_state_dict(SR / "edsr_x2.pth")
    with pytest.raises(KzooError) as e:
        sr.convert_sr(edsr, "RRDBNet")
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("the state dict does not match --arch RRDBNet: conv_first.weight "
                              "(64, 3, 3, 3) is missing (722 mismatches in all)")
    assert message.endswith("; it is a EDSR state dict (--arch EDSR)")
    with pytest.raises(KzooError, match=r"--arch SRVGGNetCompact: body\.0\.weight is \(8, 3, 3, 3\)|"
                                        r"it is a RRDBNet state dict \(--arch RRDBNet\)$"):
        sr.convert_sr(load_state_dict(SR / "rrdb_x2.pth"), "SRVGGNetCompact")
    cyclegan = load_state_dict(FIXTURES / "resnet_instance.pth")
    with pytest.raises(KzooError, match=r"it is a resnet_2blocks state dict \(--arch resnet_2blocks\)$"):
        sr.convert_sr(cyclegan, "EDSR")
    with pytest.raises(KzooError, match="cannot tell the architecture of this state dict"):
        sr.convert_sr(cyclegan)
    with pytest.raises(KzooError, match="unknown super-resolution architecture 'RRDBNet_res0.1'"):
        sr.parse_arch("RRDBNet_res0.1")
    broken = dict(load_state_dict(SR / "srvgg_x4.pth"))
    del broken["body.3.weight"]
    with pytest.raises(KzooError, match=r"--arch SRVGGNetCompact: body\.3\.weight \(8,\) is missing "
                                        r"\(1 mismatch in all\); the closest architecture is"):
        sr.convert_sr(broken, "SRVGGNetCompact")
    assert not sr.claims(cyclegan) and sr.claims(edsr) and sr.claims(cyclegan, "EDSR")
    assert junyanz.closest_arch(edsr)[1] > 0


def _authors_tiles(run, img, scale, tile, tile_pad):
    """Real-ESRGAN's `RealESRGANer.tile_process` (realesrgan/utils.py), in NumPy (NHWC)."""
    _, height, width, c = img.shape
    out = np.zeros((1, height * scale, width * scale, c), np.float32)
    for y in range(-(-height // tile)):
        for x in range(-(-width // tile)):
            x0, y0 = x * tile, y * tile
            x1, y1 = min(x0 + tile, width), min(y0 + tile, height)
            xa, xb = max(x0 - tile_pad, 0), min(x1 + tile_pad, width)
            ya, yb = max(y0 - tile_pad, 0), min(y1 + tile_pad, height)
            piece = run(img[:, ya:yb, xa:xb])
            ox, oy = (x0 - xa) * scale, (y0 - ya) * scale
            out[:, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                piece[:, oy:oy + (y1 - y0) * scale, ox:ox + (x1 - x0) * scale]
    return out


def test_converted_preset_exports_with_parity_and_tiles_as_the_authors_do(tmp_path, kzoo_home):
    """`kzoo export` of the RRDBNet x2 fixture (detected, no --arch): ONNX equals the reference;
    `run_tiled` cuts the tiles RealESRGANer cuts (tile, tile_pad) and, with context covering
    the receptive field, equals the untiled output; the authors' default tile_pad of 10 does not."""
    from kzoo.export import export
    from kzoo.infer import OnnxModel

    (result,) = export(str(SR / "rrdb_x2.pth"), out=tmp_path / "export", version=1)
    record = json.loads((result.path / "kzoo.json").read_text())
    assert (result.path / "model.onnx").is_file() and (result.path / "saved_model.pb").is_file()
    model = OnnxModel(result.path)
    data = np.load(SR / "rrdb_x2.npz")
    got = (model.run(lr=data["input"] * 2 - 1)["sr"] + 1) / 2
    assert np.abs(got - data["output"]).max() <= 1e-5 * np.ptp(data["output"]), record
    img = np.random.default_rng(0).uniform(-1, 1, (1, 36, 52, 3)).astype(np.float32)
    whole = model.run(lr=img)["sr"]
    tiled = model.run_tiled(img[0], tile=16, overlap=40)["sr"]  # radius 36.5 LR px (1 block)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    authors = _authors_tiles(lambda t: model.run(lr=t)["sr"], img, 2, 16, 10)
    np.testing.assert_allclose(model.run_tiled(img[0], tile=16, overlap=10)["sr"], authors, atol=1e-6)
    exact = np.abs(tiled - whole).max()
    assert np.abs(authors - whole).max() > 5 * exact  # tile_pad 10 < the receptive radius
    seams = model.run_tiled(img[0], tile=16, overlap=0)["sr"]
    assert np.abs(seams - whole).max() > 1e-3  # the test can tell
    # served (kzoo serve, TF Serving REST protocol): the same numbers
    import requests

    from kzoo.serving.server import ModelServer

    server = ModelServer(tmp_path / "export", port=0, grpc_port=None).start(timeout=120)
    try:
        r = requests.post(f"{server.rest_url}/v1/models/{result.path.parent.name}:predict", timeout=60,
                          json={"inputs": {"lr": img.tolist()}})
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(np.asarray(r.json()["outputs"], np.float32), whole, atol=1e-5)
    finally:
        server.stop()


def test_catalog_entries_download_pin_and_convert(http_server, kzoo_home, monkeypatch, tmp_path):
    """An EDSR entry laid out like the authors' server: downloaded, pinned, converted."""
    root, base = http_server
    (root / "research" / "EDSR" / "models").mkdir(parents=True)
    shutil.copy(SR / "edsr_x4.pth", root / "research" / "EDSR" / "models" / "edsr_tiny_x4-0.pt")
    url = f"{base}/research/EDSR/models/edsr_tiny_x4-0.pt"
    monkeypatch.setenv("KZOO_CATALOG", str(tmp_path / "catalog.json"))
    (tmp_path / "catalog.json").write_text(json.dumps({"presets": [{
        "name": "edsr-tiny-x4", "version": "upstream", "task": "super-resolution",
        "upstream": {"format": "edsr", "arch": "EDSR", "source": url,
                     "provenance": "sanghyun-son/EDSR-PyTorch src/model/edsr.py:8"}}]}))
    model = kzoo.hub.load("edsr-tiny-x4", progress=False)
    data = np.load(SR / "edsr_x4.npz")
    assert np.abs(_run(model, data["input"], 255.0) - data["output"]).max() <= 1e-5 * np.ptp(data["output"])
    meta = kzoo.hub.metadata("edsr-tiny-x4")
    assert meta["upstream"]["format"] == "edsr" and "MIT" in meta["license"]
    assert "Lim" in meta["upstream"]["paper"] and meta["model_class"] == "SRResNet"
    from kzoo.hub import cache

    assert cache.pinned(url) == kzoo.hub.preset.sha256_file(SR / "edsr_x4.pth")


def test_shipped_catalog_names_the_published_sr_weights():
    upstream = {e["name"]: e["upstream"] for e in catalog.entries() if "upstream" in e}
    assert upstream["realesrgan-x4plus"]["source"] == \
        "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth"
    assert upstream["edsr-baseline-x2"]["source"] == \
        "https://cv.snu.ac.kr/research/EDSR/models/edsr_baseline_x2-1bc95232.pt"
    assert {n for n, u in upstream.items() if u["format"] in ("realesrgan", "edsr")} == {
        "realesrgan-x4plus", "realesrgan-x2plus", "realesr-general-x4v3", "realesr-animevideov3",
        "edsr-baseline-x2", "edsr-baseline-x3", "edsr-baseline-x4", "edsr-x2", "edsr-x3", "edsr-x4"}
