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
