import keras
import numpy as np
import pytest

from kzoo.models.dcgan import DCGAN, dcgan_discriminator, dcgan_generator


@pytest.mark.parametrize("size,stages", [(8, 1), (32, 3), (64, 4)])
def test_shapes_at_several_sizes(size, stages):
    g = dcgan_generator(image_size=size, channels=3, latent_dim=10, width=4)
    d = dcgan_discriminator(image_size=size, channels=3, width=4)
    assert g.output_shape == (None, size, size, 3)
    assert d.output_shape == (None, 1)
    out = g(np.zeros((2, 10), "float32"))
    assert out.shape == (2, size, size, 3)
    assert np.all(np.abs(out) <= 1.0)  # tanh output


def test_bad_size():
    with pytest.raises(ValueError, match="power of two"):
        dcgan_generator(image_size=48)


def test_paper_architecture():
    """Radford et al.: BN everywhere except G's output and D's input; ReLU/tanh in G;
    LeakyReLU(0.2) in D; N(0, 0.02) init; 4x4x512 projection at 64x64 and width 64."""
    model = DCGAN()
    g, d = model.generator, model.discriminator
    assert model.latent_dim == 100 and model.image_size == 64
    assert g.get_layer("project_conv").output.shape[1:] == (4, 4, 512)
    assert g.get_layer("image").get_config()["activation"] == "tanh"
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in g.layers[-3:])
    g_acts = [l.get_config()["activation"] for l in g.layers if isinstance(l, keras.layers.Activation)]
    assert g_acts.count("relu") == 4
    first_conv = next(l for l in d.layers if isinstance(l, keras.layers.Conv2D))
    after_first = d.layers[d.layers.index(first_conv) + 1]
    assert isinstance(after_first, keras.layers.LeakyReLU)  # no BN on D's input layer
    assert after_first.get_config()["negative_slope"] == pytest.approx(0.2)
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in d.layers) == 3
    kernel = g.get_layer("up1_conv").kernel.numpy()
    assert abs(kernel.std() - 0.02) < 0.002 and abs(kernel.mean()) < 0.002


def test_resize_upsampling_generator_and_config():
    model = DCGAN(image_size=16, channels=1, latent_dim=8, width=4, upsample="resize")
    g = model.generator
    assert isinstance(g.get_layer("project_conv"), keras.layers.Conv2DTranspose)  # 1x1 -> 4x4 projection
    resizes = [l.name for l in g.layers if isinstance(l, keras.layers.UpSampling2D)]
    assert resizes == ["up1_resize", "out_resize"]
    assert sum(isinstance(l, keras.layers.Conv2DTranspose) for l in g.layers) == 1
    assert g(np.zeros((2, 8), "float32")).shape == (2, 16, 16, 1)
    assert DCGAN.from_config(model.get_config()).upsample == "resize"
    assert DCGAN(image_size=16, channels=1, latent_dim=8, width=4).upsample == "transpose"  # paper
