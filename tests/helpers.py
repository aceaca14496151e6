"""Shared test helpers; the tests every model gets are in tests/models/test_contract.py."""

from __future__ import annotations

import numpy as np


def weights_of(networks):
    return [v.numpy().copy() for net in networks for v in net.trainable_variables]


def changed(before, networks, allow_unchanged=()):
    variables = [v for net in networks for v in net.trainable_variables]
    return [not np.allclose(a, v.numpy()) for a, v in zip(before, variables)
            if not any(v.path.endswith(name) for name in allow_unchanged)]


def compile_adam(model, jit_compile=False, lr=1e-3):
    import keras

    model.compile(g_optimizer=keras.optimizers.Adam(lr), d_optimizer=keras.optimizers.Adam(lr),
                  jit_compile=jit_compile)
    return model
