import keras
import numpy as np
import pytest

from kzoo.models.unet import UNet, unet_network


def test_shapes():
    for depth, size in [(1, 8), (3, 32)]:
        net = unet_network(image_size=size, channels=3, num_classes=5, depth=depth, width=4)
        assert net.output_shape == (None, size, size, 5)
        assert net(np.zeros((2, size, size, 3), "float32")).shape == (2, size, size, 5)


def test_bad_size():
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth"):
        unet_network(image_size=20, depth=3)


def test_paper_architecture():
    """Ronneberger et al.: 4 poolings, 64 -> 1024 channels, 2x2 up-convs halving channels,
    skip concatenations, ReLU, He init, no norm, dropout at the end of the contracting path."""
    model = UNet(image_size=64)  # paper widths, small input
    net = model.network
    assert model.channels == 1 and model.num_classes == 2
    assert sum(isinstance(l, keras.layers.MaxPooling2D) for l in net.layers) == 4
    assert net.get_layer("down0_a_conv").filters == 64
    assert net.get_layer("bottleneck_b_conv").filters == 1024
    up = net.get_layer("up3_upconv")
    assert up.filters == 512 and up.kernel_size == (2, 2) and up.strides == (2, 2)
    assert len([l for l in net.layers if isinstance(l, keras.layers.Concatenate)]) == 4
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in net.layers)
    assert net.get_layer("bottleneck_dropout").rate == 0.5
    assert isinstance(net.get_layer("down0_a_conv").kernel_initializer, keras.initializers.HeNormal)
