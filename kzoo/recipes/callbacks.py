"""The callbacks of a run: atomic checkpoints, per-epoch sample grids, JSON-lines metrics.

The checkpoint comes last in `run_callbacks`: an epoch counts as done only once its
samples and metrics are written, so a crash in between re-runs that epoch on resume
(and `truncate_metrics` drops the lines of epochs that will be run again).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras

from kzoo.io import save_png, write_bytes, write_text


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` whose weights and epoch counter are replaced atomically."""

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        tmp = self._weights_path + ".tmp.weights.h5"
        self.model.save_weights(tmp, overwrite=True)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self._weights_path)
        write_bytes(self._training_metadata_path, json.dumps(
            {"epoch": self._current_epoch, "batch": self._last_batch_seen}).encode())


class SampleGrid(keras.callbacks.Callback):
    """Writes `samples/epoch_NNN.png`, the picture `draw(model)` makes, after each epoch."""

    def __init__(self, folder, draw):
        super().__init__()
        self.folder, self.draw = Path(folder), draw

    def on_epoch_end(self, epoch, logs=None):
        save_png(self.folder / f"epoch_{epoch + 1:03d}.png", self.draw(self.model))


class JsonLines(keras.callbacks.Callback):
    """Appends one JSON line per epoch (epoch, time, every log value) to `path`."""

    def __init__(self, path):
        super().__init__()
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs=None):
        append_jsonl(self.path, {"epoch": epoch + 1, "time": time.time(),
                                 **{k: float(v) for k, v in (logs or {}).items()}})


def run_callbacks(run: Path, draw):
    """TensorBoard, sample grids, metrics.jsonl, then the checkpoint (see the module doc)."""
    return [keras.callbacks.TensorBoard(str(run / "logs")), SampleGrid(run / "samples", draw),
            JsonLines(run / "metrics.jsonl"),
            AtomicBackupAndRestore(str(run / "checkpoints"), delete_checkpoint=False)]


def append_jsonl(path, record):
    """Append `record` as one line, flushed to disk."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def truncate_metrics(path, initial_epoch):
    """On resume, drop lines of epochs that will be run again (and any torn last line)."""
    path = Path(path)
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("epoch", 0) <= initial_epoch and "final" not in rec:
            keep.append(line)
    write_text(path, "".join(k + "\n" for k in keep))


def completed_epochs(run) -> int:
    """Epochs the checkpoint of run directory `run` holds (0 without one)."""
    meta = Path(run) / "checkpoints" / "training_metadata.json"
    if meta.is_file():
        return int(json.loads(meta.read_text())["epoch"])
    return 0
