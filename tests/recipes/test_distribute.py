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
