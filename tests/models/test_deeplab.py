import keras
import numpy as np
import pytest

from kzoo.models.deeplab import TINY, DeepLabV3Plus

HEAD = {"blocks": (1, 1, 1, 1), "width": 4}  # paper head (ASPP 256, decoder 48/256), tiny backbone


def _convs(net, prefix):
    return [l for l in net.layers if isinstance(l, keras.layers.Conv2D) and l.name.startswith(prefix)]


def test_shapes():
    model = DeepLabV3Plus(**TINY)
    x = np.zeros((2, 32, 32, 3), "float32")
    assert model(x).shape == (2, 32, 32, 3)
    with pytest.raises(ValueError, match="multiple of 16"):
        DeepLabV3Plus(**{**TINY, "image_size": 40})


def test_aspp_uses_rates_6_12_18_and_image_pooling():
    net = DeepLabV3Plus(image_size=64, num_classes=21, **HEAD).network
    atrous = [l for l in _convs(net, "aspp") if l.kernel_size == (3, 3)]
    assert sorted(l.dilation_rate for l in atrous) == [(6, 6), (12, 12), (18, 18)]
    assert all(l.filters == 256 and l.strides == (1, 1) for l in atrous)
    one_by_one = net.get_layer("aspp_1x1_conv")
    assert one_by_one.kernel_size == (1, 1) and one_by_one.dilation_rate == (1, 1)
    assert isinstance(net.get_layer("aspp_pool"), keras.layers.GlobalAveragePooling2D)
    # five branches of 256 channels are concatenated and projected to 256
    assert net.get_layer("aspp_concat").output.shape[-1] == 5 * 256
    assert net.get_layer("aspp_project_conv").filters == 256


def test_output_stride_16_with_dilated_last_stage():
    net = DeepLabV3Plus(image_size=64, num_classes=21, blocks=(1, 1, 2, 3), width=4).network
    assert net.get_layer("aspp_concat").output.shape[1:3] == (4, 4)  # 64 / 16
    assert net.get_layer("stage3_block2_out").output.shape[1:3] == (4, 4)
    last = [l for l in _convs(net, "stage4") if l.kernel_size == (3, 3)]
    assert all(l.strides == (1, 1) for l in _convs(net, "stage4"))
    assert [l.dilation_rate[0] for l in last] == [2, 4, 8]  # rate 2 x multi-grid (1, 2, 4)


def test_decoder_matches_the_paper():
    net = DeepLabV3Plus(image_size=64, num_classes=21, **HEAD).network
    low = net.get_layer("decoder_low_level_conv")
    assert low.kernel_size == (1, 1) and low.filters == 48
    assert low.input.shape[1:3] == (16, 16)  # stride-4 low-level features
    assert net.get_layer("decoder_up4").size == (4, 4)
    for name in ("decoder_conv1_conv", "decoder_conv2_conv"):
        conv = net.get_layer(name)
        assert conv.kernel_size == (3, 3) and conv.filters == 256
    assert net.get_layer("logits").size == (4, 4) and net.output_shape == (None, 64, 64, 21)


def test_keras_applications_backbone_made_atrous_and_loaded_from_a_file(tmp_path):
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))
    path = tmp_path / "resnet50.weights.h5"
    base.save_weights(path)
    model = DeepLabV3Plus(image_size=64, num_classes=3, backbone="resnet50",
                          backbone_weights=str(path), aspp_filters=8, decoder_filters=8)
    backbone = model.network.get_layer("resnet50_atrous")
    np.testing.assert_array_equal(backbone.get_layer("conv5_block2_1_conv").kernel.numpy(),
                                  base.get_layer("conv5_block2_1_conv").kernel.numpy())
    assert backbone.get_layer("conv5_block1_1_conv").strides == (1, 1)
    assert backbone.get_layer("conv5_block3_2_conv").dilation_rate == (2, 2)
    assert backbone.output[1].shape[1:3] == (4, 4)  # output stride 16
    assert model(np.zeros((1, 64, 64, 3), "float32")).shape == (1, 64, 64, 3)
    with pytest.raises(ValueError, match="local file"):
        DeepLabV3Plus(image_size=64, backbone="resnet50", backbone_weights="imagenet")
