"""kzoo.layers.patchgan: the PatchGAN discriminator and its receptive field."""

import numpy as np
import pytest
import tensorflow as tf

from kzoo.layers import patchgan_discriminator, receptive_field


@pytest.mark.parametrize("n_layers,field", [(1, 16), (2, 34), (3, 70), (4, 142)])
def test_patchgan_receptive_field_from_layers(n_layers, field):
    assert receptive_field(patchgan_discriminator(width=2, n_layers=n_layers)) == field


def test_paper_patchgan_sees_70x70_patches():
    """The paper's configuration: 30x30 logits at 256x256, each the function of a 70x70 patch.

    Checked empirically too: the gradient of one interior logit w.r.t. the input
    is non-zero on exactly a 70x70 window.
    """
    d = patchgan_discriminator(image_size=256)
    assert d.output_shape == (None, 30, 30, 1) and receptive_field(d) == 70
    small = patchgan_discriminator(width=2, norm="none")
    x = tf.constant(np.random.default_rng(0).standard_normal((1, 128, 128, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logit = small(x)[0, 6, 6, 0]
    support = np.abs(tape.gradient(logit, x).numpy()[0]).sum(-1) > 0
    rows, cols = np.nonzero(support.any(1))[0], np.nonzero(support.any(0))[0]
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_conditional_patchgan_and_size_check():
    d = patchgan_discriminator(channels=3, condition_channels=1, width=4, n_layers=2)
    out = d([np.zeros((2, 32, 32, 1), "float32"), np.zeros((2, 32, 32, 3), "float32")])
    assert out.shape == (2, 6, 6, 1)
    with pytest.raises(ValueError, match="at least 24"):
        patchgan_discriminator(image_size=16, n_layers=3)
