import keras
import numpy as np
import pytest

from kzoo import losses
from kzoo.layers import receptive_field
from kzoo.models.pix2pix import TINY, Pix2Pix, unet_generator, unet_levels


def _pair(n=2, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return (np.tanh(rng.standard_normal((n, size, size, 1))).astype("float32"),
            np.tanh(rng.standard_normal((n, size, size, 3))).astype("float32"))


@pytest.mark.parametrize("size,levels", [(16, 4), (32, 5), (64, 6)])
def test_shapes_at_several_sizes(size, levels):
    model = Pix2Pix(image_size=size, input_channels=1, output_channels=3, width=4, n_layers=2)
    assert unet_levels(size) == levels
    assert len([l for l in model.generator.layers if l.name.endswith("_conv") and "down" in l.name]) == levels
    x, y = _pair(size=size)
    out = model(x)
    assert out.shape == (2, size, size, 3) and np.all(np.abs(out) <= 1.0)
    logits = model.discriminator([x, y])
    assert logits.shape[0] == 2 and logits.shape[-1] == 1


def test_paper_architecture():
    """Isola et al.: U-Net-256 (C64-C128-C256-C512 x5), dropout 0.5 in three decoder blocks,
    no BN on the first encoder layer, 70x70 PatchGAN with a 30x30 map, N(0, 0.02) init."""
    model = Pix2Pix()
    g, d = model.generator, model.discriminator
    downs = [g.get_layer(f"down{i}_conv").filters for i in range(8)]
    assert downs == [64, 128, 256, 512, 512, 512, 512, 512]
    assert g.compute_output_spec(keras.KerasTensor((1, 256, 256, 3))).shape == (1, 256, 256, 3)
    bottleneck = keras.Model(g.input, g.get_layer("down7_act").output)
    assert bottleneck.compute_output_spec(keras.KerasTensor((1, 256, 256, 3))).shape == (1, 1, 1, 512)
    drops = [l for l in g.layers if isinstance(l, keras.layers.Dropout)]
    assert [l.name for l in drops] == ["up6_dropout", "up5_dropout", "up4_dropout"]
    assert all(l.rate == 0.5 for l in drops)
    norms = {l.name.split("_")[0] for l in g.layers if isinstance(l, keras.layers.BatchNormalization)}
    assert "down0" not in norms and {"down1", "down6", "up0"} <= norms
    assert g.get_layer("output").get_config()["activation"] == "tanh"
    pair = [keras.KerasTensor((1, 256, 256, 3))] * 2
    assert receptive_field(d) == 70 and d.compute_output_spec(pair).shape == (1, 30, 30, 1)
    assert d.input_shape == [(None, None, None, 3), (None, None, None, 3)]
    kernel = g.get_layer("down3_conv").kernel.numpy()
    assert abs(kernel.std() - 0.02) < 0.002


def test_unet_runs_fully_convolutionally_on_512():
    """Trained at 256 (8 levels), run on 512x512 as the paper's maps demo."""
    g = unet_generator(width=2, levels=8)
    out = g.predict(np.zeros((1, 512, 512, 3), "float32"), verbose=0)
    assert out.shape == (1, 512, 512, 3)


def test_losses_follow_the_paper():
    model = Pix2Pix(**TINY, seed=0)
    x, y = _pair()
    fakes = model.generate((x, y), training=False)
    g_loss, logs = model.generator_loss((x, y), fakes, training=False)
    np.testing.assert_allclose(g_loss, logs["g_gan"] + 100.0 * logs["g_l1"], rtol=1e-5)
    fake = np.asarray(model.generator(x))
    np.testing.assert_allclose(logs["g_l1"], np.abs(fake - y).mean(), rtol=1e-5)
    d_loss, _ = model.discriminator_loss((x, y), fakes, training=False)
    full = losses.nonsaturating_d_loss(model.discriminator([x, y]), model.discriminator([x, fake]))
    np.testing.assert_allclose(d_loss, 0.5 * full, rtol=1e-5)


def _lab_model(**kw):
    return Pix2Pix(**{**TINY, "color": "lab", "seed": 0, **kw})


def _gray_and_colour(n=2, size=16, seed=0):
    """Gray inputs of the colour targets' L*, as builtin:photos/gray2color makes them."""
    from kzoo.data.paired import gray_of

    rgb01 = np.random.default_rng(seed).uniform(0.05, 0.95, (n, size, size, 3)).astype("float32")
    return gray_of(rgb01) * 2 - 1, rgb01 * 2 - 1


def test_lab_generator_keeps_the_input_lightness():
    from kzoo.layers.color import gray_to_lightness, rgb_to_lab

    model = _lab_model()
    gray = np.random.default_rng(1).uniform(-0.9, 0.9, (2, 16, 16, 1)).astype("float32")
    out = np.asarray(model(gray))
    assert out.shape == (2, 16, 16, 3) and np.abs(out).max() <= 1
    lightness = np.asarray(rgb_to_lab((out + 1) / 2))[..., 0]
    np.testing.assert_allclose(lightness, np.asarray(gray_to_lightness((gray + 1) / 2))[..., 0], atol=2e-3)
    # with ab = 0 the colouriser gives back the gray input: the trivial baseline
    ab_net = model.generator.get_layer("ab_generator")
    ab_net.get_layer("out_conv").kernel.assign(np.zeros(ab_net.get_layer("out_conv").kernel.shape))
    ab_net.get_layer("out_conv").bias.assign(np.zeros(2))
    np.testing.assert_allclose(np.asarray(model(gray)), np.repeat(gray, 3, -1), atol=1e-5)


def test_lab_losses_are_the_papers_on_ab_with_the_patchgan_seeing_l_and_ab():
    from kzoo.layers.color import AB_SCALE, rgb_to_lab

    model = _lab_model()
    gray, colour = _gray_and_colour()
    assert model.discriminator.input_shape == [(None, None, None, 1), (None, None, None, 2)]  # L, ab
    source, target = (np.asarray(t) for t in model.training_pair((gray, colour)))
    assert source.shape[-1] == 1 and target.shape[-1] == 2
    expected = np.asarray(rgb_to_lab((colour + 1) / 2))[..., 1:] / AB_SCALE
    np.testing.assert_allclose(target, expected, atol=1e-5)
    fakes = model.generate((gray, colour), training=False)  # the L -> ab U-Net on the scaled L
    fake_ab = np.asarray(model.translator(source))
    np.testing.assert_allclose(np.asarray(fakes), fake_ab, atol=1e-6)
    g_loss, logs = model.generator_loss((gray, colour), fakes, training=False)
    np.testing.assert_allclose(logs["g_l1"], np.abs(fake_ab - target).mean(), rtol=1e-5)
    np.testing.assert_allclose(g_loss, logs["g_gan"] + 100.0 * logs["g_l1"], rtol=1e-5)
    gan = losses.nonsaturating_g_loss(model.discriminator([source, fake_ab]))
    np.testing.assert_allclose(logs["g_gan"], gan, rtol=1e-5)
    d_loss, _ = model.discriminator_loss((gray, colour), fakes, training=False)
    full = losses.nonsaturating_d_loss(model.discriminator([source, target]),
                                       model.discriminator([source, fake_ab]))
    np.testing.assert_allclose(d_loss, 0.5 * full, rtol=1e-5)


@pytest.mark.slow
def test_lab_training_moves_ab_towards_the_targets():
    from kzoo.layers.color import lab_to_rgb, lightness_to_gray
    from tests.helpers import compile_adam

    model = compile_adam(_lab_model(), lr=2e-3)
    lightness = np.random.default_rng(0).uniform(30, 70, (4, 16, 16, 1)).astype("float32")
    lab = np.concatenate([lightness, np.full_like(lightness, 20.0), np.full_like(lightness, 30.0)], -1)
    gray = np.asarray(lightness_to_gray(lightness)) * 2 - 1
    colour = np.asarray(lab_to_rgb(lab)) * 2 - 1  # one warm tint at every lightness
    l1 = model.fit(gray, colour, batch_size=4, epochs=12, verbose=0).history["g_l1"]
    assert l1[-1] < 0.7 * l1[0]


def test_lab_config_round_trip_and_bad_channels(tmp_path):
    import keras

    model = _lab_model(upsample="resize")
    assert model.get_config()["color"] == "lab" and model.get_config()["upsample"] == "resize"
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    gray, _ = _gray_and_colour()
    np.testing.assert_allclose(loaded(gray), model(gray), atol=1e-6)
    assert "CIE Lab" in model.card().summary
    with pytest.raises(ValueError, match="1 input and 3 output"):
        Pix2Pix(**{**TINY, "input_channels": 3, "color": "lab"})
    with pytest.raises(ValueError, match="color"):
        Pix2Pix(**{**TINY, "color": "hsv"})


def test_lab_export_parity_in_both_formats(tmp_path):
    from kzoo.export import export

    model = _lab_model(upsample="resize")
    (result,) = export(model, name="p2p-lab", out=tmp_path)
    for fmt in ("savedmodel", "onnx"):
        for outputs in result.info["parity"][fmt].values():
            for figures in outputs.values():
                assert figures["finite"] and figures["max_rel"] <= 1e-4, (fmt, figures)


@pytest.mark.parametrize("mode", ["resize", "bilinear"])
def test_unet_resize_upsampling_has_no_transposed_conv(mode):
    import keras

    g = unet_generator(input_channels=1, output_channels=3, width=4, levels=4, upsample=mode)
    assert not any(isinstance(l, keras.layers.Conv2DTranspose) for l in g.layers)
    assert g.predict(np.zeros((1, 32, 32, 1), "float32"), verbose=0).shape == (1, 32, 32, 3)
