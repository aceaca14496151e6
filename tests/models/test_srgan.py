import keras
import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.layers import PixelShuffle
from kzoo.models.srgan import (SRGAN, SRResNet, random_vgg_features, srgan_discriminator,
                               upsample_factors, vgg19_features)
from kzoo.zoo import tiny_overrides
from tests.helpers import changed, compile_adam, weights_of

TINY_FEATURES = dict(width=4, layer="block2_conv2")


def sr_batch(image_size=16, scale=4, n=4, seed=0):
    rng = np.random.default_rng(seed)
    hr = np.tanh(rng.standard_normal((n, image_size, image_size, 3))).astype("float32")
    lr = hr.reshape(n, image_size // scale, scale, image_size // scale, scale, 3).mean((2, 4))
    return lr, hr


def tiny_srgan(**kw):
    return SRGAN(**{**tiny_overrides("srgan"), "seed": 0, **kw})


@pytest.mark.parametrize("lr_shape", [(1, 1), (6, 5), (12, 16)])
def test_generator_x4_at_several_sizes(lr_shape):
    g = SRResNet(width=8, num_blocks=2)
    assert g.output_shape == (None, None, None, 3)
    out = g(np.zeros((2, *lr_shape, 3), "float32"))
    assert out.shape == (2, lr_shape[0] * 4, lr_shape[1] * 4, 3)


@pytest.mark.parametrize("scale,factors", [(2, [2]), (3, [3]), (4, [2, 2]), (8, [2, 2, 2]), (6, [2, 3])])
def test_other_scales(scale, factors):
    assert upsample_factors(scale) == factors
    g = SRResNet(scale=scale, width=4, num_blocks=1)
    assert g(np.zeros((1, 3, 2, 3), "float32")).shape == (1, 3 * scale, 2 * scale, 3)


def test_paper_generator_architecture():
    """Ledig et al., Fig. 4: k9n64 + PReLU, 16 x (conv-BN-PReLU-conv-BN + skip), conv-BN +
    global skip, 2 x (conv 256 - pixel shuffle x2 - PReLU), k9n3; about 1.5M parameters."""
    g = SRResNet()
    assert g.get_layer("head_conv").kernel.shape == (9, 9, 3, 64)
    assert g.get_layer("out_conv").kernel.shape == (9, 9, 64, 3)
    assert sum(l.name.endswith("_add") for l in g.layers) == 16
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in g.layers) == 33
    shuffles = [l for l in g.layers if isinstance(l, PixelShuffle)]
    assert [s.scale for s in shuffles] == [2, 2]
    assert g.get_layer("up1_conv").kernel.shape == (3, 3, 64, 256)
    prelus = [l for l in g.layers if isinstance(l, keras.layers.PReLU)]
    assert len(prelus) == 1 + 16 + 2
    assert prelus[0].alpha.shape == (1, 1, 64)  # per channel, shared over space
    skip = g.get_layer("global_skip")
    assert {t._keras_history.operation.name for t in skip.input} == {"head_prelu", "trunk_norm"}
    assert g.get_layer("sr").get_config()["activation"] == "linear"
    assert 1.5e6 < g.count_params() < 1.6e6


@pytest.mark.parametrize("size", [16, 32, 96])
def test_discriminator_shapes(size):
    d = srgan_discriminator(image_size=size, width=4, dense_units=8)
    assert d.output_shape == (None, 1)
    assert d(np.zeros((2, size, size, 3), "float32")).shape == (2, 1)
    assert d.get_layer("flatten").output.shape[1] == (size // 16) ** 2 * 32


def test_paper_discriminator_architecture():
    d = srgan_discriminator()
    convs = [l for l in d.layers if isinstance(l, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.strides[0] for c in convs] == [1, 2] * 4
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in d.layers) == 7
    acts = [l for l in d.layers if isinstance(l, keras.layers.LeakyReLU)]
    assert len(acts) == 9 and all(a.get_config()["negative_slope"] == pytest.approx(0.2) for a in acts)
    assert d.get_layer("flatten").output.shape[1] == 6 * 6 * 512
    assert d.get_layer("dense").units == 1024


@pytest.mark.parametrize("content_loss,adversarial_loss", [("mse", "standard"), ("features", "standard"),
                                                           ("mse", "relativistic")])
def test_srgan_stage_train_step_changes_weights(content_loss, adversarial_loss):
    extractor = random_vgg_features(**TINY_FEATURES) if content_loss == "features" else None
    model = tiny_srgan(content_loss=content_loss, feature_extractor=extractor, feature_scale=1.0,
                       adversarial_loss=adversarial_loss)
    assert type(model).from_config(model.get_config()).adversarial_loss == adversarial_loss
    compile_adam(model)
    lr, hr = sr_batch()
    g0, d0 = weights_of([model.generator]), weights_of([model.discriminator])
    f0 = [w.numpy().copy() for w in model.feature_extractor.weights] if extractor else []
    logs = model.fit(lr, hr, batch_size=4, epochs=1, verbose=0).history
    assert set(model.loss_names) <= set(logs)
    assert all(np.isfinite(v[-1]) for v in logs.values())
    assert logs["g_loss"][-1] == pytest.approx(logs["content_loss"][-1] + 1e-3 * logs["adversarial_loss"][-1],
                                               rel=1e-5)
    assert all(changed(g0, [model.generator])) and all(changed(d0, [model.discriminator]))
    if extractor:  # the feature network is frozen
        assert not model.feature_extractor.trainable_weights
        for a, w in zip(f0, model.feature_extractor.weights):
            np.testing.assert_array_equal(a, w.numpy())


def test_content_losses():
    lr, hr = sr_batch()
    mse = tiny_srgan(content_loss="mse")
    assert float(mse.content(hr, hr)) == 0.0
    np.testing.assert_allclose(float(mse.content(hr + 0.5, hr)), 0.25, rtol=1e-6)
    feat = tiny_srgan(content_loss="features", feature_extractor=random_vgg_features(**TINY_FEATURES),
                      feature_scale=2.0)
    f = feat.feature_extractor
    expected = 2.0 * np.mean((f(hr * 0.5).numpy() - f(hr).numpy()) ** 2)
    np.testing.assert_allclose(float(feat.content(hr * 0.5, hr)), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="content_loss"):
        tiny_srgan(content_loss="l1")


def test_random_features_are_seeded_and_frozen():
    a, b = random_vgg_features(**TINY_FEATURES), random_vgg_features(**TINY_FEATURES)
    c = random_vgg_features(**TINY_FEATURES, seed=1)
    x = sr_batch()[1]
    np.testing.assert_array_equal(a(x), b(x))
    assert not np.allclose(a(x), c(x))
    assert a(x).shape == (4, 8, 8, 8) and not a.trainable_weights
    assert random_vgg_features(width=2)(np.zeros((1, 32, 32, 3), "float32")).shape == (1, 2, 2, 16)
    with pytest.raises(ValueError, match="unknown VGG19 layer"):
        random_vgg_features(layer="block9_conv1")


def test_vgg19_features_from_a_weights_file(tmp_path):
    """The user's VGG19 weights: loaded from a file, fed Caffe-preprocessed [-1, 1] input."""
    keras.utils.set_random_seed(0)
    base = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / "vgg19.weights.h5"
    base.save_weights(path)
    feats = vgg19_features(str(path), layer="block2_conv2")
    assert not feats.trainable_weights
    x = sr_batch()[1]
    caffe = keras.applications.vgg19.preprocess_input((x + 1.0) * 127.5)
    expected = keras.Model(base.input, base.get_layer("block2_conv2").output)(caffe)
    np.testing.assert_allclose(feats(x), expected, rtol=1e-4, atol=1e-3)


def test_vgg19_weights_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(KzooError, match="never downloads"):
        vgg19_features("imagenet")
    with pytest.raises(KzooError, match="nope.h5"):
        vgg19_features(str(tmp_path / "nope.h5"))


def test_save_load_srgan_with_feature_network(tmp_path):
    model = tiny_srgan(content_loss="features", feature_scale=1.0,
                       feature_extractor=random_vgg_features(**TINY_FEATURES, seed=3))
    lr, hr = sr_batch()
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.feature_extractor(hr), model.feature_extractor(hr), atol=1e-6)
    assert float(loaded.content(lr.repeat(4, 1).repeat(4, 2), hr)) == pytest.approx(
        float(model.content(lr.repeat(4, 1).repeat(4, 2), hr)), rel=1e-5)


def test_upsampled_skip_starts_from_bilinear():
    import tensorflow as tf

    g = SRResNet(width=4, num_blocks=1, upsampled_skip=True)
    out_conv = g.get_layer("out_conv")
    out_conv.set_weights([np.zeros_like(w) for w in out_conv.get_weights()])
    lr = np.tanh(np.random.default_rng(0).standard_normal((1, 6, 5, 3))).astype("float32")
    np.testing.assert_allclose(g(lr), tf.image.resize(lr, (24, 20), "bilinear"), atol=1e-5)
    assert SRResNet.from_config(g.get_config()).upsampled_skip
