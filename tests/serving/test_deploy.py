"""The deployment files of serving/ and an export tree's configs pass kzoo.serving.deploy.check."""

import shutil
from pathlib import Path

import pytest

from kzoo.serving import deploy

pytest.importorskip("yaml")
SERVING = Path(__file__).resolve().parents[2] / "serving"


def test_repository_files_are_consistent(export_tree):
    assert deploy.check(SERVING, export_tree) == []


@pytest.mark.parametrize("file,old,new,match", [
    ("docker-compose.yml", "../export:/models:ro", "./models:/models", "does not mount ../export"),
    ("docker-compose.yml", "tensorflow/serving:latest-gpu", "tensorflow/serving:latest", "expected tensorflow/serving:latest-gpu"),
    ("docker-compose.yml", "services:", "services: [", "docker-compose.yml"),
    ("triton/docker-compose.yml", "--model-repository=/models", "--model-store=/m", "--model-repository"),
    ("k8s/tf-serving.yaml", "path: /v1/models/dcgan,", "path: /healthz,", "readinessProbe"),
    ("k8s/tf-serving.yaml", "name: kzoo-tf-serving\n  minReplicas", "name: other\n  minReplicas", "does not scale"),
    ("k8s/tf-serving.yaml", "max_batch_size { value: 32 }", "max_batch_size { value: 8 }", "ConfigMap batching"),
    ("config/batching.config", "num_batch_threads", "num_batch_thread", "unknown field"),
])
def test_check_finds_broken_files(tmp_path, file, old, new, match):
    copy = shutil.copytree(SERVING, tmp_path / "serving")
    text = (copy / file).read_text()
    assert old in text
    (copy / file).write_text(text.replace(old, new, 1))
    problems = deploy.check(copy)
    assert problems and any(match in p for p in problems), problems


def test_check_finds_a_stale_models_config(tmp_path, export_tree):
    tree = shutil.copytree(export_tree, tmp_path / "export")
    shutil.rmtree(tree / "cgan")
    problems = deploy.check(SERVING, tree)
    assert any("models.config lists ['cgan']" in p for p in problems), problems
