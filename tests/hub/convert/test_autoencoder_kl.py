"""kzoo.hub.convert.autoencoder_kl: diffusers AutoencoderKL checkpoints (Stable Diffusion's
VAE) as kzoo AutoencoderKL models, proven equal.

The fixtures (tests/fixtures/reference/diffusers/autoencoder_kl, written by
scripts/reference_fixtures_diffusers.py with torch + diffusers) hold small AutoencoderKLs
with random weights, their encoder/decoder outputs, and the parameter names/shapes of the
full-size Stable Diffusion v1 VAE; no torch or diffusers is needed here.
"""

import doctest
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.hub.convert import autoencoder_kl as conv
from kzoo.models.vae import AutoencoderKL

from tests.hub.test_hf import hub  # noqa: F401  (the 127.0.0.1 Hub fixture)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "reference" / "diffusers" / "autoencoder_kl"
VARIANTS = ("kl_legacy_names", "kl_three_blocks_no_quant", "kl_no_mid_attention")


def read(name):
    from safetensors.numpy import load_file

    return (load_file(str(FIXTURES / name / "diffusion_pytorch_model.safetensors")),
            json.loads((FIXTURES / name / "config.json").read_text()))


@pytest.fixture(scope="module")
def converted():
    return {name: conv.load_autoencoder_kl_folder(FIXTURES / name) for name in VARIANTS}


def _error(out, ref):
    return float(np.abs(np.asarray(out) - ref).max()) / float(ref.max() - ref.min())


@pytest.mark.parametrize("name", VARIANTS)
def test_encoder_and_decoder_reproduce_diffusers(converted, name):
    """mean, logvar, decode(z) and the forward reconstruction within conv.PROVEN_ERROR (1e-5)
    of their range."""
    ref = np.load(FIXTURES / f"{name}.npz")
    model = converted[name]
    mean, logvar = model.encode(ref["x"])
    assert mean.shape == ref["mean"].shape and logvar.shape == ref["logvar"].shape
    assert _error(mean, ref["mean"]) < conv.PROVEN_ERROR
    assert _error(logvar, ref["logvar"]) < conv.PROVEN_ERROR
    assert _error(model.decode(ref["z"]), ref["decoded"]) < conv.PROVEN_ERROR
    assert _error(model(ref["x"]), ref["reconstruction"]) < conv.PROVEN_ERROR
    # the exported parts compute the same
    parts = model.inference_parts()
    assert _error(parts["reconstruct"](ref["x"])["reconstruction"], ref["reconstruction"]) < conv.PROVEN_ERROR
    assert _error(parts["decoder"](ref["z"]), ref["decoded"]) < conv.PROVEN_ERROR
    # a single wrong parameter is visible at this tolerance: the test can fail
    kernel = model.decoder.get_layer("conv_out").kernel
    kernel.assign(np.asarray(kernel) * 1.01)
    try:
        assert _error(model.decode(ref["z"]), ref["decoded"]) > conv.PROVEN_ERROR
    finally:
        kernel.assign(np.asarray(kernel) / 1.01)


def test_variants_cover_the_config_options(converted):
    options = {name: conv.autoencoder_options(read(name)[1]) for name in VARIANTS}
    assert {o["quant_conv"] for o in options.values()} == {True, False}
    assert {o["mid_attention"] for o in options.values()} == {True, False}
    assert {len(o["block_out_channels"]) for o in options.values()} == {2, 3}
    assert {o["layers_per_block"] for o in options.values()} == {1, 2}
    # the legacy variant stores attention as query/key/value/proj_attn (diffusers < 0.14)
    state, _ = read("kl_legacy_names")
    assert "encoder.mid_block.attentions.0.query.weight" in state
    assert converted["kl_three_blocks_no_quant"].scaling_factor == 0.5
    assert converted["kl_legacy_names"].scaling_factor == pytest.approx(0.18215)
    # logvar is clamped as diffusers' DiagonalGaussianDistribution clamps it
    out = converted["kl_legacy_names"].encoder.get_layer("posterior")(np.full((1, 1, 1, 8), 50.0))
    assert float(np.max(out["logvar"])) == 20.0 and float(np.max(out["mean"])) == 50.0


def test_full_size_names_shapes_and_count_are_the_reference():
    """Stable Diffusion's VAE (the architecture of sd-vae-ft-mse / -ema): every diffusers
    parameter name, shape and the total count."""
    full = json.loads((FIXTURES / "full_size.json").read_text())["stable-diffusion-v1-vae"]
    options = conv.autoencoder_options(full["config"])
    assert options["block_out_channels"] == (128, 256, 512, 512) and options["latent_channels"] == 4
    model = AutoencoderKL(**options)
    ours = conv.reference_shapes(model)
    theirs = {name: shape for name, shape in full["parameters"]}
    assert ours == theirs
    total = sum(int(np.prod(s)) for s in theirs.values())
    assert model.encoder.count_params() + model.decoder.count_params() == total == 83653863


def test_mismatching_state_dict_names_the_first_mismatch():
    state, config = read("kl_legacy_names")
    other, _ = read("kl_three_blocks_no_quant")
    with pytest.raises(KzooError, match=r"^diffusers .*encoder\.") as e:
        conv.convert_autoencoder_kl(other, config)
    assert "\n" not in str(e.value)
    bad = dict(state)
    bad["decoder.conv_out.weight"] = bad["decoder.conv_out.weight"][:, :2]
    with pytest.raises(KzooError, match="decoder.conv_out.weight has shape"):
        conv.convert_autoencoder_kl(bad, config)
    extra = dict(state, **{"decoder.extra.weight": np.zeros(3, np.float32)})
    with pytest.raises(KzooError, match="decoder.extra.weight"):
        conv.convert_autoencoder_kl(extra, config)


@pytest.mark.parametrize("field, value, message", [
    ("down_block_types", ["DownEncoderBlock2D", "AttnDownEncoderBlock2D"], "AttnDownEncoderBlock2D"),
    ("act_fn", "relu", "act_fn"),
    ("latents_mean", [0.0] * 4, "latents_mean"),
    ("use_magic", True, "use_magic"),
    ("sample_size", 17, "sample_size"),
    ("_class_name", "UNet2DModel", "UNet2DModel"),
])
def test_unsupported_config_is_one_line(field, value, message):
    _, config = read("kl_legacy_names")
    with pytest.raises(KzooError, match=message) as e:
        conv.autoencoder_options({**config, field: value})
    assert "\n" not in str(e.value)


def test_dispatch_converts_an_autoencoder_kl_folder(tmp_path):
    """`kzoo.hub.convert.diffusers_folder.diffusers_models` dispatches on `_class_name`; hf:// downloads
    exactly config.json and the weights of such a repository."""
    from kzoo.hub import hf
    from kzoo.hub.convert.diffusers_folder import diffusers_models, is_diffusers_folder

    folder = tmp_path / "vae"
    shutil.copytree(FIXTURES / "kl_legacy_names", folder)
    assert is_diffusers_folder(folder)
    full, inference, info, size = diffusers_models(folder)
    assert isinstance(full, AutoencoderKL) and info["arch"] == "AutoencoderKL" and size == 16
    assert "MIT" in info["license"] and "0.18215" in info["note"]
    from kzoo.export.spec import output_names

    assert output_names(inference) == ["latent", "reconstruction"]
    ref = np.load(FIXTURES / "kl_legacy_names.npz")
    assert _error(inference(ref["x"])["reconstruction"], ref["reconstruction"]) < 1e-5
    siblings = [{"rfilename": n} for n in (".gitattributes", "README.md", "config.json",
                                           "diffusion_pytorch_model.bin",
                                           "diffusion_pytorch_model.safetensors")]
    assert hf.diffusers_files(siblings, "hf://x/y") == ["config.json",
                                                       "diffusion_pytorch_model.safetensors"]


def test_doctests():
    assert doctest.testmod(conv).failed == 0


def test_the_catalog_entries_download_only_what_the_converter_reads(hub, kzoo_home):
    """sd-vae-ft-mse through the real hf:// code path (a 127.0.0.1 Hub): main's commit is
    pinned on first download, config.json and the .safetensors weights are the only files
    fetched (not the .bin beside them nor the README), and the preset reconstructs as
    diffusers does."""
    import kzoo.hub
    from kzoo.hub import catalog

    from tests.hub.test_hf import _pins

    repo = "stabilityai/sd-vae-ft-mse"
    entry = catalog.lookup("sd-vae-ft-mse")
    assert entry["upstream"]["revision"] == catalog.PIN_ON_FIRST_DOWNLOAD
    assert entry["model_class"] == "AutoencoderKL" and entry["license"].startswith("MIT")
    files = {p.name: p.read_bytes() for p in (FIXTURES / "kl_legacy_names").iterdir()}
    files.update({"diffusion_pytorch_model.bin": b"never read", "README.md": b"---\nlicense: mit\n"})
    commit = hub.add(repo, files)
    model = kzoo.hub.load("sd-vae-ft-mse", progress=False)
    ref = np.load(FIXTURES / "kl_legacy_names.npz")
    assert _error(model(ref["x"])["reconstruction"], ref["reconstruction"]) < 1e-5
    full = kzoo.hub.load("sd-vae-ft-mse", part="full", progress=False)
    assert isinstance(full, AutoencoderKL) and full.scaling_factor == pytest.approx(0.18215)
    assert set(_pins(kzoo_home)) == {f"hf://{repo}"} | {
        f"hf://{repo}@{commit}/{n}" for n in ("config.json", "diffusion_pytorch_model.safetensors")}


def test_the_converted_preset_exports_with_parity_and_serves(tmp_path):
    """Converted (the preset kzoo hub convert writes), exported to ONNX with parity for its
    three endpoints, served by `kzoo serve`: the served reconstruction is diffusers'."""
    from kzoo.export import export
    from kzoo.hub.convert import convert_local
    from kzoo.serving.client import Client
    from kzoo.serving.server import ModelServer

    preset = convert_local(FIXTURES / "kl_legacy_names", tmp_path / "preset", name="sd-vae-tiny")
    results = export(preset, out=tmp_path / "export", formats="onnx")
    served = {r.path.parent.name: r for r in results}
    assert sorted(served) == ["sd-vae-tiny_decoder", "sd-vae-tiny_encoder", "sd-vae-tiny_reconstruct"]
    for r in results:
        info = json.loads((r.path / "kzoo.json").read_text())
        figures = [f for case in info["parity"]["onnx"].values() for f in case.values()]
        assert figures and all(f["max_rel"] <= info["tolerance"] for f in figures), figures
    ref = np.load(FIXTURES / "kl_legacy_names.npz")
    server = ModelServer(tmp_path / "export", port=0, grpc_port=None).start(timeout=120)
    try:
        client = Client(server.rest_url)
        out = client.predict("sd-vae-tiny_reconstruct", ref["x"])
        assert _error(out["reconstruction"], ref["reconstruction"]) < 1e-5
        posterior = client.predict("sd-vae-tiny_encoder", ref["x"])
        assert _error(posterior["mean"], ref["mean"]) < 1e-5
        assert _error(client.predict("sd-vae-tiny_decoder", ref["z"])["image"], ref["decoded"]) < 1e-5
    finally:
        server.stop()
