import keras
import numpy as np
import pytest

from kzoo.diffusion import DIFFUSERS, KZOO
from kzoo.errors import KzooError
from kzoo.layers import SpatialSelfAttention, TimeResidualBlock
from kzoo.models.ddpm import DDPM, LinearWarmup, ddpm_optimizer, ddpm_unet
from kzoo.zoo import create_model, tiny_overrides


def tiny(**kw):
    return DDPM(**{**tiny_overrides("ddpm"), "seed": 0, **kw})


def images(n=8, size=8, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return np.tanh(rng.standard_normal((n, size, size, channels))).astype("float32")


def eps_inputs(model, n=2):
    return {"x_t": images(n, model.image_size, model.channels, seed=3),
            "t": np.arange(n, dtype="int32") * 7 % model.num_timesteps}


def test_paper_unet():
    """Ho et al., App. B: CIFAR-10 model of 35.7M parameters; attention at 16x16 and in the middle."""
    net = ddpm_unet()
    assert abs(net.count_params() - 35.7e6) < 0.1e6
    assert sorted(i.name for i in net.inputs) == ["t", "x_t"] and net.output_shape == (None, 32, 32, 3)
    attn = [l for l in net.layers if isinstance(l, SpatialSelfAttention)]
    assert sorted({l.output.shape[1] for l in attn}) == [4, 16]
    assert sum(l.output.shape[1] == 4 for l in attn) == 1  # the middle block
    blocks = [l for l in net.layers if isinstance(l, TimeResidualBlock)]
    assert len(blocks) == 4 * 2 + 2 + 4 * 3 and {b.dropout for b in blocks} == {0.1}
    assert {b.groups for b in blocks} == {32}
    assert sorted({b.filters for b in blocks}) == [128, 256]
    assert net.get_layer("time_dense1").units == 512


@pytest.mark.parametrize("size,channels,mults", [(8, 1, (1, 2)), (16, 3, (1, 2, 2))])
def test_shapes(size, channels, mults):
    net = ddpm_unet(image_size=size, channels=channels, width=8, channel_mults=mults,
                    num_res_blocks=1, attention_resolutions=(size // 2,), norm_groups=4)
    out = net({"x_t": images(2, size, channels), "t": np.array([0, 999], "int32")})
    assert out.shape == (2, size, size, channels) and out.dtype == "float32"


def test_bad_architecture():
    with pytest.raises(ValueError, match="divisible"):
        ddpm_unet(image_size=12, channel_mults=(1, 2, 2, 2))
    with pytest.raises(ValueError, match="norm_groups"):
        ddpm_unet(image_size=8, width=12, channel_mults=(1,), norm_groups=8)


def test_diffusers_config_options():
    """The UNet2DModel options: padded stride-2 convs, centred input, heads, no mid attention."""
    net = ddpm_unet(image_size=8, channels=1, width=8, channel_mults=(1, 2), num_res_blocks=1,
                    attention_resolutions=(4,), norm_groups=4, norm_eps=1e-5, attention_head_dim=8,
                    mid_attention=False, downsample_padding=1, center_input_sample=True)
    assert net.get_layer("down0_downsample_pad").padding == ((1, 1), (1, 1))
    assert net.get_layer("down0_downsample").padding == "valid"
    assert net.get_layer("down1_attn0").heads == 2 and net.get_layer("up1_attn0").heads == 2
    assert "mid_attn" not in [layer.name for layer in net.layers]
    assert net.get_layer("norm_out").epsilon == 1e-5 and net.get_layer("mid_res0").epsilon == 1e-5
    out = net({"x_t": images(2), "t": np.array([0, 5], "int32")})
    assert out.shape == (2, 8, 8, 1)
    with pytest.raises(ValueError, match="attention_head_dim 16 must divide the 8 channels"):
        ddpm_unet(image_size=8, width=8, channel_mults=(1, 2), num_res_blocks=1,
                  attention_resolutions=(8,), norm_groups=4, attention_head_dim=16)


def test_diffusers_options_round_trip():
    model = tiny(norm_eps=1e-5, attention_head_dim=8, mid_attention=False, flip_sin_to_cos=True,
                 freq_shift=0, downsample_padding=1, center_input_sample=True,
                 beta_schedule="squaredcos_cap_v2", variance="beta_tilde", clip_sample=False)
    again = DDPM.from_config(model.get_config())
    assert again.get_config() == model.get_config()
    assert again.schedule.beta_schedule == "squaredcos_cap_v2" and not again.clip_sample
    assert again.network.get_layer("time_embedding").flip_sin_to_cos
    assert model.sampler_options == KZOO.replace(variance_type="fixed_small", clip_sample=False)


def test_sampler_options_are_kzoo_own_or_diffusers_and_round_trip():
    """None: Ho et al.'s sampler (kzoo.diffusion.KZOO); a dict: diffusers' defaults updated."""
    assert tiny().sampler_options == KZOO
    model = tiny(sampler_options={"prediction_type": "v_prediction", "timestep_spacing": "trailing"})
    assert model.sampler_options == DIFFUSERS.replace(
        prediction_type="v_prediction", timestep_spacing="trailing", variance_type="fixed_large")
    again = DDPM.from_config(model.get_config())
    assert again.sampler_options == model.sampler_options
    with pytest.raises(ValueError, match="give variance_type as the DDPM argument variance"):
        tiny(sampler_options={"variance_type": "fixed_small"})


def test_optimizer_is_the_papers():
    """Adam 2e-4, linear warm-up over 5000 steps, gradient clipping at global norm 1."""
    opt = ddpm_optimizer()
    assert opt.global_clipnorm == 1.0
    lr = keras.saving.deserialize_keras_object(opt.get_config()["learning_rate"])
    assert isinstance(lr, LinearWarmup) and opt.get_config()["epsilon"] == 1e-8
    assert float(lr(0)) == pytest.approx(2e-4 / 5000)
    assert float(lr(2499)) == pytest.approx(1e-4)
    assert float(lr(4999)) == pytest.approx(2e-4) and float(lr(10**6)) == pytest.approx(2e-4)
    assert float(LinearWarmup(1e-3, 0)(0)) == pytest.approx(1e-3)


def test_train_step_changes_weights_and_ema_follows():
    model = tiny(ema_decay=0.9)
    model.compile(optimizer=ddpm_optimizer(1e-3, warmup_steps=0))
    w0 = [v.numpy().copy() for v in model.network.weights]
    np.testing.assert_array_equal(w0[0], model.ema_network.weights[0].numpy())  # EMA starts at init
    # one step: the EMA is exactly decay * old + (1 - decay) * new
    model.train_on_batch(images(4))
    w1 = [v.numpy() for v in model.network.weights]
    for e, a, b in zip(model.ema_network.weights, w0, w1):
        np.testing.assert_allclose(e.numpy(), 0.9 * a + 0.1 * b, rtol=1e-5, atol=1e-7)
    # three more steps: the recursion holds at every step, and every weight trains (the
    # zero-initialised output layers pass gradient back one layer per step); only the
    # key biases cannot (softmax is invariant to them).
    ema = [0.9 * a + 0.1 * b for a, b in zip(w0, w1)]
    for seed in (1, 2, 3):
        logs = model.train_on_batch(images(4, seed=seed), return_dict=True)
        ema = [0.9 * e + 0.1 * v.numpy() for e, v in zip(ema, model.network.weights)]
    assert np.isfinite(logs["loss"])
    for e, expected in zip(model.ema_network.weights, ema):
        np.testing.assert_allclose(e.numpy(), expected, rtol=1e-5, atol=1e-7)
    unchanged = [v.path for a, v in zip(w0, model.network.weights) if np.allclose(a, v.numpy())]
    assert unchanged and all(p.endswith("/k/bias") for p in unchanged), unchanged
    assert model.ema_network.trainable_weights == []
    inputs = eps_inputs(model)
    assert not np.allclose(model.ema_network(inputs), model(inputs))


def test_sampling_uses_the_ema_weights():
    model = tiny(ema_decay=0.0)  # decay 0: the EMA copy is the raw network after each step
    model.compile(optimizer=ddpm_optimizer(1e-2, warmup_steps=0))
    model.train_on_batch(images(4))
    model.train_on_batch(images(4, seed=1))
    model.ema_network.set_weights([np.zeros_like(w) for w in model.ema_network.get_weights()])
    # an all-zero EMA network predicts eps = 0: DDIM then returns the (clipped) x_T / sqrt(abar)
    ema = model.sample(3, sampler="ddim", steps=5, seed=2)
    raw = model.sample(3, sampler="ddim", steps=5, seed=2, use_ema=False)
    assert not np.allclose(ema, raw)
    x_T = np.random.default_rng(2).standard_normal(ema.shape).astype("float32")
    a = model.schedule.alphas_cumprod[model.schedule.timesteps(5)[0]]
    np.testing.assert_allclose(ema, np.clip(x_T / np.sqrt(a), -1, 1), atol=1e-5)


@pytest.mark.parametrize("sampler,steps", [("ddpm", None), ("ddim", 10)])
def test_sample_shapes_and_range(sampler, steps):
    model = tiny()
    seen = []
    out = model.sample(3, sampler=sampler, steps=steps, seed=0, callback=lambda t, x, x0: seen.append(t))
    assert out.shape == (3, 8, 8, 1) and out.dtype == np.float32
    assert np.abs(out).max() <= 1.0  # the last step returns the clipped x_0 prediction
    assert len(seen) == (steps or model.num_timesteps)


@pytest.mark.parametrize("steps", [0, 51])
def test_bad_steps(steps):
    with pytest.raises(KzooError, match="from 1 to T = 50"):
        tiny().sample(2, sampler="ddim", steps=steps)


def test_save_load(tmp_path):
    model = tiny()
    model.compile(optimizer=ddpm_optimizer(1e-3, warmup_steps=0))
    model.fit(images(8), batch_size=4, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded) is DDPM and loaded.get_config() == model.get_config()
    inputs = eps_inputs(model)
    np.testing.assert_allclose(loaded(inputs), model(inputs), atol=1e-6)
    np.testing.assert_allclose(loaded.ema_network(inputs), model.ema_network(inputs), atol=1e-6)
    np.testing.assert_array_equal(loaded.seed_generator.state.numpy(), model.seed_generator.state.numpy())
    assert int(loaded.optimizer.iterations.numpy()) == 2  # the optimizer state came back too
    part = model.inference_parts()["eps_model"]
    part.save(tmp_path / "eps.keras")
    eps = keras.saving.load_model(tmp_path / "eps.keras")
    assert sorted(i.name for i in eps.inputs) == ["t", "x_t"]
    np.testing.assert_allclose(eps(inputs), model.ema_network(inputs), atol=1e-6)


def test_registry_overrides_merge_with_the_variant():
    model = create_model("ddpm_digits", width=16)
    assert (model.image_size, model.channels, model.width) == (16, 1, 16)


def test_compile_defaults_to_the_papers_optimizer():
    model = tiny()
    model.compile()
    lr = keras.saving.deserialize_keras_object(model.optimizer.get_config()["learning_rate"])
    assert isinstance(lr, LinearWarmup) and model.optimizer.global_clipnorm == 1.0
    assert model.optimizer.built


def test_shipped_ddpm_digits_preset_loads_and_samples(tmp_path, monkeypatch):
    """The hub preset saved before the diffusers options existed loads with their defaults."""
    from kzoo import hub

    monkeypatch.setenv("KZOO_HOME", str(tmp_path))
    model = hub.load("ddpm-digits", part="full")
    assert type(model) is DDPM and (model.image_size, model.channels) == (16, 1)
    assert (model.norm_eps, model.freq_shift, model.beta_schedule) == (1e-6, 1, "linear")
    images = model.sample(2, sampler="ddim", steps=3, seed=0)
    assert images.shape == (2, 16, 16, 1) and np.isfinite(images).all() and np.abs(images).max() <= 1
    eps = hub.load("ddpm-digits")  # the inference part: the EMA eps-network
    np.testing.assert_allclose(eps(eps_inputs(model)), model.ema_network(eps_inputs(model)), atol=1e-5)
