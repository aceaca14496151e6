import keras
import numpy as np
import pytest

from kzoo import losses
from kzoo.models.vae import VAE
from kzoo.zoo import tiny_overrides
from tests.helpers import changed, weights_of


def _tiny(**kw):
    return VAE(**{**tiny_overrides("vae"), "seed": 0, **kw})


def _images(n=8, channels=1, seed=0):
    return np.tanh(np.random.default_rng(seed).standard_normal((n, 16, 16, channels))).astype("float32")


def test_shapes_and_parts():
    model = _tiny()
    x = _images(3)
    mu, log_var = model.encode(x)
    assert mu.shape == (3, 4) and log_var.shape == (3, 4)
    assert model(x).shape == (3, 16, 16, 1)
    assert model.sample(5).shape == (5, 16, 16, 1)
    parts = model.inference_parts()
    assert set(parts) == {"encoder", "decoder"}
    np.testing.assert_allclose(parts["decoder"](mu), model.decode(mu), atol=1e-6)
    np.testing.assert_allclose(model(x), model.decode(mu), atol=1e-6)  # inference uses the mean
    images = np.asarray(model.sample(4))
    assert images.min() >= -1.0 and images.max() <= 1.0


def test_interpolation_runs_between_the_two_posterior_means():
    model = _tiny()
    x = _images(2)
    path = np.asarray(model.interpolate(x[0], x[1], 5))
    ends = np.asarray(model(x))
    assert path.shape == (5, 16, 16, 1)
    np.testing.assert_allclose(path[0], ends[0], atol=1e-5)
    np.testing.assert_allclose(path[-1], ends[1], atol=1e-5)


def test_loss_terms_match_closed_forms():
    mu = np.array([[0.5, -1.0]], "float32")
    log_var = np.array([[0.2, -0.3]], "float32")
    expected = -0.5 * np.sum(1 + log_var - mu ** 2 - np.exp(log_var))
    assert float(losses.gaussian_kl(mu, log_var)) == pytest.approx(expected, rel=1e-6)
    assert float(losses.gaussian_kl(np.zeros((2, 3)), np.zeros((2, 3)))) == 0.0
    x = np.array([[[-1.0, 1.0]]], "float32")
    logits = np.array([[[0.3, -0.7]]], "float32")
    p = 1 / (1 + np.exp(-logits))
    bce = -(0 * np.log(p[..., 0]) + 1 * np.log(1 - p[..., 0])) - np.log(p[..., 1])
    assert float(losses.bernoulli_nll(x, logits)) == pytest.approx(float(bce.sum()), rel=1e-5)
    assert float(losses.gaussian_nll(x, np.zeros_like(x), 0.5)) == pytest.approx(2 / (2 * 0.25))


def test_reparameterization_draws_from_the_posterior():
    model = _tiny()
    mu = np.full((20000, 4), 1.5, "float32")
    log_var = np.full((20000, 4), np.log(0.25), "float32")
    z = np.asarray(model.reparameterize(mu, log_var))
    assert z.mean() == pytest.approx(1.5, abs=0.02) and z.std() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_train_step_changes_weights_and_tracks_terms(likelihood):
    model = _tiny(likelihood=likelihood, beta=2.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = weights_of([model.encoder, model.decoder])
    logs = model.fit(_images(8), batch_size=8, epochs=1, verbose=0).history
    assert set(logs) == {"loss", "reconstruction", "kl"}
    assert logs["loss"][0] == pytest.approx(logs["reconstruction"][0] + 2.0 * logs["kl"][0], rel=1e-4)
    assert all(changed(before, [model.encoder, model.decoder]))


def test_save_load_keeps_weights_and_noise_state(tmp_path):
    model = _tiny(likelihood="gaussian", channels=3)
    x = _images(2, channels=3)
    model.sample(2)  # advance the noise stream
    model.save(tmp_path / "vae.keras")
    loaded = keras.saving.load_model(tmp_path / "vae.keras")
    assert type(loaded) is VAE and loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-5)
    np.testing.assert_array_equal(loaded.seed_generator.state.numpy(), model.seed_generator.state.numpy())
    np.testing.assert_allclose(loaded.sample(2), model.sample(2), atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="likelihood"):
        _tiny(likelihood="poisson")
    with pytest.raises(ValueError, match="power of two"):
        _tiny(image_size=24)
