import numpy as np
import pytest

from kzoo.models.cgan import ConditionalGAN
from kzoo.zoo import create_model, tiny_overrides


def tiny():
    return create_model("cgan", **tiny_overrides("cgan"), seed=0)


def test_both_players_see_the_label():
    model = tiny()
    assert [i.name for i in model.generator.inputs] == ["z", "label"]
    assert [i.name for i in model.discriminator.inputs] == ["image", "label"]
    z = np.random.default_rng(0).standard_normal((2, 8)).astype("float32")
    a = model.generator([z, np.array([1, 1])]).numpy()
    b = model.generator([z, np.array([1, 2])]).numpy()
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)
    assert not np.allclose(a[1], b[1])
    img = np.zeros((2, 16, 16, 1), "float32")
    d = model.discriminator([img, np.array([3, 4])]).numpy()
    assert d[0, 0] != d[1, 0]


def test_needs_labels():
    model = tiny()
    with pytest.raises(ValueError, match="labels"):
        model.generate(np.zeros((2, 16, 16, 1), "float32"), training=False)
    with pytest.raises(ValueError, match="num_classes"):
        ConditionalGAN(num_classes=1)
