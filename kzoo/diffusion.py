"""Noise schedule and samplers of denoising diffusion models, in plain array arithmetic.

Model-free, in the style of diffusers' `DDPMScheduler`: nothing here imports Keras
or TensorFlow, so the same code drives sampling from a Keras model and from an ONNX
Runtime session. A sampler only ever calls ``eps_fn(x_t, t)`` -- the network's
prediction for a batch ``x_t`` at integer timesteps ``t`` (shape ``(batch,)``, int32):
the noise ε, or x_0 or v where `SamplerOptions.prediction_type` says so.

Conventions (those of Ho et al.'s reference code): timesteps are 0-based,
``t = 0 .. T-1``; ``alphas_cumprod[t]`` is ᾱ of step ``t + 1`` in the paper, and the
"previous" cumulative product of the last step is ᾱ = 1 (clean data).

- Schedule: linear β from 1e-4 to 0.02 over T = 1000 steps (Ho et al., 2020, Sec. 4);
  also the two other schedules of diffusers' `DDPMScheduler` that published
  checkpoints name in `scheduler_config.json`: "scaled_linear" (β linear in sqrt β,
  latent diffusion) and "squaredcos_cap_v2" (Nichol & Dhariwal's cosine ᾱ, β ≤ 0.999).
- Forward process: ``q_sample`` draws x_t ~ q(x_t | x_0) in closed form,
  x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε (Ho et al., Eq. 4); ``forward_step`` is one
  single step q(x_t | x_{t-1}) (Eq. 2), used to check the closed form.
- DDPM ancestral step (Ho et al., Algorithm 2): x_{t-1} ~ N(μ̃_t(x_t, x̂_0), σ_t² I)
  with the posterior mean of Eq. 7 and σ_t² = β_t ("fixed_large", Ho et al.'s choice
  for CIFAR-10) or σ_t² = β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) β_t ("fixed_small", the
  posterior variance). Both "had similar results" (Sec. 3.2).
- DDIM step (Song et al., 2021, Eq. 12): x_{s} = sqrt(ᾱ_s) x̂_0 +
  sqrt(1 - ᾱ_s - σ²) ε + σ z with σ = η sqrt((1 - ᾱ_s) / (1 - ᾱ_t)) sqrt(1 - ᾱ_t / ᾱ_s).
  η = 0 is deterministic; η = 1 with all T steps *is* the DDPM sampler with β̃.
- Sub-sequences of N < T steps: the DDPM step uses the respaced β = 1 - ᾱ_t / ᾱ_s
  (Nichol & Dhariwal, 2021, Sec. 4).

Sampler options (`SamplerOptions`) are the fields of diffusers' `scheduler_config.json`
that change a sample, with diffusers' meaning and defaults: with the same network and
the same noise, `sample(...)` with `DIFFUSERS` options draws what diffusers 0.42's
`DDPMPipeline` (`sampler="ddpm"`, DDPMScheduler) and `DDIMPipeline` (`sampler="ddim"`,
DDIMScheduler) draw. The maths is read from diffusers' `schedulers/scheduling_ddpm.py`
(`DDPMScheduler.set_timesteps`, `.previous_timestep`, `._get_variance`, `.step`),
`schedulers/scheduling_ddim.py` (`DDIMScheduler.__init__`, `.set_timesteps`, `.step`),
`pipelines/ddpm/pipeline_ddpm.py` and `pipelines/ddim/pipeline_ddim.py` (`__call__`);
tests/test_diffusion.py replays whole diffusers runs (scripts/reference_fixtures_diffusers.py).
kzoo's own models keep kzoo's own sampler, `KZOO`: Ho et al.'s reference DDPM
("fixed_large", clipped x̂_0; over all T steps it is DDPMPipeline with that config),
evenly spaced sub-sequences floor(i T / N) stepping to the next visited timestep, and
DDIM's ε re-derived from the clipped x̂_0. The model's options travel in its Keras
config and in kzoo.json (`diffusion.sampler_options`), which `kzoo.infer` reads.

Random draws, in diffusers' order: x_T first (the pipelines' `randn_tensor` of the
batch shape), then per step: the DDPM step draws one noise tensor when t > 0
(`DDPMScheduler.step`: `if t > 0`), the DDIM step draws one at every step when η > 0
(`DDIMScheduler.step`: `if eta > 0`). `sample(..., noise=[x_T, z_1, ...])` replays
given draws in that order (e.g. diffusers' own, NCHW -> NHWC).

Functions take an optional ``xp`` array namespace (default NumPy); the training
step passes ``keras.ops`` to ``q_sample`` so that training and sampling use the
same schedule arrays.

References:
    Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
    Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021.
    Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021.
    Saharia et al., "Photorealistic Text-to-Image Diffusion Models with Deep Language
    Understanding" (Imagen; dynamic thresholding), NeurIPS 2022.
    Salimans & Ho, "Progressive Distillation for Fast Sampling of Diffusion Models"
    (v-prediction), ICLR 2022.
    von Platen et al., "Diffusers: State-of-the-art diffusion models", GitHub 2022 (0.42.1).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kzoo.errors import KzooError

SAMPLERS = ("ddpm", "ddim")
VARIANCES = ("beta", "beta_tilde")  # kzoo's names of DDPM's σ_t²: β (fixed_large), β̃ (fixed_small)
VARIANCE_TYPES = {"beta": "fixed_large", "beta_tilde": "fixed_small"}
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
# DDPMScheduler's variance types kzoo runs; "fixed_small_log" is the same σ (exp(0.5 log β̃)).
DDPM_VARIANCE_TYPES = ("fixed_small", "fixed_small_log", "fixed_large")
# diffusers' three (set_timesteps) and kzoo's own floor(i T / N) ("even", Song et al.'s linear τ)
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace", "even")


@dataclasses.dataclass(frozen=True)
class SamplerOptions:
    """How the samplers turn a network output into the next x: the fields of a diffusers
    `scheduler_config.json` that change a sample, with diffusers' defaults
    (`DDPMScheduler.__init__` / `DDIMScheduler.__init__` in diffusers 0.42; both share
    every default), plus the `DDIMPipeline.__call__` argument `use_clipped_model_output`.

    Args:
        prediction_type: str. What the network predicts: "epsilon" (ε), "sample" (x_0) or
            "v_prediction" (v = sqrt(ᾱ) ε - sqrt(1 - ᾱ) x_0).
        clip_sample: bool. Clip x̂_0 to [-clip_sample_range, clip_sample_range].
        clip_sample_range: float. 1.0.
        thresholding: bool. Dynamic thresholding of x̂_0 (Saharia et al., 2022; diffusers'
            `_threshold_sample`); replaces clipping when on.
        dynamic_thresholding_ratio: float. The quantile of |x̂_0| per example (0.995).
        sample_max_value: float. Upper bound of the threshold (1.0).
        variance_type: str. DDPM's σ_t²: "fixed_small" (β̃, diffusers' default),
            "fixed_small_log" (the same σ) or "fixed_large" (β).
        set_alpha_to_one: bool. DDIM: ᾱ after the last step is 1 (else ᾱ_0).
        steps_offset: int. Added to "leading" timesteps.
        timestep_spacing: str. "leading", "trailing", "linspace" (diffusers) or "even"
            (kzoo: floor(i T / N), each step to the next visited timestep).
        use_clipped_model_output: bool. DDIM: re-derive ε from the clipped x̂_0 (False,
            `DDIMPipeline`'s default: it passes None, which `DDIMScheduler.step` treats as False).
    """

    prediction_type: str = "epsilon"
    clip_sample: bool = True
    clip_sample_range: float = 1.0
    thresholding: bool = False
    dynamic_thresholding_ratio: float = 0.995
    sample_max_value: float = 1.0
    variance_type: str = "fixed_small"
    set_alpha_to_one: bool = True
    steps_offset: int = 0
    timestep_spacing: str = "leading"
    use_clipped_model_output: bool = False

    def __post_init__(self):
        for name, value, allowed in (("prediction_type", self.prediction_type, PREDICTION_TYPES),
                                     ("variance_type", self.variance_type, DDPM_VARIANCE_TYPES),
                                     ("timestep_spacing", self.timestep_spacing, TIMESTEP_SPACINGS)):
            if value not in allowed:
                raise KzooError(f"sampler option {name}={value!r} is not supported; supported: "
                                f"{', '.join(allowed)}")
        for name in ("clip_sample", "thresholding", "set_alpha_to_one", "use_clipped_model_output"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise KzooError(f"sampler option {name} must be true or false, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        for name in ("clip_sample_range", "dynamic_thresholding_ratio", "sample_max_value"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise KzooError(f"sampler option {name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not 0.0 <= self.dynamic_thresholding_ratio <= 1.0:
            raise KzooError(f"sampler option dynamic_thresholding_ratio must be in [0, 1], got "
                            f"{self.dynamic_thresholding_ratio}")
        if isinstance(self.steps_offset, bool) or int(self.steps_offset) != self.steps_offset:
            raise KzooError(f"sampler option steps_offset must be an integer, got {self.steps_offset!r}")
        object.__setattr__(self, "steps_offset", int(self.steps_offset))
        if self.steps_offset and self.timestep_spacing == "even":
            raise KzooError("sampler option steps_offset applies to timestep_spacing 'leading' only")

    def config(self):
        """The options as plain JSON values (kzoo.json's `diffusion.sampler_options`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config):
        """`SamplerOptions` of a dict of its fields (missing ones: diffusers' defaults)."""
        if isinstance(config, cls):
            return config
        unknown = sorted(set(config or {}) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise KzooError(f"unknown sampler option(s) {', '.join(unknown)}; known: "
                            f"{', '.join(f.name for f in dataclasses.fields(cls))}")
        return cls(**(config or {}))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


DIFFUSERS = SamplerOptions()  # diffusers' defaults: DDPMPipeline / DDIMPipeline as shipped
# kzoo's own models (Ho et al.'s reference sampler; kzoo's DDIM before diffusers parity)
KZOO = SamplerOptions(variance_type="fixed_large", timestep_spacing="even",
                      use_clipped_model_output=True)

# --- diffusers' scheduler_config.json ----------------------------------------------------
# Every constructor argument of DDPMScheduler and DDIMScheduler (diffusers 0.42,
# schedulers/scheduling_ddpm.py and scheduling_ddim.py, `__init__`), and what kzoo does
# with it. All change a sample (dynamic_thresholding_ratio and sample_max_value only with
# thresholding, clip_sample_range only with clip_sample). A DDPMScheduler's config keeps
# keys it does not take (ConfigMixin.from_config), and DDIMPipeline reads them through
# `DDIMScheduler.from_config(scheduler.config)`: both samplers read one merged set.
SCHEDULE_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule",
                 "trained_betas", "rescale_betas_zero_snr")
SAMPLER_KEYS = tuple(f.name for f in dataclasses.fields(SamplerOptions)
                     if f.name != "use_clipped_model_output")  # a pipeline argument, not config
# Keys that never change a sample: ConfigMixin's bookkeeping (configuration_utils.py:
# `save_config` writes _class_name and _diffusers_version, `register_to_config` records
# _use_default_values); every other key starting with "_" is bookkeeping too.
METADATA_KEYS = ("_class_name", "_diffusers_version", "_use_default_values")
SCHEDULER_CLASSES = ("DDPMScheduler", "DDIMScheduler")


def scheduler_config_options(config):
    """The schedule and sampler options of a diffusers `scheduler_config.json`.

    kzoo's "ddpm" sampler is then `DDPMPipeline` with `DDPMScheduler.from_config(config)`,
    its "ddim" sampler `DDIMPipeline` (which makes any scheduler a
    `DDIMScheduler.from_config(scheduler.config)`, pipelines/ddim/pipeline_ddim.py).

    Args:
        config: dict. The parsed file; missing keys take diffusers' defaults.

    Returns:
        `(schedule, options)`: `NoiseSchedule` keyword arguments and `SamplerOptions`.

    Raises:
        KzooError: one line naming a key kzoo does not know, or a value it does not run
            (trained_betas, rescale_betas_zero_snr, a learned variance ...).

    Example:
    >>> schedule, options = scheduler_config_options({"variance_type": "fixed_large"})
    >>> schedule["num_timesteps"], options.variance_type, options.use_clipped_model_output
    (1000, 'fixed_large', False)
    """
    config = dict(config or {})
    cls = config.get("_class_name", "DDPMScheduler")
    if cls not in SCHEDULER_CLASSES:
        raise KzooError(f"diffusers scheduler {cls} is not supported; kzoo reproduces "
                        f"{' and '.join(SCHEDULER_CLASSES)}")
    unknown = sorted(k for k in config if not k.startswith("_")
                     and k not in SCHEDULE_KEYS and k not in SAMPLER_KEYS)
    if unknown:
        raise KzooError(f"diffusers scheduler option {unknown[0]}={config[unknown[0]]!r} is unknown to "
                        f"kzoo and could change the samples; known: "
                        f"{', '.join(SCHEDULE_KEYS + SAMPLER_KEYS)}")
    if config.get("trained_betas") is not None:
        raise KzooError("diffusers scheduler trained_betas are not supported; use one of the "
                        f"beta schedules {', '.join(BETA_SCHEDULES)}")
    if config.get("rescale_betas_zero_snr"):
        raise KzooError("diffusers scheduler rescale_betas_zero_snr=true is not supported "
                        "(zero terminal SNR, Lin et al. 2024)")
    beta_schedule = config.get("beta_schedule", "linear")
    if beta_schedule not in BETA_SCHEDULES:
        raise KzooError(f"diffusers beta_schedule {beta_schedule!r} is not supported; "
                        f"supported: {', '.join(BETA_SCHEDULES)}")
    variance = config.get("variance_type", "fixed_small")
    if variance in ("learned", "learned_range"):  # DDPMScheduler.step splits the model output
        raise KzooError(f"diffusers variance_type {variance!r} is not supported: it needs a network "
                        "that also predicts the variance; kzoo's predicts only the mean")
    if variance == "fixed_large_log":  # DDPMScheduler.step: sqrt(log β) * noise, NaN for β < 1
        raise KzooError("diffusers variance_type 'fixed_large_log' is not supported: "
                        "DDPMScheduler.step takes the square root of log(beta) < 0 (NaN samples)")
    schedule = {"num_timesteps": int(config.get("num_train_timesteps", 1000)),
                "beta_start": float(config.get("beta_start", 1e-4)),
                "beta_end": float(config.get("beta_end", 0.02)), "beta_schedule": beta_schedule}
    options = SamplerOptions(**{k: config[k] for k in SAMPLER_KEYS if k in config})
    return schedule, options


def linear_betas(num_timesteps=1000, beta_start=1e-4, beta_end=0.02):
    """β_1..β_T increasing linearly (Ho et al., 2020, Sec. 4), float64."""
    return np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)


def scaled_linear_betas(num_timesteps=1000, beta_start=0.00085, beta_end=0.012):
    """β_1..β_T with sqrt β linear from sqrt `beta_start` to sqrt `beta_end` (Rombach et al., 2022)."""
    return np.linspace(beta_start ** 0.5, beta_end ** 0.5, num_timesteps, dtype=np.float64) ** 2


def cosine_betas(num_timesteps=1000, max_beta=0.999, offset=0.008):
    """β_t = min(1 - ᾱ(t/T) / ᾱ((t-1)/T), `max_beta`) with ᾱ(u) = cos²((u + s)/(1 + s) π/2)
    (Nichol & Dhariwal, 2021, Eq. 17; diffusers' "squaredcos_cap_v2")."""
    u = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
    alpha_bar = np.cos((u + offset) / (1.0 + offset) * np.pi / 2.0) ** 2
    return np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta)


def make_betas(beta_schedule, num_timesteps, beta_start, beta_end):
    """The β of `beta_schedule` (one of `BETA_SCHEDULES`; the cosine one ignores start/end)."""
    if beta_schedule == "linear":
        return linear_betas(num_timesteps, beta_start, beta_end)
    if beta_schedule == "scaled_linear":
        return scaled_linear_betas(num_timesteps, beta_start, beta_end)
    if beta_schedule == "squaredcos_cap_v2":
        return cosine_betas(num_timesteps)
    raise KzooError(f"unknown beta schedule {beta_schedule!r}; supported: {', '.join(BETA_SCHEDULES)}")


@dataclasses.dataclass(frozen=True)
class NoiseSchedule:
    """The variance schedule of a DDPM and everything derived from it.

    Args:
        num_timesteps: int. T, the number of diffusion steps.
        beta_start: float. β_1.
        beta_end: float. β_T.
        beta_schedule: str. One of `BETA_SCHEDULES` ("linear").

    Example:
    >>> s = NoiseSchedule()
    >>> round(float(s.alphas_cumprod[-1]), 6)
    4e-05
    """

    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "linear"

    def __post_init__(self):
        if int(self.num_timesteps) != self.num_timesteps or self.num_timesteps < 1:
            raise KzooError(f"the number of diffusion timesteps must be a positive integer, "
                            f"got {self.num_timesteps}")
        if not 0.0 < self.beta_start <= self.beta_end < 1.0:
            raise KzooError(f"betas must satisfy 0 < beta_start <= beta_end < 1, got "
                            f"{self.beta_start}..{self.beta_end}")
        betas = make_betas(self.beta_schedule, self.num_timesteps, self.beta_start, self.beta_end)
        alphas_cumprod = np.cumprod(1.0 - betas)
        for name, value in {
            "betas": betas,
            "alphas": 1.0 - betas,
            "alphas_cumprod": alphas_cumprod,
            "sqrt_alphas_cumprod": np.sqrt(alphas_cumprod),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - alphas_cumprod),
        }.items():
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    def config(self):
        """The constructor arguments as plain JSON values (kzoo.json's `diffusion` entry)."""
        return {"num_timesteps": int(self.num_timesteps), "beta_start": float(self.beta_start),
                "beta_end": float(self.beta_end), "beta_schedule": self.beta_schedule}

    # --- forward process ----------------------------------------------------------
    def q_sample(self, x0, t, noise, xp=None):
        """x_t ~ q(x_t | x_0) = N(sqrt(ᾱ_t) x_0, (1 - ᾱ_t) I) with the given noise (Eq. 4).

        `t` holds one timestep per example (shape (batch,)); `xp` is the array
        namespace (NumPy by default, `keras.ops` in the training step).
        """
        xp = np if xp is None else xp
        a = _per_example(xp, self.sqrt_alphas_cumprod, t, x0)
        b = _per_example(xp, self.sqrt_one_minus_alphas_cumprod, t, x0)
        return a * x0 + b * noise

    def forward_step(self, x_prev, t, noise):
        """One forward step x_t ~ q(x_t | x_{t-1}) = N(sqrt(1 - β_t) x_{t-1}, β_t I) (Eq. 2)."""
        beta = float(self.betas[t])
        return np.sqrt(1.0 - beta) * x_prev + np.sqrt(beta) * noise

    # --- reverse process ----------------------------------------------------------
    def timesteps(self, steps, spacing="even", steps_offset=0):
        """The N = `steps` timesteps a sampler visits, in decreasing order.

        "even" (kzoo): all T steps for N = T, else ``floor(i T / N)``, i = N-1 .. 0
        (Song et al., 2021, Sec. 4.2, "linear" sub-sequence). "leading", "trailing" and
        "linspace": diffusers' `DDPMScheduler.set_timesteps` / `DDIMScheduler.set_timesteps`
        (the same NumPy expressions), "leading" shifted by `steps_offset`.
        """
        steps = check_steps(steps, self.num_timesteps)
        T = self.num_timesteps
        if spacing == "even":
            ts = (np.arange(steps, dtype=np.int64) * T // steps)[::-1]
        elif spacing == "linspace":
            ts = np.linspace(0, T - 1, steps).round()[::-1].copy().astype(np.int64)
        elif spacing == "leading":
            ratio = T // steps
            ts = (np.arange(0, steps) * ratio).round()[::-1].copy().astype(np.int64) + int(steps_offset)
        elif spacing == "trailing":
            ratio = T / steps
            ts = np.round(np.arange(T, 0, -ratio)).astype(np.int64) - 1
        else:
            raise KzooError(f"unknown timestep spacing {spacing!r}; supported: "
                            f"{', '.join(TIMESTEP_SPACINGS)}")
        if len(ts) != steps or ts.min() < 0 or ts.max() >= T:
            raise KzooError(f"{steps} sampling steps with timestep_spacing={spacing!r} and "
                            f"steps_offset={steps_offset} visit timesteps outside 0..{T - 1}: "
                            f"{ts.min()}..{ts.max()}")
        return ts

    def previous_timesteps(self, ts, sampler, spacing="even"):
        """Where each step of `ts` goes (-1: past the last, x_0).

        DDPM: the next visited timestep (`DDPMScheduler.previous_timestep`). DDIM:
        ``t - T // N`` (`DDIMScheduler.step`, for every diffusers spacing, even where that
        is not the next visited one), kzoo's "even": the next visited timestep.
        """
        ts = np.asarray(ts, np.int64)
        if sampler == "ddim" and spacing != "even":
            return ts - self.num_timesteps // len(ts)
        return np.append(ts[1:], -1)

    def _cumprod(self, t, final=1.0):
        return final if t < 0 else float(self.alphas_cumprod[t])

    def predict_x0(self, x, t, eps):
        """x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t) (Ho et al., Eq. 15)."""
        a = self._cumprod(t)
        return (x - np.sqrt(1.0 - a) * eps) / np.sqrt(a)

    def denoise(self, output, t, x, options=DIFFUSERS, xp=None):
        """`(x̂_0, ε̂)` from the network output at timestep `t`, x̂_0 thresholded or clipped.

        The first half of diffusers' `DDPMScheduler.step` / `DDIMScheduler.step`
        ("compute predicted original sample from predicted noise", then
        `_threshold_sample` or clamp to ±clip_sample_range). ε̂ is the DDIM direction
        (`pred_epsilon`): the network's, or, with `use_clipped_model_output`, the one
        that the clipped x̂_0 implies.
        """
        xp = np if xp is None else xp
        a = self._cumprod(t)
        if options.prediction_type == "epsilon":
            x0, eps = (x - np.sqrt(1.0 - a) * output) / np.sqrt(a), output
        elif options.prediction_type == "sample":
            x0 = output
            eps = (x - np.sqrt(a) * x0) / np.sqrt(1.0 - a)
        else:  # v_prediction (Salimans & Ho, 2022)
            x0 = np.sqrt(a) * x - np.sqrt(1.0 - a) * output
            eps = np.sqrt(a) * output + np.sqrt(1.0 - a) * x
        if options.thresholding:
            x0 = threshold(x0, options.dynamic_thresholding_ratio, options.sample_max_value)
        elif options.clip_sample:
            x0 = xp.clip(x0, -options.clip_sample_range, options.clip_sample_range)
        if options.use_clipped_model_output:
            eps = (x - np.sqrt(a) * x0) / np.sqrt(1.0 - a)
        return x0, eps

    def ddpm_step(self, output, t, prev_t, x, draw, options=KZOO):
        """One ancestral step x_t -> x_{prev_t} (Ho et al., Algorithm 2; Eq. 6-7).

        diffusers' `DDPMScheduler.step`: the posterior mean of the (clipped) x̂_0, plus
        σ z with z = `draw()` when t > 0 -- also on a last step whose t > 0 ("trailing",
        `steps_offset`), where fixed_large's σ² = 1 - ᾱ_t. σ² of fixed_small is
        clamped at 1e-20 (`_get_variance`). Returns `(x_prev, x0_hat)`.
        """
        a_t, a_s = self._cumprod(t), self._cumprod(prev_t)
        beta = 1.0 - a_t / a_s
        x0, _ = self.denoise(output, t, x, options)
        mean = (np.sqrt(a_s) * beta / (1.0 - a_t)) * x0 + (
            np.sqrt(1.0 - beta) * (1.0 - a_s) / (1.0 - a_t)) * x
        if t <= 0:
            return mean, x0
        if options.variance_type == "fixed_large":
            var = beta
        else:  # fixed_small and fixed_small_log: exp(0.5 log β̃) = sqrt(β̃)
            var = max((1.0 - a_s) / (1.0 - a_t) * beta, 1e-20)
        return mean + np.sqrt(var) * draw(), x0

    def ddim_step(self, output, t, prev_t, x, draw, eta=0.0, options=KZOO):
        """One generalized step x_t -> x_{prev_t} (Song et al., 2021, Eq. 12 and 16).

        diffusers' `DDIMScheduler.step`: ᾱ past the last step is 1 (`set_alpha_to_one`)
        or ᾱ_0; σ = η sqrt(β̃); z = `draw()` at every step when η > 0. The direction
        sqrt(1 - ᾱ_s - σ²) is taken as 0 where rounding makes it negative (diffusers: NaN,
        only possible for η > 1). Returns `(x_prev, x0_hat)`.
        """
        final = 1.0 if options.set_alpha_to_one else float(self.alphas_cumprod[0])
        a_t, a_s = self._cumprod(t), self._cumprod(prev_t, final)
        x0, eps = self.denoise(output, t, x, options)
        sigma = eta * np.sqrt((1.0 - a_s) / (1.0 - a_t) * (1.0 - a_t / a_s))
        x_prev = np.sqrt(a_s) * x0 + np.sqrt(max(1.0 - a_s - sigma ** 2, 0.0)) * eps
        if eta > 0:
            x_prev = x_prev + sigma * draw()
        return x_prev, x0


def threshold(x0, ratio=0.995, max_value=1.0):
    """Dynamic thresholding (Saharia et al., 2022, Sec. 2.3; diffusers' `_threshold_sample`):
    per example, s = the `ratio` quantile of |x̂_0| clamped to [1, `max_value`]; x̂_0 is
    clipped to [-s, s] and divided by s. NumPy's and torch's quantiles both interpolate
    linearly."""
    x0 = np.asarray(x0)
    flat = x0.reshape(len(x0), -1)
    s = np.clip(np.quantile(np.abs(flat), ratio, axis=1), 1.0, max_value)[:, None]
    return (np.clip(flat, -s, s) / s).reshape(x0.shape).astype(x0.dtype)


def _per_example(xp, table, t, like):
    """`table[t]` as float32, shaped to broadcast against `like` (batch first)."""
    values = xp.take(np.asarray(table, np.float32), t)
    return xp.reshape(values, (-1,) + (1,) * (len(like.shape) - 1))


def check_steps(steps, num_timesteps):
    """`steps` as an int in 1..T, or a KzooError naming the bad value."""
    if isinstance(steps, bool) or int(steps) != steps or not 1 <= steps <= num_timesteps:
        raise KzooError(f"sampling steps must be an integer from 1 to T = {num_timesteps} "
                        f"(the model's diffusion timesteps), got {steps}")
    return int(steps)


def check_sampler(sampler):
    if sampler not in SAMPLERS:
        raise KzooError(f"unknown sampler {sampler!r}; use {' or '.join(SAMPLERS)}")
    return sampler


def batched(eps_fn, batch_size):
    """`eps_fn` called on consecutive slices of at most `batch_size` examples, concatenated.

    Drawing many images then costs memory for `batch_size` of them per network call,
    and the sampler's random stream (x_T and the step noise, drawn for the whole
    batch) is the same for every `batch_size`: the images do not depend on it.
    """
    if batch_size is None:
        return eps_fn
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise KzooError(f"the sampling batch size must be a positive integer, got {batch_size}")
    batch_size = int(batch_size)

    def eps_in_batches(x, t):
        if len(x) <= batch_size:
            return eps_fn(x, t)
        return np.concatenate([np.asarray(eps_fn(x[i:i + batch_size], t[i:i + batch_size]), np.float32)
                               for i in range(0, len(x), batch_size)])

    return eps_in_batches


def sample(eps_fn, shape, *, schedule=None, sampler="ddpm", steps=None, eta=0.0, options=None,
           variance=None, clip_denoised=None, seed=0, noise=None, callback=None, batch_size=None):
    """Draw samples by running the reverse process from x_T ~ N(0, I).

    The loop only calls ``eps_fn(x_t, t)`` -- a Keras model, an ONNX Runtime
    session or a closed-form predictor all fit. With `options=DIFFUSERS` (and a
    converted diffusers network) it is diffusers' `DDPMPipeline.__call__` /
    `DDIMPipeline.__call__` loop: `set_timesteps(steps)`, then per timestep the
    network and one scheduler `step`.

    Args:
        eps_fn: callable `(x_t float32 array, t int32 array of shape (batch,))` -> the
            network output (ε̂, or x̂_0 / v̂ as `options.prediction_type` says).
        shape: tuple. Shape of the batch to draw, batch first.
        schedule: `NoiseSchedule`. Default: T = 1000, linear β 1e-4..0.02.
        sampler: str. "ddpm" (ancestral, Ho et al.) or "ddim" (Song et al.).
        steps: int or None. Number of denoising steps, 1..T; None means T.
        eta: float. DDIM stochasticity (0 deterministic, 1 = DDPM with β̃).
        options: `SamplerOptions` or a dict of its fields. Default: `KZOO`.
        variance: str or None. Overrides `options.variance_type`: "beta" (fixed_large)
            or "beta_tilde" (fixed_small).
        clip_denoised: bool or None. Overrides `options.clip_sample`.
        seed: int. Seed of the NumPy generator of x_T and the step noise.
        noise: None or a sequence of arrays of `shape`: x_T, then the step noise in the
            order the steps draw it (see the module docstring); replaces `seed`.
        callback: optional `(t, x_t, x0_hat) -> None`, called after each step with
            the timestep just denoised, the new sample and the predicted x_0.
        batch_size: int or None. Largest batch per `eps_fn` call (`batched`); None:
            the whole batch in one call. The result does not depend on it.

    Returns:
        float32 array of `shape`.
    """
    schedule = schedule or NoiseSchedule()
    check_sampler(sampler)
    options = KZOO if options is None else SamplerOptions.from_config(options)
    if variance is not None:
        if variance not in VARIANCES:
            raise KzooError(f"unknown DDPM variance {variance!r}; use {' or '.join(VARIANCES)}")
        options = options.replace(variance_type=VARIANCE_TYPES[variance])
    if clip_denoised is not None:
        options = options.replace(clip_sample=bool(clip_denoised))
    steps = schedule.num_timesteps if steps is None else steps
    ts = schedule.timesteps(steps, options.timestep_spacing, options.steps_offset)
    prev = schedule.previous_timesteps(ts, sampler, options.timestep_spacing)
    eps_fn = batched(eps_fn, batch_size)
    draw = _noise_source(shape, seed, noise)
    x = draw()
    for t, prev_t in zip(ts, prev):
        out = np.asarray(eps_fn(x, np.full((shape[0],), t, np.int32)), np.float32)
        if sampler == "ddpm":
            x, x0 = schedule.ddpm_step(out, int(t), int(prev_t), x, draw, options)
        else:
            x, x0 = schedule.ddim_step(out, int(t), int(prev_t), x, draw, eta, options)
        x = x.astype(np.float32)
        if callback is not None:
            callback(int(t), x, x0)
    return x


def noise_draws(schedule, sampler, steps, eta=0.0, options=None):
    """How many step-noise arrays `sample` draws after x_T: DDPM one per visited t > 0,
    DDIM one per step when η > 0 (the module docstring's order)."""
    options = KZOO if options is None else SamplerOptions.from_config(options)
    check_sampler(sampler)
    ts = schedule.timesteps(steps, options.timestep_spacing, options.steps_offset)
    if sampler == "ddpm":
        return int(np.sum(ts > 0))
    return len(ts) if eta > 0 else 0


def from_info(info):
    """`(NoiseSchedule, SamplerOptions)` of kzoo.json's `diffusion` entry (an export's).

    An entry written before kzoo.json recorded `sampler_options` is kzoo's own sampler
    (`KZOO`) with the entry's `variance` and `clip_sample`.
    """
    options = dict(info or {})
    variance = options.pop("variance", "beta")
    clip_denoised = options.pop("clip_sample", True)
    sampler_options = options.pop("sampler_options", None)
    if sampler_options is None:
        sampler_options = KZOO.replace(variance_type=VARIANCE_TYPES[variance],
                                       clip_sample=bool(clip_denoised))
    return NoiseSchedule(**options), SamplerOptions.from_config(sampler_options)


def _noise_source(shape, seed, noise):
    """`draw()`: the next standard normal array of `shape`, from `seed` or from `noise`."""
    if noise is None:
        rng = np.random.default_rng(seed)
        return lambda: rng.standard_normal(shape).astype(np.float32)
    given = iter(noise)

    def draw():
        value = next(given, None)
        if value is None:
            raise KzooError("the given noise ran out: the sampler draws x_T and one array per "
                            "noisy step")
        value = np.asarray(value, np.float32)
        if value.shape != tuple(shape):
            raise KzooError(f"given noise has shape {value.shape}, the samples {tuple(shape)}")
        return value

    return draw
