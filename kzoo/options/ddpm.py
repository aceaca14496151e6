"""Options of `kzoo.models.ddpm.DDPM` (Ho et al., 2020), without Keras."""

from kzoo.options import ModelOption, Options

DDPM_OPTIONS = Options(
    ModelOption("image_size", int, 32, "Image height and width (32 for CIFAR-10)."),
    ModelOption("channels", int, 3, "Image channels."),
    ModelOption("width", int, 128, "Base channel count (128)."),
    ModelOption("channel_mults", tuple, (1, 2, 2, 2), "Width multiplier per resolution level ((1, 2, 2, 2))."),
    ModelOption("num_res_blocks", int, 2, "Residual blocks per level (2)."),
    ModelOption("attention_resolutions", tuple, (16,), "Resolutions with self-attention ((16,))."),
    ModelOption("dropout", float, 0.1, "Dropout in the residual blocks (0.1 for CIFAR-10)."),
    ModelOption("norm_groups", int, 32, "Group-norm groups (32)."),
    ModelOption("norm_eps", float, 1e-6, "Group-norm epsilon (1e-6)."),
    ModelOption("attention_head_dim", int, None, "Channels per attention head; None: one head (Ho et al.).",
                optional=True),
    ModelOption("mid_attention", bool, True, "Self-attention in the middle block (True)."),
    ModelOption("flip_sin_to_cos", bool, False, "Cosines first in the time embedding (False in Ho et al.)."),
    ModelOption("freq_shift", int, 1, "Frequency shift of the time embedding (1 in Ho et al.)."),
    ModelOption("downsample_padding", int, 0, '0: TensorFlow\'s "same" padding of the stride-2 convs (Ho et '
                "al.); 1: one pixel on every side (diffusers' default)."),
    ModelOption("center_input_sample", bool, False, "Map the input x -> 2x - 1 first (False)."),
    ModelOption("num_timesteps", int, 1000, "T (1000)."),
    ModelOption("beta_start", float, 1e-4, "β_1 (1e-4)."),
    ModelOption("beta_end", float, 0.02, "β_T (0.02)."),
    ModelOption("beta_schedule", str, "linear", '"linear" (Ho et al.), "scaled_linear" or '
                '"squaredcos_cap_v2" (`kzoo.diffusion.BETA_SCHEDULES`).'),
    ModelOption("ema_decay", float, 0.9999, "Decay of the weight average (0.9999)."),
    ModelOption("variance", str, "beta", 'DDPM sampler\'s σ_t²: "beta" (Ho et al.\'s CIFAR-10 choice) or '
                '"beta_tilde".'),
    ModelOption("clip_sample", bool, True, "Samplers clip the predicted x_0 to [-1, 1] (True, image data)."),
    ModelOption("sampler_options", None, None, "The other `kzoo.diffusion.SamplerOptions` fields "
                "(diffusers' scheduler_config.json options); None: kzoo's own sampler "
                "(`kzoo.diffusion.KZOO`); a dict: diffusers' defaults with these values. Not a "
                "flag (the converter sets it).", optional=True),
    ModelOption("seed", int, None, "Seed of the model's noise generator.", optional=True),
)
