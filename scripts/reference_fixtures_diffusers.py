"""Write the diffusers `UNet2DModel` fixtures the DDPM converter's parity tests read (needs torch).

    pip install torch --index-url https://download.pytorch.org/whl/cpu; pip install diffusers
    python scripts/reference_fixtures_diffusers.py [--out tests/fixtures/reference]

`scripts/make_reference_fixtures.py` calls `write_fixtures(out)` (alias
`make_fixtures`); everything goes to `<out>/diffusers/`:

    <variant>/            a diffusers folder: config.json, diffusion_pytorch_model.safetensors,
                          scheduler_config.json (flat), or unet/ + scheduler/ (pipeline layout)
    <variant>.npz         `x_t` (NHWC float32), `t` (int32) and the reference `eps` (NHWC),
                          computed by diffusers in float32 on the CPU, and the
                          `alphas_cumprod` of its DDPMScheduler
    full_size.json        for each published google/ddpm-* checkpoint: its config.json and the
                          [name, shape] list of `UNet2DModel(**config).state_dict()`
    trajectories.json     the sampling runs of `TRAJECTORIES`: pipeline, eps-network (one of
                          the small variants), scheduler config, steps, eta, seed
    trajectories.npz      per run `<run>/x_T` (the pipeline's initial noise), `<run>/noise` (every
                          noise tensor the scheduler drew, in order), `<run>/timesteps`,
                          `<run>/model_output` (the network's output at each step) and
                          `<run>/samples` (the scheduler's `prev_sample` after each step), NHWC
    versions.json         the torch and diffusers versions that wrote the files
    autoencoder_kl/<variant>/      an AutoencoderKL folder: config.json,
                          diffusion_pytorch_model.safetensors (`AUTOENCODER_KL`)
    autoencoder_kl/<variant>.npz   `x` (NHWC images in [-1, 1]), the posterior's `mean` and
                          (clamped) `logvar`, `z` (a latent) and `decoded` (decode(z)),
                          `reconstruction` (forward: decode of the posterior mean), NHWC
    autoencoder_kl/full_size.json  the Stable Diffusion v1 VAE config and the [name, shape]
                          list of `AutoencoderKL(**config).state_dict()`

Small variants with seeded random weights (all parameters redrawn, so that no
zero-initialised layer hides a mapping error) cover the options of the kzoo network:
attention blocks with one and with several heads, both time-embedding orders and
frequency shifts, both down-sampling paddings, GroupNorm epsilons, no middle attention,
centred inputs, and the attention names of diffusers < 0.14 (query/key/value/proj_attn,
as in every google/ddpm-* upload).

The full-size configs are the published `unet/config.json` of google/ddpm-cifar10-32 and
google/ddpm-{celebahq,church,bedroom,cat}-256 (Ho et al.'s CIFAR-10 and 256x256 models;
the four 256 models share one architecture), written here from their model cards
because this machine cannot reach the Hugging Face hub.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "reference"

SMALL = {  # name -> (UNet2DModel config, scheduler config, layout, legacy attention names)
    "attn_heads_flip": (
        {"sample_size": 8, "in_channels": 3, "out_channels": 3, "block_out_channels": [8, 16],
         "layers_per_block": 1, "norm_num_groups": 4, "attention_head_dim": 8,
         "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
         "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
         "flip_sin_to_cos": True, "freq_shift": 0, "downsample_padding": 1, "norm_eps": 1e-5},
        {"_class_name": "DDPMScheduler", "num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
         "variance_type": "fixed_small", "clip_sample": True},
        "flat", False),
    "ho_legacy_names": (
        {"sample_size": 16, "in_channels": 3, "out_channels": 3, "block_out_channels": [8, 8, 16],
         "layers_per_block": 1, "norm_num_groups": 4, "attention_head_dim": None,
         "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
         "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
         "flip_sin_to_cos": False, "freq_shift": 1, "downsample_padding": 0, "norm_eps": 1e-6,
         "mid_block_scale_factor": 1, "act_fn": "silu", "center_input_sample": False,
         "time_embedding_type": "positional"},
        {"_class_name": "DDPMScheduler", "num_train_timesteps": 1000, "beta_start": 0.0001,
         "beta_end": 0.02, "beta_schedule": "linear", "variance_type": "fixed_large",
         "clip_sample": True, "trained_betas": None},
        "pipeline", True),
    "no_attention_centered": (
        {"sample_size": 8, "in_channels": 1, "out_channels": 1, "block_out_channels": [8, 16],
         "layers_per_block": 1, "norm_num_groups": 4, "attention_head_dim": None,
         "down_block_types": ["DownBlock2D", "DownBlock2D"],
         "up_block_types": ["UpBlock2D", "UpBlock2D"], "add_attention": False,
         "flip_sin_to_cos": True, "freq_shift": 1, "downsample_padding": 0, "norm_eps": 1e-6,
         "center_input_sample": True, "dropout": 0.1},
        {"_class_name": "DDPMScheduler", "num_train_timesteps": 100, "beta_start": 0.001,
         "beta_end": 0.03, "beta_schedule": "scaled_linear", "variance_type": "fixed_small",
         "clip_sample": False},
        "flat", False),
}

_HO_256 = {
    "_class_name": "UNet2DModel", "act_fn": "silu", "attention_head_dim": None,
    "block_out_channels": [128, 128, 256, 256, 512, 512], "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D",
                         "AttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 3,
    "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32,
    "out_channels": 3, "sample_size": 256, "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D",
                       "UpBlock2D"],
}
FULL_SIZE = {
    "google/ddpm-cifar10-32": {
        **_HO_256, "block_out_channels": [128, 256, 256, 256], "sample_size": 32,
        "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]},
    "google/ddpm-celebahq-256": _HO_256,
    "google/ddpm-church-256": _HO_256,
    "google/ddpm-bedroom-256": _HO_256,
    "google/ddpm-cat-256": _HO_256,
}

LEGACY = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def randomize(model, seed):
    """Redraw every parameter: weights ~ N(0, 1/fan_in), biases ~ N(0, 0.1²), norms 1 + N(0, 0.1²)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(noise / np.sqrt(np.prod(p.shape[1:])))


def legacy_names(state):
    """Attention parameters under the names diffusers < 0.14 saved (google/ddpm-* uploads)."""
    out = {}
    for key, value in state.items():
        for new, old in LEGACY.items():
            if ".attentions." in key and f".{new}." in key:
                key = key.replace(f".{new}.", f".{old}.")
        out[key] = value
    return out


def write_small(out, name, config, scheduler, layout, legacy, seed):
    import torch
    from diffusers import UNet2DModel
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = UNet2DModel(**config).eval()
    randomize(model, seed)
    folder = out / name
    unet = folder / "unet" if layout == "pipeline" else folder
    scheduler_dir = folder / "scheduler" if layout == "pipeline" else folder
    unet.mkdir(parents=True, exist_ok=True)
    scheduler_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(legacy_names(state) if legacy else state, str(unet / "diffusion_pytorch_model.safetensors"))
    (unet / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", **config}, indent=1) + "\n")
    (scheduler_dir / "scheduler_config.json").write_text(json.dumps(scheduler, indent=1) + "\n")
    if layout == "pipeline":
        (folder / "model_index.json").write_text(json.dumps(
            {"_class_name": "DDPMPipeline", "scheduler": ["diffusers", "DDPMScheduler"],
             "unet": ["diffusers", "UNet2DModel"]}, indent=1) + "\n")
    rng = np.random.default_rng(seed)
    size, channels = config["sample_size"], config["in_channels"]
    x = rng.standard_normal((2, channels, size, size)).astype(np.float32)
    t = np.array([3, scheduler["num_train_timesteps"] - 1], np.int64)
    with torch.no_grad():
        eps = model(torch.from_numpy(x), torch.from_numpy(t)).sample.numpy()
    from diffusers import DDPMScheduler

    alphas_cumprod = DDPMScheduler.from_config(scheduler).alphas_cumprod.numpy()
    np.savez_compressed(out / f"{name}.npz", x_t=x.transpose(0, 2, 3, 1), t=t.astype(np.int32),
                        eps=eps.transpose(0, 2, 3, 1), alphas_cumprod=alphas_cumprod)


# Whole sampling runs of diffusers' own `DDPMPipeline` / `DDIMPipeline` (eps-network: a
# small variant above; batch 2, torch.Generator seeded per run). name -> (pipeline,
# network, scheduler config, num_inference_steps, eta, use_clipped_model_output).
# DDIMPipeline turns any scheduler into `DDIMScheduler.from_config(scheduler.config)`
# (pipelines/ddim/pipeline_ddim.py, DDIMPipeline.__init__); DDPMPipeline uses it as given.
_CIFAR = {"_class_name": "DDPMScheduler", "num_train_timesteps": 1000, "beta_start": 0.0001,
          "beta_end": 0.02, "beta_schedule": "linear", "variance_type": "fixed_large",
          "clip_sample": True, "trained_betas": None}  # as google/ddpm-cifar10-32 (ho_legacy_names)
TRAJECTORIES = {
    "ddpm_full_T20": ("ddpm", "no_attention_centered",
                      {"_class_name": "DDPMScheduler", "num_train_timesteps": 20, "beta_end": 0.2}, 20, 0.0, None),
    "ddpm_cifar_10": ("ddpm", "attn_heads_flip", _CIFAR, 10, 0.0, None),
    "ddpm_1": ("ddpm", "no_attention_centered", {"_class_name": "DDPMScheduler"}, 1, 0.0, None),
    "ddpm_trailing_v_noclip_3": ("ddpm", "no_attention_centered",
                                 {"_class_name": "DDPMScheduler", "timestep_spacing": "trailing",
                                  "prediction_type": "v_prediction", "clip_sample": False,
                                  "variance_type": "fixed_large"}, 3, 0.0, None),
    "ddpm_sample_threshold_offset_10": ("ddpm", "no_attention_centered",
                                        {"_class_name": "DDPMScheduler", "prediction_type": "sample",
                                         "thresholding": True, "sample_max_value": 1.5,
                                         "dynamic_thresholding_ratio": 0.9, "steps_offset": 1,
                                         "beta_schedule": "squaredcos_cap_v2"}, 10, 0.0, None),
    "ddpm_linspace_range_small_log_7": ("ddpm", "no_attention_centered",
                                        {"_class_name": "DDPMScheduler", "timestep_spacing": "linspace",
                                         "clip_sample_range": 0.5, "variance_type": "fixed_small_log",
                                         "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                                         "beta_end": 0.012}, 7, 0.0, None),
    "ddim_cifar_10": ("ddim", "attn_heads_flip", _CIFAR, 10, 0.0, None),
    "ddim_cifar_1": ("ddim", "no_attention_centered", _CIFAR, 1, 0.0, None),
    "ddim_cifar_3_clipped_output": ("ddim", "no_attention_centered", _CIFAR, 3, 0.0, True),
    "ddim_linspace_noclip_eta_3": ("ddim", "no_attention_centered",
                                   {"_class_name": "DDIMScheduler", "timestep_spacing": "linspace",
                                    "clip_sample": False, "set_alpha_to_one": False}, 3, 0.5, None),
    "ddim_trailing_v_eta1_10": ("ddim", "no_attention_centered",
                                {"_class_name": "DDIMScheduler", "timestep_spacing": "trailing",
                                 "prediction_type": "v_prediction", "clip_sample_range": 0.8,
                                 "beta_schedule": "squaredcos_cap_v2"}, 10, 1.0, True),
    "ddim_offset_threshold_eta_10": ("ddim", "no_attention_centered",
                                     {"_class_name": "DDIMScheduler", "steps_offset": 1,
                                      "set_alpha_to_one": False, "thresholding": True,
                                      "sample_max_value": 2.0, "prediction_type": "sample"}, 10, 0.3, None),
    "ddim_full_T20_eta1": ("ddim", "no_attention_centered",
                           {"_class_name": "DDIMScheduler", "num_train_timesteps": 20, "beta_end": 0.2,
                            "clip_sample": False}, 20, 1.0, None),
}
BATCH = 2


def write_trajectories(out):
    """Run each of `TRAJECTORIES` through the diffusers pipeline itself, recording every
    random draw (`randn_tensor`, which both pipelines and both schedulers call), each
    network output and each scheduler step."""
    import diffusers
    import torch
    from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel
    from diffusers.pipelines.ddim import pipeline_ddim
    from diffusers.pipelines.ddpm import pipeline_ddpm
    from diffusers.schedulers import scheduling_ddim, scheduling_ddpm

    def nhwc(t):
        return t.detach().numpy().transpose(0, 2, 3, 1).astype(np.float32)

    arrays, runs = {}, {}
    for seed, (name, (pipe_kind, net, sched, steps, eta, clipped)) in enumerate(TRAJECTORIES.items()):
        folder = out / net
        unet = UNet2DModel.from_pretrained(folder / "unet" if (folder / "unet").is_dir() else folder).eval()
        scheduler_cls = {"DDPMScheduler": DDPMScheduler, "DDIMScheduler": DDIMScheduler}[sched["_class_name"]]
        scheduler = scheduler_cls.from_config({k: v for k, v in sched.items() if k != "_class_name"})
        pipe = (DDPMPipeline if pipe_kind == "ddpm" else DDIMPipeline)(unet=unet, scheduler=scheduler)
        pipe.set_progress_bar_config(disable=True)
        draws, outputs, samples = [], [], []
        original_randn = diffusers.utils.torch_utils.randn_tensor

        def recording_randn(*args, **kwargs):
            value = original_randn(*args, **kwargs)
            draws.append(nhwc(value))
            return value

        modules = (pipeline_ddpm, pipeline_ddim, scheduling_ddpm, scheduling_ddim)
        for m in modules:
            m.randn_tensor = recording_randn
        original_step, original_forward = pipe.scheduler.step, pipe.unet.forward

        def step(*args, **kwargs):
            result = original_step(*args, **kwargs)
            samples.append(nhwc(result.prev_sample))
            return result

        def forward(*args, **kwargs):
            result = original_forward(*args, **kwargs)
            outputs.append(nhwc(result.sample))
            return result

        pipe.scheduler.step, pipe.unet.forward = step, forward
        kwargs = {} if pipe_kind == "ddpm" else {"eta": eta, "use_clipped_model_output": clipped}
        try:
            image = pipe(batch_size=BATCH, generator=torch.Generator().manual_seed(seed),
                         num_inference_steps=steps, output_type="np", **kwargs).images
        finally:
            for m in modules:
                m.randn_tensor = original_randn
        # the pipeline's output is (x_0 / 2 + 0.5).clamp(0, 1) of the last step's sample
        assert np.allclose(image, np.clip(samples[-1] / 2 + 0.5, 0, 1), atol=1e-6)
        arrays.update({f"{name}/x_T": draws[0], f"{name}/noise": np.stack(draws[1:]) if len(draws) > 1
                       else np.zeros((0, *draws[0].shape), np.float32),
                       f"{name}/timesteps": pipe.scheduler.timesteps.numpy().astype(np.int64),
                       f"{name}/model_output": np.stack(outputs), f"{name}/samples": np.stack(samples)})
        runs[name] = {"pipeline": {"ddpm": "DDPMPipeline", "ddim": "DDIMPipeline"}[pipe_kind],
                      "network": net, "scheduler_config": sched, "num_inference_steps": steps,
                      "eta": eta, "use_clipped_model_output": clipped, "seed": seed, "batch_size": BATCH,
                      "scheduler_used": type(pipe.scheduler).__name__}
    np.savez_compressed(out / "trajectories.npz", **arrays)
    (out / "trajectories.json").write_text(json.dumps(runs, indent=1) + "\n")


def write_full_size(out):
    import torch
    from diffusers import UNet2DModel

    full = {}
    for repo, config in FULL_SIZE.items():
        with torch.device("meta"):
            model = UNet2DModel(**{k: v for k, v in config.items() if not k.startswith("_")})
        full[repo] = {"config": config,
                      "parameters": [[k, list(v.shape)] for k, v in model.state_dict().items()]}
    (out / "full_size.json").write_text(json.dumps(full, separators=(",", ":")) + "\n")


# AutoencoderKL (Stable Diffusion's VAE) variants: name -> (config, legacy attention names).
AUTOENCODER_KL = {
    "kl_legacy_names": (
        {"sample_size": 16, "in_channels": 3, "out_channels": 3, "latent_channels": 4,
         "block_out_channels": [4, 8], "layers_per_block": 1, "norm_num_groups": 2,
         "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
         "act_fn": "silu", "scaling_factor": 0.18215}, True),
    "kl_three_blocks_no_quant": (
        {"sample_size": 16, "in_channels": 3, "out_channels": 3, "latent_channels": 3,
         "block_out_channels": [4, 4, 8], "layers_per_block": 2, "norm_num_groups": 2,
         "down_block_types": ["DownEncoderBlock2D"] * 3, "up_block_types": ["UpDecoderBlock2D"] * 3,
         "use_quant_conv": False, "use_post_quant_conv": False, "scaling_factor": 0.5}, False),
    "kl_no_mid_attention": (
        {"sample_size": 8, "in_channels": 1, "out_channels": 1, "latent_channels": 2,
         "block_out_channels": [4, 8], "layers_per_block": 1, "norm_num_groups": 2,
         "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
         "mid_block_add_attention": False}, False),
}

# Stable Diffusion v1's autoencoder (the kl-f8 VAE that stabilityai/sd-vae-ft-mse and
# sd-vae-ft-ema fine-tune, "drop-in replacement" per their model cards): the first_stage_config
# ddconfig of CompVis/stable-diffusion configs/stable-diffusion/v1-inference.yaml (ch 128,
# ch_mult [1, 2, 4, 4], num_res_blocks 2, z_channels 4, in_channels 3, out_ch 3, scale_factor
# 0.18215) as diffusers maps it (loaders/single_file_utils.py
# create_vae_diffusers_config_from_ldm); sample_size 256 as the model cards evaluate (COCO
# 2017 256x256). The converter reads each repository's own config.json.
AUTOENCODER_KL_FULL_SIZE = {
    "stable-diffusion-v1-vae": {
        "_class_name": "AutoencoderKL", "sample_size": 256, "in_channels": 3, "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [128, 256, 512, 512], "latent_channels": 4, "layers_per_block": 2,
        "scaling_factor": 0.18215},
}


def write_autoencoder_kl(out, seed0=100):
    """The AutoencoderKL fixtures into `<out>/autoencoder_kl/`."""
    import torch
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    out = Path(out) / "autoencoder_kl"
    out.mkdir(parents=True, exist_ok=True)
    for seed, (name, (config, legacy)) in enumerate(AUTOENCODER_KL.items(), seed0):
        torch.manual_seed(seed)
        model = AutoencoderKL(**config).eval()
        randomize(model, seed)
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(legacy_names(state) if legacy else state,
                  str(folder / "diffusion_pytorch_model.safetensors"))
        (folder / "config.json").write_text(
            json.dumps({"_class_name": "AutoencoderKL", **config}, indent=1) + "\n")
        rng = np.random.default_rng(seed)
        size, channels = config["sample_size"], config["in_channels"]
        factor = 2 ** (len(config["block_out_channels"]) - 1)
        x = rng.uniform(-1, 1, (2, channels, size, size)).astype(np.float32)
        z = rng.standard_normal((2, config["latent_channels"], size // factor,
                                 size // factor)).astype(np.float32)
        with torch.no_grad():
            posterior = model.encode(torch.from_numpy(x)).latent_dist
            decoded = model.decode(torch.from_numpy(z)).sample
            reconstruction = model(torch.from_numpy(x)).sample  # decode(posterior.mode())
        nhwc = lambda t: np.asarray(t).transpose(0, 2, 3, 1)  # noqa: E731
        np.savez_compressed(out / f"{name}.npz", x=nhwc(x), mean=nhwc(posterior.mean),
                            logvar=nhwc(posterior.logvar), z=nhwc(z), decoded=nhwc(decoded),
                            reconstruction=nhwc(reconstruction))
    full = {}
    for name, config in AUTOENCODER_KL_FULL_SIZE.items():
        with torch.device("meta"):
            model = AutoencoderKL(**{k: v for k, v in config.items() if not k.startswith("_")})
        full[name] = {"config": config,
                      "parameters": [[k, list(v.shape)] for k, v in model.state_dict().items()]}
    (out / "full_size.json").write_text(json.dumps(full, separators=(",", ":")) + "\n")


def write_fixtures(out_dir=OUT):
    """Write every diffusers fixture into `<out_dir>/diffusers/`."""
    import diffusers
    import torch

    out = Path(out_dir) / "diffusers"
    out.mkdir(parents=True, exist_ok=True)
    for seed, (name, (config, scheduler, layout, legacy)) in enumerate(SMALL.items()):
        write_small(out, name, config, scheduler, layout, legacy, seed)
    write_full_size(out)
    write_trajectories(out)
    write_autoencoder_kl(out)
    (out / "versions.json").write_text(json.dumps(
        {"torch": torch.__version__, "diffusers": diffusers.__version__}, indent=1) + "\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {total / 1e3:.0f} kB")


make_fixtures = write_fixtures  # the name scripts/make_reference_fixtures.py calls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    write_fixtures(parser.parse_args(argv).out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
