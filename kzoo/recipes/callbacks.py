"""The callbacks of a run: atomic checkpoints, per-epoch sample grids, JSON-lines metrics.

The checkpoint comes last in `run_callbacks`: an epoch counts as done only once its
samples and metrics are written, so a crash in between re-runs that epoch on resume
(and `truncate_metrics` drops the lines of epochs that will be run again).

Every write goes through `kzoo.io`: a full or read-only disk ends the run with one
`KzooError` line naming the file, and the previous checkpoint stays whole. The
checkpoint's HDF5 file is built in memory and written as plain bytes: HDF5 writing
straight to a full disk leaves its library in a state that crashes the process
(segmentation fault) when the file is later closed.

Keras is imported when a callback is first used, not with this module (the recipe
registry imports every module of `kzoo.recipes` to list them, and flags are checked
before TensorFlow starts).
"""

from __future__ import annotations

import functools
import io
import json
import os
import time
from pathlib import Path

from kzoo.io import save_png, write_bytes, write_text, writing


def weights_bytes(model) -> bytes:
    """What `model.save_weights(PATH.weights.h5)` writes (the same HDF5 layout, the
    optimizer's variables included), as bytes in memory."""
    from keras.src.saving import saving_lib

    buffer = io.BytesIO()
    store = saving_lib.H5IOStore(buffer, mode="w")
    try:
        saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="",
                               visited_saveables=set())
    finally:
        store.close()
    return buffer.getvalue()


@functools.cache
def _classes():
    import keras

    class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
        """`BackupAndRestore` whose weights and epoch counter are replaced atomically
        (`kzoo.io.write_bytes`: free space checked first, KzooError on a disk error)."""

        def _save_model(self):
            write_bytes(self._weights_path, weights_bytes(self.model))
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

    return {c.__name__: c for c in (AtomicBackupAndRestore, SampleGrid, JsonLines)}


def __getattr__(name):
    # `from kzoo.recipes.callbacks import SampleGrid` builds the classes (imports Keras).
    if name in ("AtomicBackupAndRestore", "SampleGrid", "JsonLines"):
        return _classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_callbacks(run: Path, draw):
    """TensorBoard, sample grids, metrics.jsonl, then the checkpoint (see the module doc)."""
    import keras

    c = _classes()
    return [keras.callbacks.TensorBoard(str(run / "logs")), c["SampleGrid"](run / "samples", draw),
            c["JsonLines"](run / "metrics.jsonl"),
            c["AtomicBackupAndRestore"](str(run / "checkpoints"), delete_checkpoint=False)]


def append_jsonl(path, record):
    """Append `record` as one line, flushed to disk (KzooError on a disk error)."""
    with writing(path):
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


def truncate_metrics(path, initial_epoch):
    """On resume, keep only the lines of the epochs the checkpoint holds (and the
    untrained baseline with them): the lines of epochs that will be run again, the
    final scores, a torn last line and, before the first epoch, the baseline line
    (the run writes it again) go."""
    path = Path(path)
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and 0 < initial_epoch and rec.get("epoch", 0) <= initial_epoch \
                and "final" not in rec:
            keep.append(line)
    write_text(path, "".join(k + "\n" for k in keep))


def completed_epochs(run) -> int:
    """Epochs the checkpoint of run directory `run` holds (0 without one)."""
    meta = Path(run) / "checkpoints" / "training_metadata.json"
    if meta.is_file():
        try:
            return int(json.loads(meta.read_text())["epoch"])
        except (ValueError, KeyError, TypeError, OSError) as e:
            from kzoo.errors import KzooError

            raise KzooError(f"cannot resume: {meta} is unreadable ({e}); remove checkpoints/ "
                            "to start the run again") from None
    return 0
