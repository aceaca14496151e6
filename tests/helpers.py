"""Shared test helpers (KerasHub-style): each model test calls these in a few lines."""

from __future__ import annotations

import numpy as np


def weights_of(networks):
    return [v.numpy().copy() for net in networks for v in net.trainable_variables]


def changed(before, networks, allow_unchanged=()):
    variables = [v for net in networks for v in net.trainable_variables]
    return [not np.allclose(a, v.numpy()) for a, v in zip(before, variables)
            if not any(v.path.endswith(name) for name in allow_unchanged)]


def gan_batch(model, batch=4, seed=0):
    """A real-looking batch for `model`: images in [-1, 1] (+ labels if conditional)."""
    rng = np.random.default_rng(seed)
    n = batch * model.d_steps
    images = np.tanh(rng.standard_normal((n, model.image_size, model.image_size, model.channels))).astype("float32")
    if model.num_classes:
        return images, rng.integers(0, model.num_classes, n).astype("int32")
    return images


def generator_input(model, n=3, seed=1):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, model.latent_dim)).astype("float32")
    if model.num_classes:
        return [z, np.arange(n, dtype="int32") % model.num_classes]
    return z


def compile_adam(model, jit_compile=False, lr=1e-3):
    import keras

    model.compile(g_optimizer=keras.optimizers.Adam(lr), d_optimizer=keras.optimizers.Adam(lr),
                  jit_compile=jit_compile)
    return model


def run_train_step_test(model, batch=None, jit_compile=False, allow_unchanged=()):
    """One real `train_step` through `fit` changes every weight of both players.

    `allow_unchanged`: variable paths whose gradient is zero by construction.
    """
    compile_adam(model, jit_compile=jit_compile)
    batch = gan_batch(model) if batch is None else batch
    g_nets, d_nets = model.generator_networks, model.discriminator_networks
    g0, d0 = weights_of(g_nets), weights_of(d_nets)
    x = batch if not isinstance(batch, tuple) else batch[0]
    logs = model.fit(batch if not isinstance(batch, tuple) else batch[0],
                     None if not isinstance(batch, tuple) else batch[1],
                     batch_size=len(x), epochs=1, verbose=0, shuffle=False).history
    assert all(np.isfinite(v[-1]) for v in logs.values()), logs
    assert all(changed(g0, g_nets)), "some generator weights did not change"
    assert all(changed(d0, d_nets, allow_unchanged)), "some discriminator weights did not change"
    for name in model.loss_names:
        assert name in logs, f"{name} not tracked"
    return logs


def run_model_saving_test(model, inputs, tmp_path):
    """`.keras` save/load round trip: same class, same config, equal outputs."""
    import keras

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded(inputs), model(inputs), atol=1e-6)
    gpath = tmp_path / "generator.keras"
    model.generator.save(gpath)
    gen = keras.saving.load_model(gpath)
    np.testing.assert_allclose(gen(inputs), model(inputs), atol=1e-6)
    return loaded
