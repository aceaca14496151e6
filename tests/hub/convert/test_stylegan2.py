"""kzoo.hub.convert.stylegan2: rosinality/stylegan2-pytorch `g_ema` weights, converted, equal
the reference outputs.

The fixtures are written by scripts/reference_fixtures_stylegan2.py (rosinality's own
`model.Generator` with its channel table scaled down, seeded random weights, fixed noise,
truncation 1 and 0.7); CI needs no torch.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.hub.convert import stylegan2 as sg
from kzoo.hub.convert.torchfile import load_state_dict
from kzoo.models.stylegan2 import as_numpy_noise
from tests.hub.convert import assert_convert_refused

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "reference"
SG2 = FIXTURES / "stylegan2"
VARIANTS = ("cm1_64", "cm2_128")  # train.py checkpoint (zip); convert_weight.py file (legacy)


@pytest.fixture(scope="module")
def converted():
    return {v: sg.convert_generator(load_state_dict(SG2 / f"{v}.pt")) for v in VARIANTS}


def _noise(data, batch, size):
    maps = [data[k] for k in sorted((k for k in data.files if k.startswith("noise_")),
                                    key=lambda k: int(k.split("_")[1]))]
    return as_numpy_noise(maps, batch, size)


def _synthesize(synthesis, w, noise):
    ws = np.repeat(np.asarray(w)[:, None], synthesis.inputs[0].shape[1], axis=1)
    return np.asarray(synthesis([ws, *noise]))


@pytest.mark.parametrize("variant", VARIANTS)
def test_converted_generator_reproduces_the_reference_outputs(converted, variant):
    """Mapping, synthesis with rosinality's fixed noise, and truncation 0.7 towards the
    reference's mean latent: within 1e-5 of the output range."""
    mapping, synthesis, config = converted[variant]
    data = np.load(SG2 / f"{variant}.npz")
    w = np.asarray(mapping(data["z"]))
    assert np.abs(w - data["w"]).max() <= 1e-5 * np.ptp(data["w"])
    noise = _noise(data, len(data["z"]), config["image_size"])
    for key, psi in (("image", 1.0), ("image_trunc", 0.7)):
        mean = data["mean_latent"]
        got, want = _synthesize(synthesis, mean + psi * (w - mean), noise), data[key]
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-5 * np.ptp(want), key
        assert np.abs(got - want).max() < 1e-3 * np.abs(want - want.mean()).max()  # not trivially
    # the noise is used: zero noise gives another picture
    zero = _synthesize(synthesis, w, as_numpy_noise("zero", len(w), config["image_size"]))
    assert np.abs(zero - data["image"]).max() > 1e-2


def test_configs_are_read_from_the_state_dict():
    cm1 = load_state_dict(SG2 / "cm1_64.pt")
    # the fixture's table is rosinality's divided by 32: {4..32: 16, 64: 8}
    assert sg.read_config(cm1) == {"image_size": 64, "latent_dim": 16, "n_mlp": 2,
                                   "channel_multiplier": 1, "channel_base": 512, "channel_max": 16}
    assert sg.describe(sg.read_config(cm1)) == "64 px, channels 16/16/16/16/8, style_dim 16, n_mlp 2"
    cm2 = load_state_dict(SG2 / "cm2_128.pt")
    config = json.loads(str(np.load(SG2 / "cm2_128.npz")["config"]))
    assert sg.channel_table(128, **{k: sg.read_config(cm2)[k] for k in
                                    ("channel_multiplier", "channel_base", "channel_max")}) == \
        {int(k): v for k, v in config["channels"].items() if int(k) <= 128}
    # convert_weight.py's latent_avg is read (only it: g_ema's storages are not read again)
    avg = sg.read_latent_avg(SG2 / "cm2_128.pt")
    np.testing.assert_array_equal(avg, np.load(SG2 / "cm2_128.npz")["mean_latent"][0])
    assert sg.read_latent_avg(SG2 / "cm1_64.pt") is None  # train.py saves none


def _synthetic(params):
    """A state dict of the given names and shapes (zeros; the blur kernels as rosinality's)."""
    from kzoo.layers.stylegan import fir_kernel

    return {n: fir_kernel(gain=4.0) if n.endswith(("blur.kernel", "upsample.kernel")) else
            np.broadcast_to(np.float32(0), s) for n, s in params}


def test_full_size_architectures_have_the_reference_names_shapes_and_count():
    """stylegan2_full_size.json (rosinality's Generator(size, 512, 8, channel_multiplier)
    state dicts): detected, named and shaped exactly; the 256 / multiplier 2 network built
    in Keras has exactly its parameters."""
    reference = json.loads((FIXTURES / "stylegan2_full_size.json").read_text())
    assert set(reference) == {f"{s}_cm{m}" for s in (256, 512, 1024) for m in (1, 2)}
    for key, params in reference.items():
        params = [(n, tuple(s)) for n, s in params]
        state = _synthetic(params)
        config = sg.read_config(state)
        size, m = map(int, key.split("_cm"))
        assert config == {"image_size": size, "latent_dim": 512, "n_mlp": 8,
                          "channel_multiplier": m, "channel_base": 16384, "channel_max": 512}, key
        assert sg.describe(config) == f"{size} px, channel multiplier {m}, style_dim 512, n_mlp 8"
        assert [(n, s) for n, _, _, s, _ in sg.reference_params(**config)] == params, key
        assert sg.mismatches(state) == [] and sg.claims(state), key
    params = [(n, tuple(s)) for n, s in reference["256_cm2"]]
    weights = [(n, s) for n, s in params if not n.startswith("noises.") and not n.endswith("kernel")]
    mapping, synthesis = sg.build(**sg.read_config(_synthetic(params)))
    count = sum(int(np.prod(s)) for _, s in weights)
    assert count == 30_034_338
    assert mapping.count_params() + synthesis.count_params() == count
    assert len(mapping.weights) + len(synthesis.weights) == len(weights)
    # every kzoo weight is assigned from exactly one reference tensor of its size
    networks = {"mapping": mapping, "synthesis": synthesis}
    targets = [sg._variable(networks[net], path) for _, net, path, _, _ in
               sg.reference_params(**sg.read_config(_synthetic(params))) if net]
    assert len({id(v) for v in targets}) == len(weights)
    for (name, shape), variable in zip(weights, targets):
        assert int(np.prod(variable.shape)) == int(np.prod(shape)), name


def test_a_state_dict_that_is_not_this_generator_is_one_line_naming_what_it_is():
    cyclegan = load_state_dict(FIXTURES / "resnet_instance.pth")
    assert not sg.claims(cyclegan) and sg.claims(cyclegan, "StyleGAN2")
    with pytest.raises(KzooError) as e:
        sg.convert_generator(cyclegan)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("the state dict does not match --arch stylegan2: style.1.weight "
                              "(512, 512) is missing")
    assert message.endswith("; it is a resnet_2blocks state dict (--arch resnet_2blocks)")
    state = dict(load_state_dict(SG2 / "cm1_64.pt"))
    del state["convs.3.noise.weight"]
    with pytest.raises(KzooError, match=r"--arch stylegan2: convs\.3\.noise\.weight \(1,\) is "
                                        r"missing \(1 mismatch in all\); the closest architecture "
                                        r"is stylegan2 \(1 mismatch\)$"):
        sg.convert_generator(state)
    assert sg.claims(state)  # meant as a rosinality generator: its mismatch is reported
    state = dict(load_state_dict(SG2 / "cm1_64.pt"))
    state["convs.2.conv.blur.kernel"] = np.ones((4, 4), np.float32) / 16  # blur_kernel=[1, 1, 1, 1]
    with pytest.raises(KzooError, match=r"convs\.2\.conv\.blur\.kernel is not the \[1, 3, 3, 1\] "
                                        r"blur kernel kzoo's layers use"):
        sg.convert_generator(state)


@pytest.mark.parametrize("variant", VARIANTS)
def test_cli_convert_writes_a_stylegan2_preset_equal_to_the_reference(tmp_path, capsys, variant):
    """`kzoo hub convert FILE` (detected, no --arch): the full StyleGAN2's EMA networks are
    g_ema, its fixed noise rosinality's buffers, its w_avg the file's latent_avg."""
    import kzoo.hub
    from kzoo.cli import main

    out = tmp_path / variant
    assert main(["hub", "convert", str(SG2 / f"{variant}.pt"), "--out", str(out)]) == 0
    meta = kzoo.hub.preset.verify(out)
    up = meta["upstream"]
    assert meta["model_class"] == "StyleGAN2" and (up["format"], up["arch"]) == ("rosinality", "stylegan2")
    assert "Karras" in up["paper"] and "Nvidia Source Code License-NC" in meta["license"]
    assert "rosinality/stylegan2-pytorch" in (out / "README.md").read_text()
    from PIL import Image

    sample = np.asarray(Image.open(out / "samples.png"))  # 4 generated images, not a grey square
    size = sg.read_config(load_state_dict(SG2 / f"{variant}.pt"))["image_size"]
    assert sample.shape == (size, 4 * size, 3) and sample.std() > 10
    full = kzoo.hub.load(out, part="full", compile=False)
    data = np.load(SG2 / f"{variant}.npz")
    w = np.asarray(full.mapping(data["z"]))
    assert np.abs(w - data["w"]).max() <= 1e-5 * np.ptp(data["w"])
    state = load_state_dict(SG2 / f"{variant}.pt")
    buffers = sg.noise_maps(state, sg.read_config(state))  # rosinality's noises.noise_*
    assert len(buffers) == len(full.synthesis_noise.maps) == full.num_ws - 1
    for variable, buffer in zip(full.synthesis_noise.maps, buffers):
        np.testing.assert_array_equal(np.asarray(variable), buffer)
    noise = [data[f"noise_{i}"] for i in range(len(buffers))]
    got = np.asarray(full.synthesize(w, noise=noise))
    assert np.abs(got - data["image"]).max() <= 1e-5 * np.ptp(data["image"])
    if variant == "cm2_128":  # latent_avg (here the reference's mean latent) is w_avg
        np.testing.assert_array_equal(np.asarray(full.w_avg), data["mean_latent"][0])
        trunc = np.asarray(full.synthesize(full.truncate(np.asarray(w), 0.7), noise=noise))
        assert np.abs(trunc - data["image_trunc"]).max() <= 1e-5 * np.ptp(data["image_trunc"])
        assert "w_avg from the file's latent_avg" in up["note"]
    else:
        assert "mean of 4096 mapped z" in up["note"]
    capsys.readouterr()


def test_bad_stylegan2_sources_are_one_line_exit_2_and_leave_no_cache(tmp_path, kzoo_home, capsys):
    import pickle
    import zipfile

    import kzoo.hub

    evil = tmp_path / "evil.pt"
    marker = tmp_path / "ran"
    with zipfile.ZipFile(evil, "w") as zf:  # a train.py-like checkpoint whose args run code
        zf.writestr("archive/data.pkl", pickle.dumps({"g_ema": {}, "args": _System(f"touch {marker}")},
                                                     protocol=2))
    cases = [([str(evil)], "refusing to load evil.pt: its pickle calls posix.system"),
             ([str(FIXTURES / "resnet_instance.pth"), "--arch", "stylegan2"],
              "the state dict does not match --arch stylegan2: style.1.weight (512, 512) is missing"),
             ([str(SG2 / "cm1_64.pt"), "--reverse", str(SG2 / "cm1_64.pt")],
              "--reverse is for CycleGAN generators: this is a StyleGAN2 generator")]
    assert_convert_refused(cases, tmp_path / "out", capsys)
    assert not marker.exists()
    with pytest.raises(KzooError, match=r"it is a resnet_2blocks state dict \(--arch resnet_2blocks\)$"):
        kzoo.hub.load(f"{FIXTURES / 'resnet_instance.pth'}#arch=stylegan2")
    presets = kzoo_home / "presets"
    assert not presets.is_dir() or not any(p.parent.name == "converted" for p in presets.rglob("*"))


class _System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


@pytest.mark.slow
def test_a_converted_checkpoint_exports_and_predicts(tmp_path):
    """(~2 min: three endpoints, SavedModel + ONNX each) `kzoo export FILE.pt`: the synthesis endpoint's ONNX model, fed the reference's w and
    noise with psi 0.7, gives rosinality's truncated image (latent_avg is w_avg); `kzoo predict`
    writes pictures from the export."""
    import onnxruntime as ort

    from kzoo.cli import main
    from kzoo.export import export

    results = export(str(SG2 / "cm2_128.pt"), out=tmp_path / "export", version=1)
    paths = {r.path.parent.name: r.path for r in results}
    synthesis = next(p for name, p in paths.items() if name.endswith("synthesis"))
    assert (synthesis / "model.onnx").is_file() and (synthesis / "saved_model.pb").is_file()
    data = np.load(SG2 / "cm2_128.npz")
    session = ort.InferenceSession(str(synthesis / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    num_ws = len([n for n in names if n.startswith("noise_")]) + 1  # one noise map per styled conv
    ws = np.repeat(data["w"][:, None], num_ws, axis=1)
    feed = {"ws": ws, "truncation_psi": np.full((len(ws), 1), 0.7, np.float32),
            **{f"noise_{i}": data[f"noise_{i}"] for i in range(ws.shape[1] - 1)}}
    got = session.run(None, {n: feed[n] for n in names})[0]
    want = data["image_trunc"]
    assert np.abs(got - want).max() <= 1e-5 * np.ptp(want), (names, np.abs(got - want).max())
    generator = next(p for name, p in paths.items() if name.endswith("generator"))
    assert main(["predict", str(generator), "--out", str(tmp_path / "samples")]) == 0
    assert list((tmp_path / "samples").glob("*.png"))
