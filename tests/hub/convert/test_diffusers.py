"""kzoo.hub.convert.diffusers: diffusers UNet2DModel checkpoints as kzoo DDPMs, proven equal.

The fixtures (tests/fixtures/reference/diffusers, written by
scripts/reference_fixtures_diffusers.py with torch + diffusers) hold small UNet2DModels
with random weights, their outputs, and the parameter names/shapes of the published
full-size checkpoints; no torch or diffusers is needed here.
"""

import doctest
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kzoo.diffusion import DIFFUSERS, NoiseSchedule, sample
from kzoo.errors import KzooError
from kzoo.hub.convert import diffusers as conv
from kzoo.models.ddpm import ddpm_unet
from kzoo.options.ddpm import DDPM_OPTIONS

from tests.test_diffusion import RUNS, trajectory

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "reference" / "diffusers"
VARIANTS = ("attn_heads_flip", "ho_legacy_names", "no_attention_centered")


def folder(name):
    return FIXTURES / name


def unet_dir(name):
    return folder(name) / "unet" if (folder(name) / "unet").is_dir() else folder(name)


def read(name):
    d = unet_dir(name)
    from safetensors.numpy import load_file

    return (load_file(str(d / "diffusion_pytorch_model.safetensors")),
            json.loads((d / "config.json").read_text()))


@pytest.fixture(scope="module")
def converted():
    return {name: conv.load_diffusers_folder(folder(name)) for name in VARIANTS}


@pytest.mark.parametrize("name", VARIANTS)
def test_converted_network_reproduces_diffusers(converted, name):
    """Within conv.PROVEN_ERROR (1e-5) of the output range, for the raw and the EMA network."""
    ref = np.load(FIXTURES / f"{name}.npz")
    tolerance = conv.PROVEN_ERROR * float(ref["eps"].max() - ref["eps"].min())
    model = converted[name]
    for network in (model.network, model.ema_network):
        eps = np.asarray(network({"x_t": ref["x_t"], "t": ref["t"]}))
        assert eps.shape == ref["eps"].shape
        assert np.abs(eps - ref["eps"]).max() < tolerance
    # a single wrong parameter is visible at this tolerance: the test can fail
    kernel = model.network.get_layer("conv_out").kernel
    kernel.assign(kernel.numpy() * 1.01)
    eps = np.asarray(model.network({"x_t": ref["x_t"], "t": ref["t"]}))
    assert np.abs(eps - ref["eps"]).max() > tolerance
    model.network.set_weights(model.ema_network.get_weights())


def test_variants_cover_the_config_options(converted):
    """Both time-embedding orders and shifts, both paddings, heads, no mid attention, centring."""
    m = converted
    assert {v.flip_sin_to_cos for v in m.values()} == {True, False}
    assert {v.freq_shift for v in m.values()} == {0, 1}
    assert {v.downsample_padding for v in m.values()} == {0, 1}
    assert m["attn_heads_flip"].attention_head_dim == 8 and m["attn_heads_flip"].norm_eps == 1e-5
    assert m["no_attention_centered"].attention_resolutions == () and not m["no_attention_centered"].mid_attention
    assert m["no_attention_centered"].center_input_sample
    assert m["ho_legacy_names"].attention_resolutions == (8,)
    state, _ = read("ho_legacy_names")
    assert any(".query." in k for k in state) and not any(".to_q." in k for k in state)


@pytest.mark.parametrize("name", VARIANTS)
def test_schedule_matches_diffusers_and_round_trips(converted, name):
    """scheduler_config.json -> kzoo.diffusion gives diffusers' alphas_cumprod; and back."""
    model = converted[name]
    ref = np.load(FIXTURES / f"{name}.npz")
    np.testing.assert_allclose(model.schedule.alphas_cumprod, ref["alphas_cumprod"], rtol=2e-5, atol=1e-7)
    config = conv.scheduler_config(model)
    options = conv.schedule_options(config)
    rest = {k: v for k, v in options.items() if k != "sampler_options"}
    assert rest == {k: getattr(model, k) for k in rest}
    variance_type = "fixed_small" if model.variance == "beta_tilde" else "fixed_large"
    assert {**options["sampler_options"], "variance_type": variance_type,
            "clip_sample": model.clip_sample} == model.sampler_options.config()
    assert model.sampler_options.replace(variance_type="fixed_small", clip_sample=True) == DIFFUSERS
    original = json.loads(next(folder(name).rglob("scheduler_config.json")).read_text())
    assert conv.schedule_options(original) == options


def test_scheduler_options():
    """diffusers' defaults: DDPMScheduler's fixed_small and clipping, DDIM without re-derived ε."""
    options = conv.schedule_options({})
    assert options.pop("sampler_options") == {
        k: v for k, v in DIFFUSERS.config().items() if k not in ("variance_type", "clip_sample")}
    assert options == {"num_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02,
                       "beta_schedule": "linear", "variance": "beta_tilde", "clip_sample": True}
    assert conv.schedule_options({"prediction_type": "v_prediction", "timestep_spacing": "trailing"})[
        "sampler_options"]["prediction_type"] == "v_prediction"
    with pytest.raises(KzooError, match="supported: linear, scaled_linear, squaredcos_cap_v2"):
        conv.schedule_options({"beta_schedule": "sigmoid"})
    with pytest.raises(KzooError, match="variance_type 'learned' is not supported"):
        conv.schedule_options({"variance_type": "learned"})


def test_unknown_scheduler_option_is_one_line(tmp_path):
    """A scheduler_config.json key that could change the samples is named, not ignored."""
    flat = tmp_path / "flat"
    shutil.copytree(unet_dir("no_attention_centered"), flat)
    (flat / "scheduler_config.json").write_text(json.dumps({"_class_name": "DDPMScheduler",
                                                            "karras_sigmas": True}))
    with pytest.raises(KzooError, match="option karras_sigmas=True is unknown to kzoo") as e:
        conv.load_diffusers_folder(flat)
    assert "\n" not in str(e.value)


def _full_size():
    return json.loads((FIXTURES / "full_size.json").read_text())


def test_full_size_configs_are_the_papers():
    """The converted configs are Ho et al.'s: CIFAR-10 = the DDPM family's paper network."""
    full = _full_size()
    assert sorted(full) == ["google/ddpm-bedroom-256", "google/ddpm-cat-256", "google/ddpm-celebahq-256",
                            "google/ddpm-church-256", "google/ddpm-cifar10-32"]
    cifar = conv.ddpm_options(full["google/ddpm-cifar10-32"]["config"])
    paper = DDPM_OPTIONS.defaults()  # the constructor's defaults (kzoo.options.ddpm)
    assert {k: v for k, v in cifar.items() if k != "dropout"} == {
        k: paper[k] for k in cifar if k != "dropout"}
    celeba = conv.ddpm_options(full["google/ddpm-celebahq-256"]["config"])
    assert celeba["channel_mults"] == (1, 1, 2, 2, 4, 4) and celeba["attention_resolutions"] == (16,)


@pytest.mark.parametrize("repo", ["google/ddpm-cifar10-32", "google/ddpm-celebahq-256"])
def test_full_size_names_and_shapes_are_the_references(repo):
    """Every name, shape and the count of the published state dicts (church, bedroom and cat
    share celebahq-256's config, checked to be equal)."""
    full = _full_size()
    if repo.endswith("-256"):
        for other in ("church", "bedroom", "cat"):
            assert full[f"google/ddpm-{other}-256"] == full[repo]
    options = conv.ddpm_options(full[repo]["config"])
    network = ddpm_unet(**{k: v for k, v in options.items()})
    want = {name: shape for name, shape in full[repo]["parameters"]}
    got = conv.reference_shapes(network)
    assert len(got) == len(want) == len(full[repo]["parameters"])
    assert got == want
    assert network.count_params() == sum(int(np.prod(s)) for s in want.values())
    if repo.endswith("cifar10-32"):
        assert abs(network.count_params() - 35.7e6) < 0.1e6  # Ho et al., App. B


def test_unsupported_block_type_lists_the_supported_ones():
    _, config = read("attn_heads_flip")
    bad = {**config, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"]}
    with pytest.raises(KzooError) as e:
        conv.ddpm_options(bad)
    assert str(e.value) == ("diffusers down block type CrossAttnDownBlock2D is not supported; "
                            "supported: DownBlock2D, AttnDownBlock2D")
    assert "\n" not in str(e.value)
    with pytest.raises(KzooError, match="up block type AttnSkipUpBlock2D is not supported; "
                                        "supported: UpBlock2D, AttnUpBlock2D"):
        conv.ddpm_options({**config, "up_block_types": ["AttnSkipUpBlock2D", "UpBlock2D"]})
    for field, value in (("time_embedding_type", "fourier"), ("resnet_time_scale_shift", "scale_shift"),
                         ("num_class_embeds", 10), ("mid_block_scale_factor", 2)):
        with pytest.raises(KzooError, match=f"{field}="):
            conv.ddpm_options({**config, field: value})
    with pytest.raises(KzooError, match="model class UNet2DConditionModel is not supported"):
        conv.ddpm_options({**config, "_class_name": "UNet2DConditionModel"})


def test_mismatching_state_dict_names_the_first_mismatch():
    state, config = read("attn_heads_flip")
    missing = {k: v for k, v in state.items() if k != "down_blocks.0.resnets.0.conv1.weight"}
    with pytest.raises(KzooError, match=r"^diffusers state dict has no down_blocks\.0\.resnets\.0\."
                                        r"conv1\.weight \(shape \[8, 8, 3, 3\]\)"):
        conv.convert_diffusers(missing, config)
    shaped = {**state, "time_embedding.linear_2.weight": np.zeros((32, 16), np.float32)}
    with pytest.raises(KzooError, match=r"^diffusers parameter time_embedding\.linear_2\.weight has "
                                        r"shape \[32, 16\], the config's network needs \[32, 32\]$"):
        conv.convert_diffusers(shaped, config)
    extra = {**state, "mid_block.resnets.2.norm1.weight": np.ones(16, np.float32)}
    with pytest.raises(KzooError, match=r"has mid_block\.resnets\.2\.norm1\.weight \(shape \[16\]\)"):
        conv.convert_diffusers(extra, config)
    # the config of another variant: the first mismatch is named
    other = json.loads((unet_dir("ho_legacy_names") / "config.json").read_text())
    with pytest.raises(KzooError, match="^diffusers (state dict has no|parameter) "):
        conv.convert_diffusers(state, other)


def test_legacy_attention_names():
    assert conv.canonical_name("mid_block.attentions.0.query.weight") == "mid_block.attentions.0.to_q.weight"
    assert conv.canonical_name("up_blocks.1.attentions.2.proj_attn.bias") == "up_blocks.1.attentions.2.to_out.0.bias"
    assert conv.canonical_name("down_blocks.0.resnets.0.conv1.weight") == "down_blocks.0.resnets.0.conv1.weight"


def test_folder_layouts(tmp_path):
    """Pipeline (unet/ + scheduler/) and flat folders; a folder without a model is refused."""
    flat = tmp_path / "flat"
    shutil.copytree(unet_dir("ho_legacy_names"), flat)
    shutil.copy(folder("ho_legacy_names") / "scheduler" / "scheduler_config.json", flat)
    model = conv.load_diffusers_folder(flat)
    assert model.variance == "beta" and model.image_size == 16
    with pytest.raises(KzooError, match="is not a diffusers model folder"):
        conv.load_diffusers_folder(tmp_path)
    (flat / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(KzooError, match="has no weights"):
        conv.load_diffusers_folder(flat)


def test_module_examples():
    result = doctest.testmod(conv, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3 and result.failed == 0


def run_model(run_name):
    """A DDPM converted from the recorded run's network and its scheduler config."""
    run, arrays, _, _, kwargs = trajectory(run_name)
    state, config = read(run["network"])
    model = conv.convert_diffusers(state, config, run["scheduler_config"])
    if run["use_clipped_model_output"] is not None:  # DDIMPipeline's call argument
        model.sampler_options = model.sampler_options.replace(
            use_clipped_model_output=run["use_clipped_model_output"])
    return model, arrays, kwargs


def keras_tolerance(samples):
    """float32 networks (Keras/ONNX vs PyTorch, ~1e-6 per call) on top of the sampler's own
    float32 error (tests/test_diffusion.py). x̂_0 amplifies an ε error by sqrt((1 - ᾱ)/ᾱ),
    ~70 at t = 900 of the linear schedule. Measured max error over all runs (Keras, diffusers
    0.42.1 fixtures): 1.7e-4 on samples of magnitude 2.4 (ddim_cifar_10), 7.3e-5 relative."""
    return 5e-4 * max(1.0, float(np.abs(samples).max()))


@pytest.mark.parametrize("run_name", sorted(RUNS))
def test_keras_sampler_equals_diffusers_pipelines(converted, run_name):
    """The converted network, sampled by kzoo with the run's scheduler options and diffusers'
    noise, walks diffusers' `DDPMPipeline` / `DDIMPipeline` trajectory."""
    run, arrays, schedule, options, kwargs = trajectory(run_name)
    network = converted[run["network"]].ema_network
    seen = []
    final = sample(lambda x, t: network.predict_on_batch({"x_t": x, "t": t}), arrays["x_T"].shape,
                   schedule=schedule, options=options, callback=lambda t, x, x0: seen.append(x), **kwargs)
    error = np.abs(np.stack(seen) - arrays["samples"]).max()
    assert error < keras_tolerance(arrays["samples"]), error
    assert final.shape == arrays["x_T"].shape


def test_converted_model_samples_as_ddim_pipeline():
    """`DDPM.sample` of a model converted with google/ddpm-cifar10-32's scheduler config is
    DDIMPipeline with its defaults (10 steps, eta 0, clip_sample: the issue's case)."""
    model, arrays, kwargs = run_model("ddim_cifar_10")
    assert model.sampler_options == DIFFUSERS.replace(variance_type="fixed_large")
    got = model.sample(2, **kwargs)
    error = np.abs(got - arrays["samples"][-1]).max()
    assert error < keras_tolerance(arrays["samples"]), error


def test_converted_ddpm_exports_and_samples_as_diffusers(tmp_path):
    """A converted DDPM exports to SavedModel + ONNX with the parity record and its sampler
    options; the TensorFlow-free sampler (`OnnxModel.diffusion_sample`) on the ONNX
    eps-network walks DDIMPipeline's and DDPMPipeline's trajectories, and `kzoo predict`
    writes the images of that same code."""
    from kzoo.export import export
    from kzoo.infer import OnnxModel, predict

    model, ddim, ddim_kwargs = run_model("ddim_cifar_10")
    result, sampler_result = export(model, name="ddpm_conv", out=tmp_path, formats="savedmodel,onnx")
    assert sampler_result.name == "ddpm_conv_sampler"  # kzoo/export/sampler.py, tests/export/test_sampler.py
    info = result.info
    assert (result.path / "saved_model.pb").is_file() and (result.path / "model.onnx").is_file()
    assert info["diffusion"] == {"num_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02,
                                 "beta_schedule": "linear", "variance": "beta",
                                 "clip_sample": True,
                                 "sampler_options": DIFFUSERS.replace(variance_type="fixed_large").config()}
    assert sorted(info["parity"]) == ["onnx", "savedmodel"]
    for figures in info["parity"].values():  # within the export tolerance, for every input case
        assert figures and all(f["max_rel"] <= info["tolerance"] for case in figures.values()
                               for f in case.values())
    onnx = OnnxModel(tmp_path / "ddpm_conv")
    for arrays, kwargs in (
            (ddim, ddim_kwargs),
            trajectory("ddpm_cifar_10")[1::3]):  # same network and scheduler config
        seen = []
        onnx.diffusion_sample(2, sampler=kwargs["sampler"], steps=kwargs["steps"], eta=kwargs["eta"],
                              noise=kwargs["noise"], raw=True, callback=lambda t, x, x0: seen.append(x))
        error = np.abs(np.stack(seen) - arrays["samples"]).max()
        assert error < keras_tolerance(arrays["samples"]), error
        # the sampler endpoint: the same trajectory's end in one ONNX session call
        got = OnnxModel(tmp_path / "ddpm_conv_sampler").sampler_sample(
            2, sampler=kwargs["sampler"], steps=kwargs["steps"], eta=kwargs["eta"], noise=kwargs["noise"],
            raw=True)
        error = np.abs(got - arrays["samples"][-1]).max()
        assert error < keras_tolerance(arrays["samples"]), error
    paths = predict(tmp_path / "ddpm_conv", out=tmp_path / "gen", num=2, steps=3, sampler="ddim", seed=5)
    assert [p.name for p in paths] == ["sample_000.png", "sample_001.png"]
    from PIL import Image

    want = onnx.diffusion_sample(2, seed=5, sampler="ddim", steps=3)
    np.testing.assert_array_equal(np.asarray(Image.open(paths[1])), want[1])
    from kzoo.cli import main  # kzoo predict's explicit DDIMPipeline option

    assert main(["predict", str(tmp_path / "ddpm_conv"), "--num", "2", "--steps", "3", "--seed", "5",
                 "--out", str(tmp_path / "clipped"), "--use-clipped-model-output"]) == 0
    clipped = onnx.diffusion_sample(2, seed=5, sampler="ddim", steps=3, use_clipped_model_output=True)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "clipped" / "sample_001.png")), clipped[1])
    assert np.abs(clipped.astype(int) - want).max() > 1


def test_schedule_in_kzoo_diffusion():
    """The cosine schedule of a converted config is kzoo.diffusion's (one home)."""
    s = NoiseSchedule(1000, beta_schedule="squaredcos_cap_v2")
    u = np.arange(1001) / 1000
    abar = np.cos((u + 0.008) / 1.008 * np.pi / 2) ** 2
    np.testing.assert_allclose(s.alphas_cumprod[:900], (abar[1:] / abar[0])[:900], rtol=1e-6)
