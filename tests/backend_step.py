"""One training step of every family, reproducible on TensorFlow and JAX (the step-equality test).

Keras' random ops use different generators on each backend (Philox on TensorFlow,
threefry on JAX), so the same seed state draws different noise. For the
comparison this module replaces them, on both backends, with one counter-based
generator written in `keras.ops` integer arithmetic that is exact on both: the
draws are a function of the seed state a `SeedGenerator` hands out (which both
backends advance alike) and of the element index. What differs between the
backends is then only float32 rounding.

`python -m tests.backend_step IN.npz OUT.npz [FAMILY,...]` (run with
`KERAS_BACKEND=jax`) loads each family's initial weights from IN.npz, runs one step
and writes the new weights to OUT.npz.
"""

from __future__ import annotations

import contextlib
import math
import sys

import numpy as np

from kzoo.recipes.registry import get_recipe, list_recipes

FAMILIES = tuple(get_recipe(name).model for name in list_recipes())  # the model of every recipe
BATCH = 2
_P = 46337  # prime; x * x < 2**31, so int32 arithmetic never overflows


def _uniform(shape, seed):
    import keras
    from keras import ops
    from keras.src.random.seed_generator import draw_seed

    state = ops.cast(ops.mod(draw_seed(seed), _P), "int32")
    n = math.prod(shape)
    x = ops.mod(ops.arange(n, dtype="int32") * 1013 + state[0] * 7919 + state[1] * 104 + 12345, _P)
    for c in (17, 4099, 271):
        x = ops.mod(x * x + c, _P)
        x = ops.mod(x * 75 + ops.mod(ops.arange(n, dtype="int32"), 977), _P)
    u = (ops.cast(x, "float32") + 0.5) / float(_P)
    del keras
    return ops.reshape(u, shape)


def _normal_unit(shape, seed):
    from keras import ops

    u = _uniform((2, *shape), seed)
    return ops.sqrt(-2.0 * ops.log(u[0])) * ops.cos(2.0 * math.pi * u[1])


def patch_random():
    """Replace the backend's random ops by the portable generator (both backends, same draws)."""
    import keras
    from keras import ops
    from keras.src import backend

    def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
        return ops.cast(_normal_unit(tuple(shape), seed) * stddev + mean, dtype or "float32")

    def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
        return ops.cast(_uniform(tuple(shape), seed) * (maxval - minval) + minval, dtype or "float32")

    def randint(shape, minval, maxval, dtype="int32", seed=None):
        u = _uniform(tuple(shape), seed)
        return ops.cast(ops.floor(u * float(maxval - minval)) + float(minval), dtype)

    def dropout(inputs, rate, noise_shape=None, seed=None):
        shape = tuple(noise_shape) if noise_shape is not None else tuple(ops.shape(inputs))
        keep = _uniform(shape, seed) >= rate
        return ops.where(keep, inputs / (1.0 - rate), ops.zeros_like(inputs))

    for name, fn in (("normal", normal), ("uniform", uniform), ("randint", randint),
                     ("dropout", dropout)):
        setattr(backend.random, name, fn)
    del keras


@contextlib.contextmanager
def _zero_initializers():
    """Initializers draw zeros from NumPy (for weights that are set right after).

    JAX runs each eager op of a new shape through its own XLA compilation; the
    random initializers of a model (and the portable generator's integer ops)
    would compile dozens of programs only to be overwritten.
    """
    import keras
    from keras.src import backend

    names = ("normal", "uniform", "truncated_normal")
    saved = {n: getattr(backend.random, n) for n in names}

    def zeros(shape, *args, dtype=None, **kwargs):
        return np.zeros(tuple(shape), keras.backend.standardize_dtype(dtype or "float32"))

    for n in names:
        setattr(backend.random, n, zeros)
    try:
        yield
    finally:
        for n, fn in saved.items():
            setattr(backend.random, n, fn)


def build(name, *, initialize=True):
    """The family's tiny model, compiled with SGD with momentum (optimizer state is threaded).

    TensorFlow runs the step eagerly (for these tiny models faster than tracing a
    `tf.function`); JAX compiles it with `jax.jit`, as `fit` always does there (on
    JAX that is faster than eager ops, each of which compiles on first use).
    `initialize=False` builds zero weights, for weights that are set next.
    """
    import keras

    from kzoo.zoo import create_model, tiny_overrides

    keras.utils.set_random_seed(0)
    with contextlib.nullcontext() if initialize else _zero_initializers():
        model = create_model(name, **tiny_overrides(name), seed=0)
    names = model.optimizer_names
    model.compile(**{n: keras.optimizers.SGD(0.01, momentum=0.9) for n in names},
                  run_eagerly=keras.backend.backend() == "tensorflow")
    return model


def batch_of(model):
    return model.sample_batch(BATCH * getattr(model, "d_steps", 1), rng=0)


def step(model, weights=None):
    """Set `weights` (if given), fit one batch; return the new weights as float64 arrays."""
    if weights is not None:
        model.set_weights(weights)
    data = batch_of(model)
    args = data if isinstance(data, tuple) else (data,)
    model.fit(*args, batch_size=len(args[0]), epochs=1, shuffle=False, verbose=0)
    return [np.asarray(w, dtype="float64") for w in model.get_weights()]


def main(argv):
    src, dst = argv[:2]
    families = argv[2].split(",") if len(argv) > 2 else FAMILIES
    patch_random()
    initial = np.load(src)
    out = {}
    for name in families:
        model = build(name, initialize=False)
        n = len(model.get_weights())
        new = step(model, [initial[f"{name}/{i}"] for i in range(n)])
        out.update({f"{name}/{i}": w for i, w in enumerate(new)})
    np.savez(dst, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
