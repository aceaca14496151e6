"""Contract tests over the model registry (timm / KerasHub style).

Each test is written once and runs for every name in `kzoo.zoo.list_models()`,
at `kzoo.zoo.tiny_overrides(name)`, with the training batch the model itself
declares (`model.sample_batch(batch_size, rng)`): a new family gets them all
without editing this file. Registry entries whose tiny model is the same as an
earlier entry's (a paper configuration and its quick variant, once shrunk) are
skipped, so each distinct model runs once.

Steps run eagerly (`run_eagerly=True`) where graph tracing would only cost time;
the XLA test traces and compiles the same step (marked slow: `pytest -m slow`).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from kzoo.zoo import create_model, list_models, tiny_overrides

NAMES = list_models()
BATCH = 2
_FIRST: dict[str, str] = {}  # canonical tiny config -> first registry name that builds it
_SAME_AS: dict[str, str] = {}  # registry name -> that first name


def tiny(name):
    """The registry's tiny model `name`; skip the test if an earlier entry builds the same model."""
    if _SAME_AS.get(name, name) != name:
        pytest.skip(f"same tiny model as {_SAME_AS[name]}")
    keras.utils.set_random_seed(0)
    model = create_model(name, **tiny_overrides(name))
    config = {k: v for k, v in model.get_config().items() if k != "name"}
    key = f"{type(model).__name__}:{sorted(config.items(), key=lambda kv: kv[0])!r}"
    _SAME_AS[name] = _FIRST.setdefault(key, name)
    if _SAME_AS[name] != name:
        pytest.skip(f"same tiny model as {_SAME_AS[name]}")
    return model


def compile_tiny(model, **kwargs):
    """Compile with one Adam per optimizer the model declares."""
    names = getattr(model, "optimizer_names", ("optimizer",))
    model.compile(**{n: keras.optimizers.Adam(1e-3) for n in names}, **kwargs)
    return model


def one_step(model):
    """Fit one batch of `model.sample_batch`; return the last logs."""
    data = model.sample_batch(BATCH, rng=0)
    history = model.fit(tf.data.Dataset.from_tensors(data), epochs=1, verbose=0, shuffle=False).history
    return {k: v[-1] for k, v in history.items()}


def optimizers_of(model):
    return {n: getattr(model, n) for n in getattr(model, "optimizer_names", ("optimizer",))}


def variables_of(model, name):
    if hasattr(model, "optimizer_variables"):
        return model.optimizer_variables(name)
    return model.trainable_variables


def endpoint_inputs(part, size, seed=0):
    """Seeded inputs for an inference endpoint; dynamic height/width get `size`."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for t in part.inputs:
        shape = [BATCH] + [size if d is None else d for d in t.shape[1:]]
        if "int" in str(t.dtype):
            feeds[t.name] = rng.integers(0, 2, shape).astype("int32")
        else:
            feeds[t.name] = np.tanh(rng.standard_normal(shape)).astype("float32")
    if isinstance(part.input, dict):
        return {k: feeds[t.name] for k, t in part.input.items()}
    values = [feeds[t.name] for t in part.inputs]
    return values if len(values) > 1 else values[0]


def assert_finite(logs):
    bad = {k: v for k, v in logs.items() if not np.all(np.isfinite(v))}
    assert not bad, f"non-finite logs: {bad}"


@pytest.mark.parametrize("name", NAMES)
def test_train_step_updates_every_optimizers_weights(name):
    model = compile_tiny(tiny(name), run_eagerly=True)
    before = {n: [v.numpy().copy() for v in variables_of(model, n)] for n in optimizers_of(model)}
    logs = one_step(model)
    assert_finite(logs)
    assert set(getattr(model, "loss_names", ())) <= set(logs), logs
    for n in before:
        after = variables_of(model, n)
        changed = [not np.allclose(a, v.numpy()) for a, v in zip(before[n], after)]
        assert any(changed), f"{n} changed no weight"
        assert int(optimizers_of(model)[n].iterations.numpy()) >= 1


@pytest.mark.parametrize("name", NAMES)
def test_keras_file_round_trip_gives_equal_outputs(name, tmp_path):
    model = tiny(name)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    size = getattr(model, "image_size", 8)
    parts, loaded_parts = model.inference_parts(), loaded.inference_parts()
    assert set(parts) == set(loaded_parts)
    for key, part in parts.items():
        x = endpoint_inputs(part, size)
        keras.tree.map_structure(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
                                 loaded_parts[key](x), part(x))
    if hasattr(model, "seed_generator"):
        np.testing.assert_array_equal(loaded.seed_generator.state.numpy(),
                                      model.seed_generator.state.numpy())


@pytest.mark.parametrize("name", NAMES)
def test_train_step_under_mixed_precision(name):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = compile_tiny(tiny(name), run_eagerly=True)
        logs = one_step(model)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert_finite(logs)
    for part in model.inference_parts().values():
        assert all(o.dtype == "float32" or "int" in str(o.dtype) for o in keras.tree.flatten(part.outputs))


@pytest.mark.slow  # XLA compiles each step for 10-100 s on a CPU; tests/test_training.py has a fast one
@pytest.mark.parametrize("name", NAMES)
def test_train_step_under_xla(name):
    model = compile_tiny(tiny(name), jit_compile=True)
    assert_finite(one_step(model))


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip(name):
    model = tiny(name)
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.count_params() == model.count_params()
