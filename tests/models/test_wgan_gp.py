import keras
import numpy as np
import pytest

from kzoo.models.wgan_gp import WGANGP
from tests.helpers import compile_adam, generator_input, run_model_saving_test, run_train_step_test


def tiny(**kw):
    return WGANGP(image_size=16, channels=1, latent_dim=8, width=8, seed=0, **kw)


def test_paper_defaults_and_no_batch_norm_in_critic():
    model = WGANGP()
    assert model.n_critic == 5 and model.d_steps == 5 and model.gp_weight == 10.0
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in model.discriminator.layers)
    assert any(isinstance(l, keras.layers.LayerNormalization) for l in model.discriminator.layers)
    with pytest.raises(ValueError, match="batch norm"):
        WGANGP(critic_norm="batch")


def test_train_step_changes_weights():
    # The critic's output bias cancels in E[C(fake)] - E[C(real)] and the penalty
    # does not see it: its gradient is exactly zero.
    logs = run_train_step_test(tiny(), allow_unchanged=("logit_conv/bias",))
    assert logs["gp"][-1] >= 0


def test_each_critic_step_uses_its_own_minibatch():
    """Algorithm 1: a batch of n_critic * m examples gives n_critic critic updates on m each."""
    model = compile_adam(tiny(n_critic=3))
    seen = []
    original = model.discriminator_loss

    def spy(data, training):
        seen.append(data)
        return original(data, training)

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


def test_save_load(tmp_path):
    model = tiny()
    loaded = run_model_saving_test(model, generator_input(model), tmp_path)
    assert loaded.n_critic == 5 and loaded.critic_norm == "layer"
