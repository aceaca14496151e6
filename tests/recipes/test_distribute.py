"""Devices, strategies, the chief, mixed precision."""

import json

import pytest

from kzoo.errors import KzooError
from kzoo.recipes.distribute import describe, has_gpu, is_chief, make_strategy, mixed_precision_policy


@pytest.mark.parametrize("tf_config,chief", [
    ({}, True),  # a single process
    ({"task": {"type": "chief", "index": 0}}, True),
    ({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["c"], "worker": ["a"]}, "task": {"type": "worker", "index": 0}}, False),
])
def test_is_chief(tf_config, chief):
    assert is_chief(tf_config) is chief


def test_is_chief_reads_tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a", "b"]},
                                                "task": {"type": "worker", "index": 1}}))
    assert not is_chief()
    monkeypatch.delenv("TF_CONFIG")
    assert is_chief()


def test_strategies():
    assert make_strategy("default").num_replicas_in_sync == 1
    # tests/conftest.py splits the CPU into two logical devices
    assert make_strategy("mirrored").num_replicas_in_sync == 2


def test_the_default_strategy_is_described():
    assert describe(make_strategy("default")) == {"type": "tf.distribute._DefaultDistributionStrategy",
                                                  "devices": []}


def test_data_parallel_is_mirrored_on_tensorflow():
    strategy = make_strategy("data-parallel")
    assert type(strategy).__name__ == "MirroredStrategy" and strategy.num_replicas_in_sync == 2
    assert describe(strategy)["type"] == "tf.distribute.MirroredStrategy"
    assert len(describe(strategy)["devices"]) == 2


def test_multiworker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(KzooError, match="needs the TF_CONFIG environment variable"):
        make_strategy("multiworker")
    with pytest.raises(KzooError, match="--strategy must be"):
        make_strategy("ring")


def test_mixed_precision_policy_fits_the_device():
    assert mixed_precision_policy() == ("mixed_float16" if has_gpu() else "mixed_bfloat16")


def _jax_recipe(tmp_path, *argv, recipe="dcgan", **env):
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    return subprocess.run([sys.executable, "-m", f"kzoo.recipes.{recipe}", *argv],
                          env={**os.environ, "KERAS_BACKEND": "jax", **env}, capture_output=True,
                          text=True, cwd=tmp_path, timeout=900)


def test_tf_distribute_on_jax_is_one_error_line(tmp_path):
    proc = _jax_recipe(tmp_path, "--strategy", "mirrored", "--out", str(tmp_path / "run"))
    err = [l for l in proc.stderr.strip().splitlines() if l.startswith("error: ")]
    assert proc.returncode == 2 and len(err) == 1, proc.stderr[-2000:]
    assert "KERAS_BACKEND=tensorflow" in err[0] and "--strategy default or data-parallel" in err[0]
    assert not (tmp_path / "run").exists()


def test_a_jax_trained_run_records_its_backend_and_exports(tmp_path):
    """Weights are backend-independent: a run trained on JAX exports (SavedModel + ONNX) here."""
    from kzoo.cli import main
    from kzoo.recipes.registry import get_recipe

    run = tmp_path / "run"
    proc = _jax_recipe(tmp_path, "--preset", "quick", *get_recipe("dcgan").tiny, "--epochs", "1",
                       "--steps-per-epoch", "2", "--out", str(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run / "config.json").read_text())["keras_backend"] == "jax"
    assert json.loads((run / "model" / "metadata.json").read_text())["keras_backend"] == "jax"
    assert main(["export", str(run), "--out", str(tmp_path / "export"), "--name", "jax-dcgan"]) == 0
    meta = json.loads((tmp_path / "export" / "jax-dcgan" / "1" / "kzoo.json").read_text())
    assert set(meta["parity"]) >= {"onnx", "savedmodel"}  # measured against the Keras model


def test_a_jax_run_trains_data_parallel_on_two_devices_and_records_it(tmp_path):
    """--strategy data-parallel on JAX: keras.distribution.DataParallel over the local devices
    (two forced host devices here), the global batch split over them, recorded in config.json."""
    from kzoo.recipes.registry import get_recipe

    run = tmp_path / "run"
    proc = _jax_recipe(tmp_path, "--preset", "quick", *get_recipe("vae").tiny, "--epochs", "1",
                       "--steps-per-epoch", "2", "--strategy", "data-parallel", "--out", str(run),
                       recipe="vae", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[2 replica(s)]" in proc.stdout
    config = json.loads((run / "config.json").read_text())
    assert config["keras_backend"] == "jax" and config["replicas"] == 2
    assert config["config"]["strategy"] == "data-parallel"
    assert config["distribution"]["type"] == "keras.distribution.DataParallel"
    assert len(config["distribution"]["devices"]) == 2
    final = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["final"] and (run / "model" / "model.keras").is_file()
