"""The model-free noise schedule and samplers (kzoo.diffusion), checked without a network.

The samplers are driven by the exact ε-predictor of Gaussian data x_0 ~ N(μ, s²):
with x_t = sqrt(ā) x_0 + sqrt(1-ā) ε, E[ε | x_t] = sqrt(1-ā) (x_t - sqrt(ā) μ) / (ā s² + 1 - ā),
so a correct sampler must return samples with mean μ and standard deviation s.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kzoo import diffusion
from kzoo.diffusion import DIFFUSERS, KZOO, NoiseSchedule, SamplerOptions, sample
from kzoo.errors import KzooError

MU, S = 0.3, 0.5


@pytest.fixture(scope="module")
def schedule():
    return NoiseSchedule()


def gaussian_eps_fn(schedule, mu=MU, s=S):
    def eps_fn(x, t):
        a = schedule.alphas_cumprod[t].reshape((-1,) + (1,) * (x.ndim - 1))
        return np.sqrt(1 - a) * (x - np.sqrt(a) * mu) / (a * s ** 2 + 1 - a)
    return eps_fn


def test_schedule_values(schedule):
    """Ho et al. 2020, Sec. 4: T = 1000, β linear from 1e-4 to 0.02."""
    assert schedule.num_timesteps == 1000 and schedule.betas.shape == (1000,)
    assert schedule.betas[0] == pytest.approx(1e-4) and schedule.betas[-1] == pytest.approx(0.02)
    np.testing.assert_allclose(np.diff(schedule.betas), (0.02 - 1e-4) / 999)
    np.testing.assert_allclose(schedule.alphas_cumprod, np.cumprod(1 - schedule.betas))
    assert schedule.alphas_cumprod[0] == pytest.approx(1 - 1e-4)
    assert schedule.alphas_cumprod[-1] == pytest.approx(4.0358e-5, rel=1e-3)  # x_T is ~pure noise
    np.testing.assert_allclose(schedule.sqrt_alphas_cumprod ** 2 + schedule.sqrt_one_minus_alphas_cumprod ** 2, 1.0)
    with pytest.raises(ValueError):
        schedule.betas[0] = 0.5  # read-only: a sampler cannot corrupt the schedule


def test_bad_schedule():
    with pytest.raises(KzooError, match="timesteps"):
        NoiseSchedule(num_timesteps=0)
    with pytest.raises(KzooError, match="beta"):
        NoiseSchedule(beta_start=0.1, beta_end=0.01)


def test_other_beta_schedules():
    """diffusers' scaled_linear (sqrt β linear) and squaredcos_cap_v2 (Nichol & Dhariwal, Eq. 17)."""
    scaled = NoiseSchedule(1000, 0.00085, 0.012, "scaled_linear")
    np.testing.assert_allclose(np.diff(np.sqrt(scaled.betas)), (0.012 ** 0.5 - 0.00085 ** 0.5) / 999)
    assert scaled.betas[0] == pytest.approx(0.00085) and scaled.betas[-1] == pytest.approx(0.012)
    cosine = NoiseSchedule(1000, beta_schedule="squaredcos_cap_v2")
    f = np.cos((np.arange(1001) / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2
    np.testing.assert_allclose(cosine.alphas_cumprod[:-1], (f[1:] / f[0])[:-1], rtol=1e-9)
    assert cosine.betas.max() == pytest.approx(0.999)  # the cap: the last step
    assert cosine.config() == {"num_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02,
                               "beta_schedule": "squaredcos_cap_v2"}
    assert NoiseSchedule(**cosine.config()) == cosine
    with pytest.raises(KzooError, match="unknown beta schedule 'cosine'; supported: linear, "
                                        "scaled_linear, squaredcos_cap_v2"):
        NoiseSchedule(beta_schedule="cosine")


@pytest.mark.parametrize("t", [0, 49, 500, 999])
def test_closed_form_matches_iterated_single_steps(schedule, t):
    """q(x_t | x_0) in closed form = t+1 single steps q(x_k | x_{k-1}), in distribution."""
    rng = np.random.default_rng(0)
    n = 20000
    x0 = np.broadcast_to(np.array([-1.0, 0.0, 0.7]), (n, 3))
    x = x0.copy()
    for k in range(t + 1):
        x = schedule.forward_step(x, k, rng.standard_normal(x.shape))
    closed = schedule.q_sample(x0.astype(np.float32), np.full(n, t),
                               rng.standard_normal(x0.shape).astype(np.float32))
    a = schedule.alphas_cumprod[t]
    for draws in (x, closed):
        np.testing.assert_allclose(draws.mean(0), np.sqrt(a) * x0[0], atol=0.03)
        np.testing.assert_allclose(draws.std(0), np.sqrt(1 - a), rtol=0.03, atol=2e-4)
    np.testing.assert_allclose(x.mean(0), closed.mean(0), atol=0.03)
    np.testing.assert_allclose(x.std(0), closed.std(0), rtol=0.03, atol=2e-4)


def test_q_sample_per_example_timesteps(schedule):
    x0 = np.ones((3, 2, 2, 1), np.float32)
    noise = np.zeros_like(x0)
    out = schedule.q_sample(x0, np.array([0, 10, 999]), noise)
    assert out.dtype == np.float32 and out.shape == x0.shape
    np.testing.assert_allclose(out[:, 0, 0, 0], schedule.sqrt_alphas_cumprod[[0, 10, 999]], rtol=1e-6)


def test_q_sample_with_keras_ops_equals_numpy(schedule):
    from keras import ops

    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    noise = rng.standard_normal(x0.shape).astype(np.float32)
    t = np.array([0, 5, 700, 999], np.int32)
    out = ops.convert_to_numpy(schedule.q_sample(ops.convert_to_tensor(x0), ops.convert_to_tensor(t),
                                                 ops.convert_to_tensor(noise), xp=ops))
    np.testing.assert_allclose(out, schedule.q_sample(x0, t, noise), rtol=1e-6, atol=1e-6)


def test_ddpm_step_is_algorithm_2(schedule):
    """Without clipping, the posterior-mean step is x_{t-1} = (x_t - β/sqrt(1-ā) ε)/sqrt(α) + σ z."""
    rng = np.random.default_rng(2)
    x, eps, z = (rng.standard_normal((5, 4)) for _ in range(3))
    t = 400
    noclip = KZOO.replace(clip_sample=False)
    out, _ = schedule.ddpm_step(eps, t, t - 1, x, lambda: z, noclip)
    beta, abar = schedule.betas[t], schedule.alphas_cumprod[t]
    expected = (x - beta / np.sqrt(1 - abar) * eps) / np.sqrt(1 - beta) + np.sqrt(beta) * z
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    last, x0 = schedule.ddpm_step(eps, 0, -1, x, None, noclip)  # no noise (no draw) at t = 0
    np.testing.assert_allclose(last, x0, rtol=1e-10)


def test_ddim_eta_1_all_steps_is_ddpm_with_posterior_variance(schedule):
    """Song et al., Sec. 4.1: η = 1 over all T steps is the DDPM sampler with σ² = β̃ (same noise)."""
    eps_fn = gaussian_eps_fn(schedule)
    ddpm = sample(eps_fn, (64, 2), schedule=schedule, sampler="ddpm", variance="beta_tilde",
                  clip_denoised=False, seed=3)
    ddim = sample(eps_fn, (64, 2), schedule=schedule, sampler="ddim", steps=1000, eta=1.0,
                  clip_denoised=False, seed=3)
    np.testing.assert_allclose(ddim, ddpm, atol=1e-4)


@pytest.mark.parametrize("sampler,steps,eta,variance", [
    ("ddpm", None, 0.0, "beta"),
    ("ddpm", None, 0.0, "beta_tilde"),
    ("ddim", 1000, 1.0, "beta"),
    ("ddim", 250, 0.0, "beta"),  # deterministic ODE-like sampler (50 steps: std 0.47, coarser)
    ("ddpm", 250, 0.0, "beta"),  # respaced ancestral sampler
])
def test_samplers_reach_the_data_distribution(schedule, sampler, steps, eta, variance):
    """With the exact ε of N(μ, s²) data, every sampler's output has mean μ and std s."""
    n = 20000
    x = sample(gaussian_eps_fn(schedule), (n, 1), schedule=schedule, sampler=sampler, steps=steps,
               eta=eta, variance=variance, clip_denoised=False, seed=4)
    assert x.dtype == np.float32 and x.shape == (n, 1)
    assert abs(x.mean() - MU) < 0.02, x.mean()
    assert abs(x.std() - S) < 0.02, x.std()


def test_ddim_with_all_steps_and_eta_1_matches_ddpm_statistics(schedule):
    """Different noise: DDIM(η=1, T steps) and DDPM agree in mean, std and quantiles."""
    n = 20000
    eps_fn = gaussian_eps_fn(schedule)
    a = sample(eps_fn, (n, 1), schedule=schedule, sampler="ddpm", clip_denoised=False, seed=5)
    b = sample(eps_fn, (n, 1), schedule=schedule, sampler="ddim", steps=1000, eta=1.0,
               clip_denoised=False, seed=6)
    assert abs(a.mean() - b.mean()) < 0.02 and abs(a.std() - b.std()) < 0.02
    q = [0.05, 0.25, 0.5, 0.75, 0.95]
    np.testing.assert_allclose(np.quantile(a, q), np.quantile(b, q), atol=0.03)


def test_ddim_eta_0_is_deterministic_given_x_T(schedule):
    eps_fn = gaussian_eps_fn(schedule)
    runs = [sample(eps_fn, (8, 3), schedule=schedule, sampler="ddim", steps=20, seed=7) for _ in range(2)]
    np.testing.assert_array_equal(*runs)
    other = sample(eps_fn, (8, 3), schedule=schedule, sampler="ddim", steps=20, seed=8)
    assert not np.allclose(runs[0], other)


def test_clip_denoised_keeps_predictions_in_range(schedule):
    seen = []
    sample(lambda x, t: -x, (16, 2), schedule=schedule, sampler="ddim", steps=10,
           callback=lambda t, x, x0: seen.append((t, x0)))
    assert [t for t, _ in seen] == list(schedule.timesteps(10))
    assert all(np.abs(x0).max() <= 1.0 for _, x0 in seen)


def test_timestep_spacing(schedule):
    assert list(schedule.timesteps(1000)) == list(range(999, -1, -1))
    ts = schedule.timesteps(50)
    assert len(ts) == 50 and ts[0] == 980 and ts[-1] == 0 and set(np.diff(ts)) == {-20}
    assert list(schedule.timesteps(1)) == [0]
    assert len(set(schedule.timesteps(999))) == 999


@pytest.mark.parametrize("steps", [0, -5, 1001, 2.5])
def test_bad_steps_are_a_clear_error(schedule, steps):
    with pytest.raises(KzooError, match=r"sampling steps must be an integer from 1 to T = 1000"):
        sample(lambda x, t: x, (2, 1), schedule=schedule, sampler="ddim", steps=steps)


def test_bad_sampler_and_variance(schedule):
    with pytest.raises(KzooError, match="unknown sampler 'euler'"):
        sample(lambda x, t: x, (2, 1), schedule=schedule, sampler="euler")
    with pytest.raises(KzooError, match="unknown DDPM variance"):
        sample(lambda x, t: x, (2, 1), schedule=schedule, steps=2, variance="learned")


def test_module_never_imports_a_framework():
    code = ("import sys, kzoo.diffusion as d; d.sample(lambda x, t: x, (1, 1), steps=3); "
            "bad = [m for m in ('keras', 'tensorflow', 'torch', 'jax') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_batched_network_calls_draw_the_same_images(schedule):
    """`batch_size` bounds each eps_fn call; the images do not depend on it."""
    calls = []
    eps_fn = gaussian_eps_fn(schedule)

    def counting(x, t):
        calls.append(len(x))
        return eps_fn(x, t)

    whole = sample(eps_fn, (10, 2), schedule=schedule, sampler="ddim", steps=4, seed=3)
    parts = sample(counting, (10, 2), schedule=schedule, sampler="ddim", steps=4, seed=3, batch_size=4)
    np.testing.assert_array_equal(parts, whole)
    assert calls == [4, 4, 2] * 4
    with pytest.raises(KzooError, match="sampling batch size must be a positive integer, got 0"):
        sample(eps_fn, (2, 2), schedule=schedule, steps=2, batch_size=0)


# --- diffusers' DDPMPipeline / DDIMPipeline, replayed -------------------------------------
# tests/fixtures/reference/diffusers/trajectories.*: whole runs of diffusers' own pipelines
# (scripts/reference_fixtures_diffusers.py), with every noise tensor they drew and every
# network output. Fed the same network outputs and the same noise, kzoo's NumPy sampler
# must walk the same trajectory: this tests the scheduler arithmetic alone.
DIFFUSERS_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "reference" / "diffusers"
RUNS = json.loads((DIFFUSERS_FIXTURES / "trajectories.json").read_text())


def trajectory(name):
    """`(run, arrays, schedule, options, sample kwargs)` of a recorded diffusers run."""
    run = RUNS[name]
    with np.load(DIFFUSERS_FIXTURES / "trajectories.npz") as z:
        arrays = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith(name + "/")}
    schedule, options = diffusion.scheduler_config_options(run["scheduler_config"])
    if run["use_clipped_model_output"] is not None:  # DDIMPipeline's argument (None: False)
        options = options.replace(use_clipped_model_output=run["use_clipped_model_output"])
    kwargs = {"sampler": "ddpm" if run["pipeline"] == "DDPMPipeline" else "ddim",
              "steps": run["num_inference_steps"], "eta": run["eta"],
              "noise": [arrays["x_T"], *arrays["noise"]]}
    return run, arrays, NoiseSchedule(**schedule), options, kwargs


def tolerance(samples):
    """float32: diffusers computes ᾱ by a float32 cumprod (relative error up to ~T x 6e-8)
    and every step in float32; kzoo's ᾱ is float64. Measured max error over all runs:
    9.7e-5 on samples of magnitude 3 (cosine schedule, ᾱ_999 ~ 1e-8), otherwise <= 5e-5
    relative."""
    return 1e-4 * max(1.0, float(np.abs(samples).max()))


def replay(name, options=None):
    run, arrays, schedule, run_options, kwargs = trajectory(name)
    outputs, seen = iter(arrays["model_output"]), []
    final = sample(lambda x, t: next(outputs), arrays["x_T"].shape, schedule=schedule,
                   options=options or run_options, callback=lambda t, x, x0: seen.append((t, x)), **kwargs)
    return final, seen, arrays


@pytest.mark.parametrize("name", sorted(RUNS))
def test_sampler_replays_diffusers_pipelines(name):
    """Each step's sample equals diffusers' `prev_sample` (timesteps, noise order, maths)."""
    final, seen, arrays = replay(name)
    assert [t for t, _ in seen] == arrays["timesteps"].tolist()
    error = np.abs(np.stack([x for _, x in seen]) - arrays["samples"]).max()
    assert error < tolerance(arrays["samples"]), error
    np.testing.assert_array_equal(final, seen[-1][1])


def test_the_runs_cover_the_options():
    """Every option value that changes a sample appears in some recorded run."""
    configs = [r["scheduler_config"] for r in RUNS.values()]
    for key, values in {"prediction_type": {"sample", "v_prediction"},
                        "timestep_spacing": {"trailing", "linspace"},
                        "variance_type": {"fixed_large", "fixed_small_log"},
                        "clip_sample": {False}, "thresholding": {True}, "set_alpha_to_one": {False},
                        "beta_schedule": {"squaredcos_cap_v2", "scaled_linear"}}.items():
        assert values <= {c[key] for c in configs if key in c}, key
    assert any(c.get("steps_offset") for c in configs) and any(c.get("clip_sample_range") for c in configs)
    assert {r["num_inference_steps"] for r in RUNS.values()} >= {1, 3, 10, 20}
    assert {r["eta"] for r in RUNS.values()} >= {0.0, 0.5, 1.0}
    assert {r["use_clipped_model_output"] for r in RUNS.values()} == {None, True}


def test_kzoo_own_ddim_is_not_diffusers_default():
    """The fixtures can fail: kzoo's own DDIM (ε from the clipped x̂_0, as before) departs from
    DDIMPipeline's default on google/ddpm-cifar10-32's scheduler config (measured: 2.0 on
    images in [-1, 1], the whole range)."""
    _, _, _, options, _ = trajectory("ddim_cifar_10")
    final, seen, arrays = replay("ddim_cifar_10", options.replace(use_clipped_model_output=True))
    assert np.abs(final - arrays["samples"][-1]).max() > 1.0
    assert not options.use_clipped_model_output and options == DIFFUSERS.replace(variance_type="fixed_large")


def test_timestep_spacings_are_diffusers():
    """`DDPMScheduler.set_timesteps` / `DDIMScheduler.set_timesteps`, and where steps go."""
    s = NoiseSchedule()
    assert s.timesteps(3, "leading").tolist() == [666, 333, 0]
    assert s.timesteps(3, "leading", steps_offset=1).tolist() == [667, 334, 1]
    assert s.timesteps(3, "trailing").tolist() == [999, 666, 332]
    assert s.timesteps(3, "linspace").tolist() == [999, 500, 0]
    assert s.timesteps(7, "even").tolist() == [857, 714, 571, 428, 285, 142, 0]
    assert s.previous_timesteps(s.timesteps(3, "trailing"), "ddim", "trailing").tolist() == [666, 333, -1]
    assert s.previous_timesteps(s.timesteps(3, "trailing"), "ddpm", "trailing").tolist() == [666, 332, -1]
    with pytest.raises(KzooError, match="outside 0..999"):
        s.timesteps(1000, "leading", steps_offset=1)


def test_sampler_options_errors_are_one_line():
    for bad, match in (({"prediction_type": "x0"}, "prediction_type='x0' is not supported"),
                       ({"timestep_spacing": "karras"}, "timestep_spacing='karras'"),
                       ({"variance_type": "learned"}, "variance_type='learned'"),
                       ({"clip_sample": "yes"}, "clip_sample must be true or false"),
                       ({"colour": 1}, "unknown sampler option")):
        with pytest.raises(KzooError, match=match) as e:
            SamplerOptions.from_config(bad)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("config,match", [
    ({"skip_prk_steps": True}, "skip_prk_steps=True is unknown to kzoo and could change the samples"),
    ({"_class_name": "PNDMScheduler"}, "scheduler PNDMScheduler is not supported"),
    ({"variance_type": "learned_range"}, "variance_type 'learned_range' is not supported"),
    ({"variance_type": "fixed_large_log"}, "NaN"),
    ({"trained_betas": [0.1, 0.2]}, "trained_betas are not supported"),
    ({"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr=true is not supported"),
    ({"beta_schedule": "sigmoid"}, "beta_schedule 'sigmoid' is not supported"),
    ({"timestep_spacing": "even"}, None),  # kzoo's own spacing is no diffusers value, but harmless
])
def test_scheduler_config_refuses_what_it_cannot_reproduce(config, match):
    if match is None:
        diffusion.scheduler_config_options(config)
        return
    with pytest.raises(KzooError, match=match) as e:
        diffusion.scheduler_config_options(config)
    assert "\n" not in str(e.value)


def test_scheduler_config_accepts_bookkeeping_and_both_classes():
    """ConfigMixin's `_`-keys change nothing; DDIM keys in a DDPM config reach the DDIM sampler."""
    schedule, options = diffusion.scheduler_config_options({
        "_class_name": "DDPMScheduler", "_diffusers_version": "0.1.1", "_use_default_values": [],
        "set_alpha_to_one": False, "num_train_timesteps": 50})
    assert schedule["num_timesteps"] == 50 and options == DIFFUSERS.replace(set_alpha_to_one=False)
    assert diffusion.scheduler_config_options({"_class_name": "DDIMScheduler"})[1] == DIFFUSERS


def test_given_noise_must_fit():
    with pytest.raises(KzooError, match="given noise ran out"):
        sample(lambda x, t: x, (2, 1), sampler="ddpm", steps=3, noise=[np.zeros((2, 1))])
    with pytest.raises(KzooError, match=r"given noise has shape \(3, 1\)"):
        sample(lambda x, t: x, (2, 1), sampler="ddim", steps=3, noise=[np.zeros((3, 1))])


def test_thresholding_is_imagen_dynamic_thresholding():
    x0 = np.array([[0.5, -3.0, 2.0, 1.0], [0.1, 0.2, -0.3, 0.4]], np.float32)
    out = diffusion.threshold(x0, ratio=0.5, max_value=1.8)  # s = median |x0| = 1.5, 1 (clamped)
    np.testing.assert_allclose(out[0], np.clip(x0[0], -1.5, 1.5) / 1.5, rtol=1e-6)
    np.testing.assert_allclose(out[1], x0[1])
