"""Noise schedule and samplers of denoising diffusion models, in plain array arithmetic.

Model-free, in the style of diffusers' `DDPMScheduler`: nothing here imports Keras
or TensorFlow, so the same code drives sampling from a Keras model and from an ONNX
Runtime session. A sampler only ever calls ``eps_fn(x_t, t)`` -- the noise
prediction for a batch ``x_t`` at integer timesteps ``t`` (shape ``(batch,)``, int32).

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
  with the posterior mean of Eq. 7 and σ_t² = β_t ("beta", Ho et al.'s choice for
  CIFAR-10, `fixedlarge`) or σ_t² = β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) β_t ("beta_tilde",
  the posterior variance). Both "had similar results" (Sec. 3.2).
- DDIM step (Song et al., 2021, Eq. 12): x_{s} = sqrt(ᾱ_s) x̂_0 +
  sqrt(1 - ᾱ_s - σ²) ε + σ z with σ = η sqrt((1 - ᾱ_s) / (1 - ᾱ_t)) sqrt(1 - ᾱ_t / ᾱ_s).
  η = 0 is deterministic; η = 1 with all T steps *is* the DDPM sampler with β̃.
- Sub-sequences of N < T steps use evenly spaced timesteps 0, T/N, 2T/N, ...
  (Song et al.'s "linear" τ); the DDPM step then uses the respaced
  β = 1 - ᾱ_t / ᾱ_s (Nichol & Dhariwal, 2021, Sec. 4).
- ``clip_denoised`` clips the predicted x̂_0 to [-1, 1] before the step, as Ho et
  al.'s reference sampler does for images; pass False for data not in [-1, 1].

Functions take an optional ``xp`` array namespace (default NumPy); the training
step passes ``keras.ops`` to ``q_sample`` so that training and sampling use the
same schedule arrays.

References:
    Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
    Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021.
    Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kzoo.errors import KzooError

SAMPLERS = ("ddpm", "ddim")
VARIANCES = ("beta", "beta_tilde")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


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
    def timesteps(self, steps):
        """The N = `steps` timesteps a sampler visits, in decreasing order.

        All T steps for N = T; otherwise evenly spaced ``floor(i T / N)``,
        i = N-1 .. 0 (Song et al., 2021, Sec. 4.2, "linear" sub-sequence).
        """
        steps = check_steps(steps, self.num_timesteps)
        return (np.arange(steps, dtype=np.int64) * self.num_timesteps // steps)[::-1]

    def _cumprod(self, t):
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def predict_x0(self, x, t, eps):
        """x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t) (Ho et al., Eq. 15)."""
        a = self._cumprod(t)
        return (x - np.sqrt(1.0 - a) * eps) / np.sqrt(a)

    def ddpm_step(self, eps, t, prev_t, x, noise, variance="beta", clip_denoised=True, xp=None):
        """One ancestral step x_t -> x_{prev_t} (Ho et al., Algorithm 2; Eq. 6-7).

        Returns `(x_prev, x0_hat)`. No noise is added on the last step (prev_t < 0).
        """
        if variance not in VARIANCES:
            raise KzooError(f"unknown DDPM variance {variance!r}; use {' or '.join(VARIANCES)}")
        xp = np if xp is None else xp
        a_t, a_s = self._cumprod(t), self._cumprod(prev_t)
        beta = 1.0 - a_t / a_s
        x0 = self.predict_x0(x, t, eps)
        if clip_denoised:
            x0 = xp.clip(x0, -1.0, 1.0)
        mean = (np.sqrt(a_s) * beta / (1.0 - a_t)) * x0 + (
            np.sqrt(1.0 - beta) * (1.0 - a_s) / (1.0 - a_t)) * x
        if prev_t < 0:
            return mean, x0
        var = beta if variance == "beta" else beta * (1.0 - a_s) / (1.0 - a_t)
        return mean + np.sqrt(var) * noise, x0

    def ddim_step(self, eps, t, prev_t, x, noise, eta=0.0, clip_denoised=True, xp=None):
        """One generalized step x_t -> x_{prev_t} (Song et al., 2021, Eq. 12 and 16).

        Returns `(x_prev, x0_hat)`. With clipping, ε is re-derived from the clipped x̂_0.
        """
        xp = np if xp is None else xp
        a_t, a_s = self._cumprod(t), self._cumprod(prev_t)
        x0 = self.predict_x0(x, t, eps)
        if clip_denoised:
            x0 = xp.clip(x0, -1.0, 1.0)
            eps = (x - np.sqrt(a_t) * x0) / np.sqrt(1.0 - a_t)
        sigma = eta * np.sqrt((1.0 - a_s) / (1.0 - a_t)) * np.sqrt(1.0 - a_t / a_s)
        x_prev = np.sqrt(a_s) * x0 + np.sqrt(max(1.0 - a_s - sigma ** 2, 0.0)) * eps
        if sigma > 0 and prev_t >= 0:
            x_prev = x_prev + sigma * noise
        return x_prev, x0


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


def sample(eps_fn, shape, *, schedule=None, sampler="ddpm", steps=None, eta=0.0,
           variance="beta", clip_denoised=True, seed=0, callback=None, batch_size=None):
    """Draw samples by running the reverse process from x_T ~ N(0, I).

    The loop only calls ``eps_fn(x_t, t)`` -- a Keras model, an ONNX Runtime
    session or a closed-form predictor all fit.

    Args:
        eps_fn: callable `(x_t float32 array, t int32 array of shape (batch,))` -> ε̂.
        shape: tuple. Shape of the batch to draw, batch first.
        schedule: `NoiseSchedule`. Default: T = 1000, linear β 1e-4..0.02.
        sampler: str. "ddpm" (ancestral, Ho et al.) or "ddim" (Song et al.).
        steps: int or None. Number of denoising steps, 1..T; None means T.
        eta: float. DDIM stochasticity (0 deterministic, 1 = DDPM with β̃).
        variance: str. DDPM's σ_t²: "beta" or "beta_tilde".
        clip_denoised: bool. Clip x̂_0 to [-1, 1] (image data).
        seed: int. Seed of the NumPy generator of x_T and the step noise.
        callback: optional `(t, x_t, x0_hat) -> None`, called after each step with
            the timestep just denoised, the new sample and the predicted x_0.
        batch_size: int or None. Largest batch per `eps_fn` call (`batched`); None:
            the whole batch in one call. The result does not depend on it.

    Returns:
        float32 array of `shape`.
    """
    schedule = schedule or NoiseSchedule()
    check_sampler(sampler)
    steps = schedule.num_timesteps if steps is None else steps
    ts = schedule.timesteps(steps)
    eps_fn = batched(eps_fn, batch_size)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    for i, t in enumerate(ts):
        prev_t = int(ts[i + 1]) if i + 1 < len(ts) else -1
        eps = np.asarray(eps_fn(x, np.full((shape[0],), t, np.int32)), np.float32)
        noise = rng.standard_normal(shape).astype(np.float32)
        if sampler == "ddpm":
            x, x0 = schedule.ddpm_step(eps, int(t), prev_t, x, noise, variance, clip_denoised)
        else:
            x, x0 = schedule.ddim_step(eps, int(t), prev_t, x, noise, eta, clip_denoised)
        x = x.astype(np.float32)
        if callback is not None:
            callback(int(t), x, x0)
    return x
