import numpy as np
import pytest

from kzoo.models.stylegan2 import (
    as_numpy_noise,
    channel_table,
    discriminator_network,
    mapping_network,
    noise_shapes,
    num_ws,
    rosinality_generator_parameters,
    synthesis_network,
)


def test_full_size_generator_has_rosinalitys_parameter_count():
    """256x256, channel_multiplier 2 (config-f): mapping + synthesis hold exactly the
    parameters of rosinality's Generator, counted from its module definitions."""
    mapping = mapping_network()
    synthesis = synthesis_network(image_size=256, channel_multiplier=2)
    expected = rosinality_generator_parameters(256, channel_multiplier=2)
    assert expected == 30_034_338
    assert mapping.count_params() + synthesis.count_params() == expected
    assert synthesis.input[0].shape == (None, 14, 512)  # n_latent = 2 * 8 - 2
    assert len(synthesis.inputs) == 1 + 13  # ws + one noise per styled conv


def test_channel_table_and_ws():
    assert channel_table(1024, channel_multiplier=1) == {
        4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    assert num_ws(32) == 8 and noise_shapes(16) == [(4, 4, 1), (8, 8, 1), (8, 8, 1), (16, 16, 1), (16, 16, 1)]
    with pytest.raises(ValueError, match="power of two"):
        channel_table(48)


def test_small_networks_shapes():
    small = {"channel_base": 256, "channel_max": 16, "channel_multiplier": 1}
    mapping = mapping_network(latent_dim=8, n_mlp=2)
    synthesis = synthesis_network(image_size=16, channels=1, w_dim=8, **small)
    d = discriminator_network(image_size=16, channels=1, **small)
    w = mapping(np.random.default_rng(0).standard_normal((4, 8)).astype("float32"))
    assert w.shape == (4, 8)
    ws = np.repeat(np.asarray(w)[:, None], num_ws(16), axis=1)
    image = synthesis([ws, *as_numpy_noise("random", 4, 16, rng=0)])
    assert image.shape == (4, 16, 16, 1)
    assert d(np.asarray(image)).shape == (4, 1)
    names = sorted(layer.name for layer in synthesis.layers if layer.weights)
    assert names == sorted(["input", "conv1", "to_rgb1", "convs_0", "convs_1", "to_rgbs_0", "convs_2", "convs_3",
                            "to_rgbs_1"])


def test_noise_argument_forms():
    zero = as_numpy_noise("zero", 2, 8)
    assert [n.shape for n in zero] == [(2, 4, 4, 1), (2, 8, 8, 1), (2, 8, 8, 1)]
    given = as_numpy_noise([np.ones((4, 4)), np.ones((1, 8, 8, 1)), np.ones((8, 8, 1))], 2, 8)
    assert all(n.shape[0] == 2 for n in given)
    with pytest.raises(ValueError, match="3 maps"):
        as_numpy_noise([np.ones((4, 4))], 2, 8)
    with pytest.raises(ValueError, match="noise must be"):
        as_numpy_noise("gaussian", 2, 8)


def tiny_model(**kw):
    from kzoo.models.stylegan2 import TINY, StyleGAN2

    return StyleGAN2(**{**TINY, **kw}, seed=0)


def test_inference_api_mixes_numpy_and_tensors():
    import keras

    model = tiny_model()
    assert model.num_ws == 4 and tuple(model.w_avg.shape) == (8,)
    z = np.random.default_rng(0).standard_normal((3, 8)).astype("float32")
    w = model.mapping(z)
    ws = model.mix(np.asarray(w), keras.ops.zeros((3, 8)), 2)  # numpy + tensor
    assert np.allclose(np.asarray(ws)[:, :2], np.asarray(w)[:, None]) and np.all(np.asarray(ws)[:, 2:] == 0)
    noise = [keras.ops.zeros((4, 4)), np.zeros((1, 8, 8, 1), "float32"), np.zeros((8, 8, 1), "float32")]
    a = np.asarray(model.synthesize(ws, noise=noise))
    b = np.asarray(model.synthesize(ws, noise="zero"))
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert a.shape == (3, 8, 8, 1)
    r1, r2 = (np.asarray(model.synthesize(w, noise="random", seed=s)) for s in (1, 1))
    np.testing.assert_allclose(r1, r2)
    np.testing.assert_allclose(np.asarray(model.synthesize(w, noise="const")), np.asarray(model(z)), atol=1e-5)
    # truncation pulls towards w_avg: psi 0 gives w_avg everywhere
    model.w_avg.assign(np.ones(8, "float32"))
    np.testing.assert_allclose(np.asarray(model.truncate(ws, 0.0)), 1.0)
    np.testing.assert_allclose(np.asarray(model.truncate(ws, 1.0)), np.asarray(ws), atol=1e-6)


def test_bad_psi_and_crossover_give_one_clear_line():
    model = tiny_model()
    ws = np.zeros((1, 4, 8), "float32")
    for psi in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"truncation psi must be in \[0, 1\]"):
            model.truncate(ws, psi)
    for crossover in (-1, 5, 1.5):
        with pytest.raises(ValueError, match=r"crossover layer must be an integer in \[0, 4\]"):
            model.mix(ws, ws, crossover)
    with pytest.raises(ValueError, match="mixing_prob must be in"):
        tiny_model(mixing_prob=1.5)


def test_training_updates_ema_and_w_avg_and_keeps_paper_defaults():
    import keras

    model = tiny_model(ema_kimg=0.001)  # decay 0.5 ** (4 / 1) : the EMA moves visibly in one step
    model.compile(g_optimizer=keras.optimizers.Adam(1e-2), d_optimizer=keras.optimizers.Adam(1e-2),
                  run_eagerly=True)
    ema = [v.numpy().copy() for v in model.synthesis.trainable_weights + model.synthesis.non_trainable_weights]
    model.fit(model.sample_batch(4, rng=0), batch_size=4, epochs=1, verbose=0)
    after = [v.numpy() for v in model.synthesis.weights]
    assert sum(not np.allclose(a, b) for a, b in zip(ema, after)) > len(after) // 2
    assert np.abs(model.w_avg.numpy()).sum() > 0  # tracked mean w moved from 0
    assert float(model.path_mean.numpy()) > 0  # first step is a path-length step (iteration 0)
    paper = tiny_model()
    assert (paper.r1_gamma, paper.r1_interval, paper.path_weight, paper.path_interval, paper.mixing_prob,
            paper.ema_kimg, paper.w_avg_beta, paper.mbstd_group_size) == (10.0, 16, 2.0, 4, 0.9, 10.0, 0.995, 4)


def test_adain_variant_builds_and_trains():
    import keras

    model = tiny_model(adain=True)
    assert "conv1/style/kernel" in [v.path for v in model.synthesis.get_layer("conv1").weights]
    model.compile(g_optimizer=keras.optimizers.Adam(1e-3), d_optimizer=keras.optimizers.Adam(1e-3),
                  run_eagerly=True)
    logs = model.fit(model.sample_batch(2, rng=0), batch_size=2, epochs=1, verbose=0).history
    assert np.isfinite(logs["g_loss"][-1])
