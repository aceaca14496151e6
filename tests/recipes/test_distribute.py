"""Devices, strategies, the chief, mixed precision."""

import json

import pytest

from kzoo.errors import KzooError
from kzoo.recipes.distribute import has_gpu, is_chief, make_strategy, mixed_precision_policy


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


def test_multiworker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(KzooError, match="needs the TF_CONFIG environment variable"):
        make_strategy("multiworker")
    with pytest.raises(KzooError, match="--strategy must be"):
        make_strategy("ring")


def test_mixed_precision_policy_fits_the_device():
    assert mixed_precision_policy() == ("mixed_float16" if has_gpu() else "mixed_bfloat16")


def _jax_recipe(tmp_path, *argv):
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    return subprocess.run([sys.executable, "-m", "kzoo.recipes.dcgan", *argv],
                          env={**os.environ, "KERAS_BACKEND": "jax"}, capture_output=True, text=True,
                          cwd=tmp_path, timeout=900)


def test_tf_distribute_on_jax_is_one_error_line(tmp_path):
    proc = _jax_recipe(tmp_path, "--strategy", "mirrored", "--out", str(tmp_path / "run"))
    err = [l for l in proc.stderr.strip().splitlines() if l.startswith("error: ")]
    assert proc.returncode == 2 and len(err) == 1, proc.stderr[-2000:]
    assert "KERAS_BACKEND=tensorflow" in err[0] and "--strategy default" in err[0]
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
