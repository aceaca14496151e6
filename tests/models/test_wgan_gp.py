import keras
import numpy as np
import pytest

from kzoo.models.wgan_gp import WGANGP
from kzoo.zoo import tiny_overrides
from tests.helpers import compile_adam


def tiny(**kw):
    return WGANGP(**{**tiny_overrides("wgan_gp"), "seed": 0, **kw})


def test_critic_has_no_batch_norm():
    """The penalty is per example (Gulrajani et al., Sec. 4): layer norm, and batch norm is refused."""
    model = tiny()
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in model.discriminator.layers)
    assert any(isinstance(l, keras.layers.LayerNormalization) for l in model.discriminator.layers)
    with pytest.raises(ValueError, match="batch norm"):
        tiny(critic_norm="batch")


def test_each_critic_step_uses_its_own_minibatch():
    """Algorithm 1: a batch of n_critic * m examples gives n_critic critic updates on m each."""
    model = compile_adam(tiny(n_critic=3))
    seen = []
    original = model.discriminator_loss

    def spy(data, fakes, training):
        seen.append(data)
        return original(data, fakes, training)

    model.discriminator_loss = spy
    batch = np.arange(6 * 16 * 16, dtype="float32").reshape(6, 16, 16, 1) / 1536.0
    model.train_step(keras.ops.convert_to_tensor(batch))
    assert len(seen) == 3
    for i, chunk in enumerate(seen):
        np.testing.assert_array_equal(chunk, batch[2 * i: 2 * i + 2])


def test_gradient_penalty_value():
    """For a linear critic C(x) = <w, x>, ||grad|| = ||w||, so GP = (||w|| - 1)^2."""
    from kzoo.losses import gradient_penalty

    w = np.full((4, 4, 1), 0.5, "float32")  # ||w|| = 2
    critic = lambda x, training: keras.ops.sum(x * w, axis=(1, 2, 3))  # noqa: E731
    real = np.random.default_rng(0).standard_normal((3, 4, 4, 1)).astype("float32")
    fake = np.zeros_like(real)
    gp = gradient_penalty(critic, real, fake, np.full((3, 1, 1, 1), 0.3, "float32"))
    assert float(gp) == pytest.approx(1.0, rel=1e-5)
