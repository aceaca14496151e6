"""Training under `keras.distribution.DataParallel` on JAX equals training on one device.

`XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax
python -m tests.data_parallel_step OUT.json [FAMILY,...]` (the data-parallel test
of `tests/test_training.py` runs it in a subprocess: the device count and the
backend are fixed when JAX starts). For each family (default: DCGAN, whose
generator and discriminator have batch norm and two optimizers, and the VAE, one
optimizer and a reparameterisation draw from the model's seed generator), from
the same initial weights and seed state:

- one compiled (`jax.jit`) step on one device, then the same global batch under
  `DataParallel` over every local device: new weights, batch-norm statistics,
  optimizer and seed state, max absolute difference;
- three more steps under `DataParallel`: the losses stay finite, the variables
  stay replicated on every device.

Writes `{family: {"max_diff": ..., "seed_state_equal": ..., "losses": [...],
"devices": n, "replicated": bool}}` to OUT.json.
"""

from __future__ import annotations

import json
import sys

import numpy as np

FAMILIES = ("dcgan", "vae")
BATCH = 4  # global: two examples per device


def _build(name):
    import keras

    from kzoo.zoo import create_model, tiny_overrides

    keras.utils.set_random_seed(0)
    model = create_model(name, **tiny_overrides(name), seed=0)
    model.compile(**{n: keras.optimizers.Adam(1e-3) for n in model.optimizer_names})
    return model


def _fit(model, data, steps=1):
    args = data if isinstance(data, tuple) else (data,)
    per_step = len(args[0]) // steps
    history = model.fit(*args, batch_size=per_step, epochs=1, shuffle=False, verbose=0)
    return {k: [float(x) for x in np.ravel(v)] for k, v in history.history.items()}


def _state(model):
    """Every variable the step threads: weights (incl. batch-norm statistics and the seed
    state), both optimizers' variables."""
    optimizers = [getattr(model, n) for n in model.optimizer_names]
    variables = list(model.variables) + [v for opt in optimizers for v in opt.variables]
    return [np.asarray(v.value, dtype="float64") for v in variables]


def check(name, devices):
    import keras

    keras.distribution.set_distribution(None)
    single = _build(name)
    initial = single.get_weights()  # incl. the seed state
    before = _state(single)
    batch = single.sample_batch(BATCH * getattr(single, "d_steps", 1), rng=0)
    _fit(single, batch)
    expected = _state(single)

    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    try:
        model = _build(name)
        model.set_weights(initial)
        _fit(model, batch)
        got = _state(model)
        more = model.sample_batch(3 * BATCH * getattr(model, "d_steps", 1), rng=1)
        losses = _fit(model, more, steps=3)
        replicated = all(len(v.value.sharding.device_set) == len(devices)
                         and v.value.sharding.is_fully_replicated for v in model.variables)
    finally:
        keras.distribution.set_distribution(None)
    return {"max_diff": max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(got, expected)),
            "variables": len(got), "moved": sum(not np.array_equal(a, b) for a, b in zip(expected, before)),
            "losses": losses, "devices": len(devices), "replicated": replicated}


def main(argv):
    import keras

    out = argv[0]
    families = argv[1].split(",") if len(argv) > 1 else FAMILIES
    devices = keras.distribution.list_devices()
    result = {name: check(name, devices) for name in families}
    with open(out, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
