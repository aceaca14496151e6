"""kzoo.layers.conv: initialisation, normalization, conv blocks."""

import keras
import numpy as np
import pytest

from kzoo.layers import conv_block, conv_norm_act, dcgan_init, normalization


def test_dcgan_init_std():
    w = dcgan_init(seed=0)((200, 200)).numpy()
    assert abs(w.std() - 0.02) < 1e-3 and abs(w.mean()) < 1e-3


@pytest.mark.parametrize("kind,cls", [("batch", keras.layers.BatchNormalization),
                                      ("layer", keras.layers.LayerNormalization),
                                      ("instance", keras.layers.GroupNormalization)])
def test_normalization_kinds(kind, cls):
    assert isinstance(normalization(kind), cls)
    assert normalization("none") is None
    with pytest.raises(ValueError):
        normalization("weird")


def test_instance_norm_normalizes_each_example_and_channel():
    x = np.random.default_rng(0).normal(3.0, 2.0, (2, 8, 8, 3)).astype("float32")
    y = normalization("instance")(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(1, 2)), 1, atol=1e-2)


def test_conv_block_bias_only_without_norm():
    inp = keras.Input((8, 8, 2))
    out = conv_block(inp, 4, norm="batch", name="a")
    model = keras.Model(inp, out)
    assert model.get_layer("a_conv").use_bias is False
    out2 = conv_block(inp, 4, norm=None, transpose=True, name="b")
    assert keras.Model(inp, out2).get_layer("b_conv").use_bias is True
    assert out2.shape[1:] == (16, 16, 4)


def test_conv_norm_act_is_he_initialised_and_may_skip_the_activation():
    inp = keras.Input((8, 8, 2))
    model = keras.Model(inp, conv_norm_act(inp, 4, 3, strides=2, norm=None, activation=None, name="c"))
    conv = model.get_layer("c_conv")
    assert isinstance(conv.kernel_initializer, keras.initializers.HeNormal) and conv.use_bias
    assert model.output.shape[1:] == (4, 4, 4) and len(model.layers) == 2  # input, conv


@pytest.mark.parametrize("mode", ["transpose", "resize", "bilinear"])
def test_upsample_conv_modes(mode):
    from kzoo.layers.conv import upsample_conv

    x = keras.Input((None, None, 4))
    model = keras.Model(x, upsample_conv(x, 3, upsample=mode, name="up"))
    out = model(np.random.default_rng(0).standard_normal((2, 5, 6, 4)).astype("float32"))
    assert out.shape == (2, 10, 12, 3)
    kinds = {type(l).__name__ for l in model.layers}
    if mode == "transpose":
        assert "Conv2DTranspose" in kinds and "UpSampling2D" not in kinds
    else:
        assert {"UpSampling2D", "Conv2D"} <= kinds and "Conv2DTranspose" not in kinds
        assert model.get_layer("up_resize").interpolation == ("nearest" if mode == "resize" else "bilinear")
        assert model.get_layer("up_conv").kernel_size == (3, 3)
    with pytest.raises(ValueError, match="upsample"):
        upsample_conv(x, 3, upsample="deconv")


def test_conv_block_upsamples_as_asked_and_stride_one_stays_a_projection():
    x = keras.Input((1, 1, 8))
    y = conv_block(x, 4, strides=1, padding="valid", transpose=True, upsample="resize", name="p")
    assert y.shape == (None, 4, 4, 4)  # DCGAN's 1x1 -> 4x4 projection: a transposed conv in every mode
    z = conv_block(y, 2, transpose=True, upsample="resize", norm="batch", activation="relu", name="u")
    model = keras.Model(x, z)
    assert z.shape == (None, 8, 8, 2)
    assert isinstance(model.get_layer("p_conv"), keras.layers.Conv2DTranspose)
    assert isinstance(model.get_layer("u_conv"), keras.layers.Conv2D)
    assert not model.get_layer("u_conv").use_bias  # a norm follows


def test_layer_normalization_differentiates_twice_exactly():
    """A gradient penalty through the layer norm (WGAN-GP's critic): its gradient with respect to
    the weights matches finite differences (Keras' layer takes tf.nn.moments' variance, whose
    stop_gradient on the mean drops a second-derivative term: 6.76 instead of 6.37 here)."""
    import keras
    import numpy as np
    from keras import ops

    from kzoo.layers.conv import LayerNormalization
    from kzoo.training import value_and_grad, value_and_input_grad

    rng = np.random.default_rng(0)
    x0, c, w0 = (rng.standard_normal(s) for s in ((2, 6), (2, 6), (6, 6)))
    norm = LayerNormalization(axis=-1, dtype="float64")
    norm.build((None, 6))
    np.testing.assert_allclose(norm(x0), keras.layers.LayerNormalization(axis=-1, dtype="float64")(x0),
                               atol=1e-12)

    def penalty(w):
        _, g = value_and_input_grad(lambda x: (ops.sum(norm(ops.matmul(x, w)) * c), None),
                                    ops.convert_to_tensor(x0))
        return ops.sum(ops.square(g)), None

    w = keras.Variable(w0, dtype="float64")
    _, (grad,) = value_and_grad(lambda: penalty(w), [w])
    eps, fd = 1e-6, np.zeros(6)
    for j in range(6):
        e = np.zeros((6, 6))
        e[0, j] = eps
        fd[j] = (float(penalty(w0 + e)[0]) - float(penalty(w0 - e)[0])) / (2 * eps)
    np.testing.assert_allclose(np.asarray(grad)[0], fd, rtol=1e-6)
    assert abs(fd[0] - 6.365) < 1e-3
