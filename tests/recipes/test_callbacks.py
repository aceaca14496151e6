"""Run callbacks: atomic checkpoints, sample grids, metrics lines, resume bookkeeping."""

import json

import keras
import numpy as np

from kzoo.recipes.callbacks import append_jsonl, completed_epochs, run_callbacks, truncate_metrics


def test_metrics_lines_are_truncated_to_the_completed_epochs(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for record in ({"epoch": 0, "untrained": {}}, {"epoch": 1}, {"epoch": 2}, {"epoch": 3}):
        append_jsonl(path, record)
    with open(path, "a") as f:
        f.write('{"epoch": 4, "tor')  # a line torn by a crash
    truncate_metrics(path, 2)
    assert [json.loads(l)["epoch"] for l in path.read_text().splitlines()] == [0, 1, 2]
    truncate_metrics(path, 0)  # killed before the first epoch ended: the run writes the baseline again
    assert path.read_text() == ""
    truncate_metrics(tmp_path / "none.jsonl", 1)  # no file: nothing to do
    assert not (tmp_path / "none.jsonl").exists()


def test_callbacks_write_samples_metrics_and_an_atomic_checkpoint(tmp_path):
    for sub in ("samples", "checkpoints", "logs"):
        (tmp_path / sub).mkdir()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    assert completed_epochs(tmp_path) == 0
    model.fit(x, y, epochs=2, verbose=0,
              callbacks=run_callbacks(tmp_path, lambda m: np.full((4, 4), 7, np.uint8)))
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == [1, 2] and all("loss" in l and "time" in l for l in lines)
    assert completed_epochs(tmp_path) == 2
    assert not list((tmp_path / "checkpoints").rglob("*.tmp*"))  # replaced, not left half-written
