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
