import keras
import numpy as np
import pytest
import tensorflow as tf

from kzoo.errors import KzooError
from kzoo.training import (TrainingModel, minimize, per_replica_logs, scale_for_replicas, split_batch,
                           steps_per_epoch, unpack)


class Noise(TrainingModel):
    loss_names = ("a",)

    def call(self, x):
        return x + self.normal(keras.ops.shape(x))


class Line(TrainingModel):
    """y = w x, trained on the squared error: a known gradient."""

    loss_names = ("loss",)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")
        self.dense.build((None, 1))

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        x, y = unpack(data)

        def loss_fn():
            loss = keras.ops.mean(keras.ops.square(self(x) - y))
            return loss, {"loss": loss}

        return self.track(self.optimize(loss_fn))


class TwoPlayers(TrainingModel):
    optimizer_names = ("a_optimizer", "b_optimizer")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.a = keras.layers.Dense(1)
        self.b = keras.layers.Dense(2)
        self.a.build((None, 3))
        self.b.build((None, 3))

    def optimizer_variables(self, name):
        return (self.a if name == "a_optimizer" else self.b).trainable_variables


def test_minimize_applies_one_update_and_returns_logs():
    w = keras.Variable(3.0)
    opt = keras.optimizers.SGD(0.5)
    logs = minimize(opt, [w], lambda: (w * w, {"w2": w * w}))
    assert float(logs["w2"]) == 9.0 and float(w.numpy()) == pytest.approx(3.0 - 0.5 * 6.0)


def test_scale_for_replicas_is_identity_without_strategy():
    assert float(scale_for_replicas(np.float32(3.0))) == 3.0


def test_minimize_divides_by_replicas():
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice())
    with strategy.scope():
        w = keras.Variable(0.0)
        opt = keras.optimizers.SGD(1.0)
        opt.build([w])

    @tf.function
    def step():
        strategy.run(lambda: minimize(opt, [w], lambda: (2.0 * w, {})))

    step()
    assert float(w.numpy()) == pytest.approx(-2.0)  # the mean gradient, not the sum (-4)


def test_minimize_names_an_unsupported_backend(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with pytest.raises(KzooError, match="not 'torch'"):
        minimize(keras.optimizers.SGD(), [], lambda: (0.0, {}))


def test_seed_state_is_saved_and_losses_tracked(tmp_path):
    model = Noise(seed=5)
    x = np.zeros((3,), "float32")
    model(x)
    model.save_weights(tmp_path / "w.weights.h5")
    expected = np.asarray(model(x))
    other = Noise(seed=5)
    other.built = True
    other.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_allclose(other(x), expected)
    model.track({"a": 2.0})
    assert float(model.track({"a": 4.0, "untracked": 1.0})["a"]) == 3.0
    assert [m.name for m in model.metrics] == ["a"]


def test_noise_helpers_follow_the_model_seed():
    a, b = Noise(seed=7), Noise(seed=7)
    np.testing.assert_array_equal(a.normal((5,)), b.normal((5,)))
    np.testing.assert_array_equal(a.uniform((5,)), b.uniform((5,)))
    np.testing.assert_array_equal(a.randint((5,), 0, 10), b.randint((5,), 0, 10))
    assert not np.allclose(a.normal((5,)), a.normal((5,)))  # the state advances
    u = np.asarray(a.uniform((1000,)))
    t = np.asarray(a.randint((1000,), 3, 6))
    assert u.min() >= 0 and u.max() < 1 and set(np.unique(t)) == {3, 4, 5}


def test_fit_applies_the_known_update():
    model = Line(seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    x, y = np.array([[1.0], [2.0]], "float32"), np.array([[0.0], [0.0]], "float32")
    logs = model.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False).history
    assert logs["loss"] == [pytest.approx(2.5)]
    # d/dw mean((w x)^2) = 2 w mean(x^2) = 5 at w = 1
    assert float(model.dense.kernel.numpy()[0, 0]) == pytest.approx(1.0 - 0.1 * 5.0)


def test_step_compiles_with_xla():
    model = Line(seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=True)
    x, y = np.array([[1.0], [2.0]], "float32"), np.array([[0.0], [0.0]], "float32")
    model.fit(x, y, batch_size=2, epochs=2, verbose=0, shuffle=False)
    assert model.jit_compile
    assert float(model.dense.kernel.numpy()[0, 0]) == pytest.approx(0.5 * 0.5)  # w <- w (1 - 0.5)


def test_compile_builds_each_named_optimizer_on_its_variables():
    model = TwoPlayers()
    model.compile(a_optimizer=keras.optimizers.Adam(), b_optimizer=keras.optimizers.SGD(momentum=0.9))
    assert model.optimizer is model.a_optimizer and model.a_optimizer.built
    assert len(model.a_optimizer.variables) == 2 + 2 * 2  # iterations, lr, m and v of kernel, bias
    assert len(model.b_optimizer.variables) == 2 + 2  # momentum of kernel, bias
    with pytest.raises(ValueError, match="separate optimizers"):
        opt = keras.optimizers.Adam()
        TwoPlayers().compile(a_optimizer=opt, b_optimizer=opt)
    with pytest.raises(TypeError, match="b_optimizer is missing"):
        TwoPlayers().compile(a_optimizer="adam")
    with pytest.raises(TypeError, match="not optimizer"):
        TwoPlayers().compile("adam")


def test_compile_config_round_trips_every_optimizer():
    model = TwoPlayers()
    model.compile(a_optimizer=keras.optimizers.Adam(0.01), b_optimizer=keras.optimizers.SGD(0.5),
                  jit_compile=True)
    config = model.get_compile_config()
    assert set(config) == {"a_optimizer", "b_optimizer", "jit_compile"}
    other = TwoPlayers()
    assert other.get_compile_config() is None
    other.compile_from_config(config)
    assert isinstance(other.b_optimizer, keras.optimizers.SGD) and other.jit_compile
    assert float(other.a_optimizer.learning_rate) == pytest.approx(0.01)


def test_single_optimizer_defaults_to_rmsprop_and_reads_keras_compile_configs():
    model = Line()
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.RMSprop) and model.optimizer.built
    keras_config = {"optimizer": keras.saving.serialize_keras_object(keras.optimizers.SGD(0.3)),
                    "loss": None, "metrics": None, "jit_compile": False}
    other = Line()
    other.compile_from_config(keras_config)  # as a plain keras.Model saved it
    assert isinstance(other.optimizer, keras.optimizers.SGD)


def test_mixed_float16_wraps_every_optimizer():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = TwoPlayers()
        model.compile(a_optimizer="adam", b_optimizer="adam")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert isinstance(model.a_optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(model.b_optimizer, keras.optimizers.LossScaleOptimizer)


def test_unpack_and_split_batch():
    assert unpack((1, 2)) == (1, 2) and unpack([3]) == (3, None) and unpack(4) == (4, None)
    x, y = np.arange(6), np.arange(6) * 10
    parts = split_batch((x, y), 3)
    assert [np.asarray(p[0]).tolist() for p in parts] == [[0, 1], [2, 3], [4, 5]]
    assert [np.asarray(p[1]).tolist() for p in parts] == [[0, 10], [20, 30], [40, 50]]
    assert split_batch(x, 1) == [x]


def test_per_replica_logs_are_unchanged_off_multi_worker():
    logs = {"a": keras.ops.convert_to_tensor(1.0)}
    assert per_replica_logs(logs) is logs


def test_steps_per_epoch():
    assert steps_per_epoch(1000, 64) == 15
    assert steps_per_epoch(1000, 64, minibatches=5) == 3  # WGAN-GP: 5 critic minibatches a step
    assert steps_per_epoch(10, 64) == 1
    assert steps_per_epoch(1000, 64, requested=7) == 7


# Every family. WGAN-GP's critic step double-backpropagates through layer norm; Keras'
# TensorFlow layer dropped a second-derivative term there (kzoo.layers.conv.LayerNormalization
# fixes it), which made its weights differ from JAX's by up to 1.5e-2 on ~95 % of the critic.
CHECKED_FAMILIES = __import__("tests.backend_step").backend_step.FAMILIES


def test_one_step_gives_the_same_weights_on_tensorflow_and_jax(tmp_path):
    """Same weights, batch and seed state -> the same new weights on both backends.

    The JAX side runs in a subprocess (Keras' backend is fixed per process), from the
    initial weights this process writes, while this process runs the TensorFlow
    steps; both sides draw noise from the portable generator of `tests.backend_step`.
    """
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    from tests import backend_step

    backend_step.patch_random()
    initial, models = {}, {}
    for name in CHECKED_FAMILIES:
        models[name] = backend_step.build(name)
        initial.update({f"{name}/{i}": np.asarray(w) for i, w in enumerate(models[name].get_weights())})
    np.savez(tmp_path / "initial.npz", **initial)
    # XLA compiling the ten tiny steps is most of the JAX side's time: skip LLVM's optimizations.
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2",
           "XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"}
    with open(tmp_path / "jax.log", "w") as log, subprocess.Popen(
            [sys.executable, "-m", "tests.backend_step", str(tmp_path / "initial.npz"),
             str(tmp_path / "jax.npz"), ",".join(CHECKED_FAMILIES)], env=env, stderr=log) as jax_side:
        expected = {name: backend_step.step(model) for name, model in models.items()}
    assert jax_side.returncode == 0, (tmp_path / "jax.log").read_text()[-3000:]
    got = np.load(tmp_path / "jax.npz")
    for name, weights in expected.items():
        moved = 0
        for i, w in enumerate(weights):
            start = initial[f"{name}/{i}"].astype("float64")
            np.testing.assert_allclose(got[f"{name}/{i}"], w, rtol=1e-4, atol=2e-5,
                                       err_msg=f"{name} weight {i}")
            moved += not np.array_equal(w, start)
        # (DDPM's zero-initialised block outputs leave most of its weights still on step one)
        assert moved > len(weights) // 10, f"{name}: the step moved only {moved} of {len(weights)} weights"


def test_data_parallel_on_two_jax_devices_equals_one_device(tmp_path):
    """keras.distribution.DataParallel over 2 host devices: the step is the one-device step.

    One subprocess (`tests.data_parallel_step`, JAX with 2 forced host devices) runs
    DCGAN (two optimizers, batch norm) and the VAE (one optimizer, a seed draw):
    one jitted step on one device and the same global batch split over both devices
    agree on every weight, batch-norm statistic, seed state and optimizer variable
    (GSPMD computes the global-batch mean and batch statistics; only the summation
    order differs), and three more steps train with the variables replicated.
    """
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    run = subprocess.run([sys.executable, "-m", "tests.data_parallel_step", str(tmp_path / "dp.json")],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "dp.json").read_text())
    assert set(result) == {"dcgan", "vae"}
    for name, r in result.items():
        assert r["devices"] == 2 and r["replicated"], (name, r)
        # Adam moves each weight by about lr = 1e-3 on its first step; per-device batch
        # statistics or a per-device loss would change many updates by that much.
        assert r["max_diff"] < 1e-5, (name, r["max_diff"])
        assert r["moved"] > r["variables"] // 2, (name, r)
        assert all(np.isfinite(v).all() for v in r["losses"].values()), (name, r["losses"])
