"""The shared recipe runner: config -> data -> model -> fit -> run directory.

A recipe is a typed dataclass of paper defaults (a subclass of `TrainConfig`)
plus a few functions (`Recipe`). The resolved configuration follows the
precedence defaults -> preset (`[paper]` / `[quick]` tables of
`kzoo/recipes/presets/<recipe>.toml`, or a TOML file) -> command-line flags, and
is written to `config.json` in the run directory:

    runs/<recipe>/<run>/
      config.json        every hyper-parameter as run (changed values listed too)
      checkpoints/       Keras BackupAndRestore state, written atomically each epoch
      logs/              TensorBoard
      samples/           epoch_NNN.png: what the model makes, same inputs every epoch
      metrics.jsonl      one JSON line per epoch, then the final quality scores
      model/             the trained model (model.keras, inference.keras, metadata.json)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import logging
import os
import shutil
import sys
import time
import tomllib
import types
import typing
from pathlib import Path

from kzoo.errors import KzooError

log = logging.getLogger("kzoo")
PRESET_DIR = Path(__file__).parent / "presets"


@dataclasses.dataclass
class TrainConfig:
    """Options every recipe has. Recipes subclass this with their paper defaults."""

    data: str = "builtin:digits"
    epochs: int = 25
    steps_per_epoch: int = 0  # 0: one pass over the training data per epoch
    batch_size: int = 128
    image_size: int = 64
    seed: int = 0
    strategy: str = "default"  # default | mirrored | multiworker
    mixed_precision: bool = False
    jit_compile: bool = False
    preset: str = "paper"
    init_from: str = ""  # a hub preset (name, path, URL) whose weights start the training


@dataclasses.dataclass
class Recipe:
    """What a recipe module provides to the runner.

    Attributes:
        name: recipe name (`python -m kzoo.recipes.<name>`).
        config_cls: a `TrainConfig` subclass whose defaults are the paper's.
        load_data: `(cfg) -> (train ImageData, held-out ImageData or None)`.
        build: `(cfg, data) -> compiled keras.Model` (called inside the strategy scope).
        train_dataset: `(cfg, data, model) -> tf.data.Dataset` of global batches
            (`--batch-size` is the global batch; tf.distribute splits it over replicas).
        sample_grid: `(cfg, model, state) -> uint8 image` shown each epoch.
        evaluate: `(cfg, model, data, heldout) -> dict` of quality scores.
        inference_model: `(model) -> keras.Model` saved as model/inference.keras.
        prepare_state: optional `(cfg, model, data) -> dict` run once before training
            (fixed sample inputs; a "baseline" entry is logged as the untrained score).
        init_weights: optional `(cfg, model)` that applies `--init-from`; default: copy
            the weights of the hub preset / run `cfg.init_from` names (`kzoo.hub.init_weights`).
    """

    name: str
    config_cls: type
    load_data: typing.Callable
    build: typing.Callable
    train_dataset: typing.Callable
    sample_grid: typing.Callable
    evaluate: typing.Callable
    inference_model: typing.Callable
    prepare_state: typing.Callable | None = None
    init_weights: typing.Callable | None = None


# --- configuration -------------------------------------------------------------

def _field_type(cfg_cls, field):
    hints = typing.get_type_hints(cfg_cls)
    t = hints[field.name]
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        t = next(a for a in typing.get_args(t) if a is not type(None))
    return t


def _coerce(cfg_cls, key, value, source):
    fields = {f.name: f for f in dataclasses.fields(cfg_cls)}
    if key not in fields:
        raise KzooError(f"{source}: unknown option {key!r}; known: {', '.join(sorted(fields))}")
    t = _field_type(cfg_cls, fields[key])
    if t is bool and not isinstance(value, bool):
        raise KzooError(f"{source}: {key} must be true or false, got {value!r}")
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if t is tuple and isinstance(value, list):
        value = tuple(value)
    if not isinstance(value, t):
        raise KzooError(f"{source}: {key} must be {t.__name__}, got {value!r}")
    return value


def load_preset(recipe: Recipe, preset: str) -> dict:
    """The options of a named preset of `recipe`, or of a TOML file."""
    if preset.endswith(".toml") or os.sep in preset:
        path = Path(preset)
        if not path.is_file():
            raise KzooError(f"preset file {preset!r} does not exist")
        try:
            table = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise KzooError(f"preset file {preset!r} is not valid TOML: {e}") from None
        source = str(path)
    else:
        tables = tomllib.loads((PRESET_DIR / f"{recipe.name}.toml").read_text())
        if preset not in tables:
            raise KzooError(
                f"unknown preset {preset!r} for {recipe.name}; known: {', '.join(tables)} "
                "(or a path to a .toml file)")
        table, source = tables[preset], f"preset {preset}"
    return {k: _coerce(recipe.config_cls, k, v, source) for k, v in table.items()}


def _parser(recipe: Recipe):
    p = argparse.ArgumentParser(
        prog=f"python -m kzoo.recipes.{recipe.name}",
        description=(recipe.config_cls.__doc__ or "").strip().splitlines()[0],
        argument_default=argparse.SUPPRESS)
    p.add_argument("--out", help=f"run directory (default runs/{recipe.name}/<timestamp>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    for f in dataclasses.fields(recipe.config_cls):
        flag = "--" + f.name.replace("_", "-")
        t = _field_type(recipe.config_cls, f)
        help_text = f"default: {f.default!r}"
        if f.name == "preset":
            p.add_argument(flag, help="paper | quick | FILE.toml (default: quick on a machine "
                                      "without a GPU, else paper)")
        elif t is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
        elif t is tuple:
            p.add_argument(flag, type=_number_tuple, help=help_text)
        else:
            p.add_argument(flag, type=t, help=help_text)
    return p


def _number_tuple(text):
    """"2,4,6" -> (2, 4, 6); "0.5,2" -> (0.5, 2)."""
    return tuple(float(v) if any(c in v for c in ".eE") else int(v) for v in text.split(","))


def resolve_config(recipe: Recipe, argv=None, *, has_gpu=None):
    """Parse `argv` into (config, out, resume, notes)."""
    parser = _parser(recipe)
    args = vars(_parse_or_raise(parser, argv))
    out = args.pop("out", None)
    resume = args.pop("resume", False)
    notes = []
    if resume:
        if not out:
            raise KzooError("--resume needs --out RUN_DIR")
        cfg_path = Path(out) / "config.json"
        if not cfg_path.is_file():
            raise KzooError(f"cannot resume: {cfg_path} does not exist")
        saved = json.loads(cfg_path.read_text())["config"]
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items()}
        values.update(args)
        cfg = recipe.config_cls(**values)
        _validate(cfg)
        return cfg, out, True, notes
    preset = args.get("preset")
    if preset is None:
        if has_gpu is None:
            has_gpu = _has_gpu()
        preset = "paper" if has_gpu else "quick"
        if not has_gpu:
            notes.append("no GPU found: using the quick preset (pass --preset paper for the "
                         "paper schedule)")
    values = load_preset(recipe, preset)
    values["preset"] = preset
    values.update({k: v for k, v in args.items() if k != "preset"})
    cfg = recipe.config_cls(**values)
    _validate(cfg)
    return cfg, out, False, notes


def _parse_or_raise(parser, argv):
    # argparse prints usage and exits 2 by itself on bad flags; make its message one line.
    def error(message):
        raise KzooError(f"{parser.prog}: {message}")

    parser.error = error
    return parser.parse_args(argv)


def _validate(cfg):
    if cfg.epochs < 1:
        raise KzooError(f"--epochs must be >= 1, got {cfg.epochs}")
    if cfg.steps_per_epoch < 0:
        raise KzooError(f"--steps-per-epoch must be >= 0, got {cfg.steps_per_epoch}")
    if cfg.batch_size < 1:
        raise KzooError(f"--batch-size must be >= 1, got {cfg.batch_size}")
    if cfg.strategy not in ("default", "mirrored", "multiworker"):
        raise KzooError(f"--strategy must be default, mirrored or multiworker, got {cfg.strategy!r}")


def _has_gpu():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


# --- runtime set-up ------------------------------------------------------------

def setup_devices():
    """Honour KZOO_LOGICAL_CPUS=N: split the CPU into N logical devices (tests, demos)."""
    import tensorflow as tf

    n = int(os.environ.get("KZOO_LOGICAL_CPUS", "0") or 0)
    if n > 1:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
        except RuntimeError:
            # TensorFlow is already initialised (e.g. by a test's conftest): keep its devices.
            return


def make_strategy(name):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        if devices:
            return tf.distribute.MirroredStrategy(devices)
        # CPU-only: replicate over the logical CPUs, reducing through one device
        # (collective ops between logical CPUs of one process buy nothing).
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(
            devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
    if "TF_CONFIG" not in os.environ:
        raise KzooError("--strategy multiworker needs the TF_CONFIG environment variable "
                        "(cluster and task) on every worker")
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief():
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = tf_config.get("task", {})
    return task.get("type", "chief") == "chief" or (
        task.get("type") == "worker" and task.get("index", 0) == 0
        and "chief" not in tf_config.get("cluster", {}))


def mixed_precision_policy():
    return "mixed_float16" if _has_gpu() else "mixed_bfloat16"


# --- callbacks -----------------------------------------------------------------

def _callbacks(recipe, cfg, run, model, state):
    import keras

    from kzoo.io import save_png, write_bytes

    class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
        """BackupAndRestore whose weights and epoch counter are replaced atomically."""

        def _save_model(self):
            os.makedirs(self.backup_dir, exist_ok=True)
            tmp = self._weights_path + ".tmp.weights.h5"
            self.model.save_weights(tmp, overwrite=True)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self._weights_path)
            write_bytes(self._training_metadata_path, json.dumps(
                {"epoch": self._current_epoch, "batch": self._last_batch_seen}).encode())

    class Samples(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            save_png(run / "samples" / f"epoch_{epoch + 1:03d}.png",
                     recipe.sample_grid(cfg, self.model, state))

    class JsonLines(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            _append_jsonl(run / "metrics.jsonl",
                          {"epoch": epoch + 1, "time": time.time(),
                           **{k: float(v) for k, v in (logs or {}).items()}})

    # The checkpoint comes last: an epoch counts as done only once its samples and
    # metrics are written, so a crash in between re-runs that epoch on resume.
    return [keras.callbacks.TensorBoard(str(run / "logs")), Samples(), JsonLines(),
            AtomicBackupAndRestore(str(run / "checkpoints"), delete_checkpoint=False)]


def _append_jsonl(path, record):
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _truncate_metrics(path, initial_epoch):
    """On resume, drop lines of epochs that will be run again (and any torn last line)."""
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
    from kzoo.io import write_text

    write_text(path, "".join(k + "\n" for k in keep))


def _completed_epochs(run):
    meta = run / "checkpoints" / "training_metadata.json"
    if meta.is_file():
        return int(json.loads(meta.read_text())["epoch"])
    return 0


# --- the run -------------------------------------------------------------------

def run(recipe: Recipe, argv=None):
    """Train `recipe` as the command line asks; returns the run directory."""
    cfg, out, resume, notes = resolve_config(recipe, argv)
    for note in notes:
        print(f"kzoo: {note}", flush=True)
    setup_devices()
    import keras

    previous_policy = keras.mixed_precision.global_policy()
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy(mixed_precision_policy())
    try:
        return _train(recipe, cfg, out, resume, argv)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _train(recipe, cfg, out, resume, argv):
    import keras
    import numpy as np

    keras.utils.set_random_seed(cfg.seed)
    strategy = make_strategy(cfg.strategy)
    chief = is_chief()
    if cfg.jit_compile and strategy.num_replicas_in_sync > 1 and not _has_gpu():
        # XLA clusters cannot reach variables mirrored on another logical CPU.
        print("kzoo: XLA (jit_compile) is off for a multi-replica CPU strategy", flush=True)
        cfg = dataclasses.replace(cfg, jit_compile=False)

    run_dir = Path(out) if out else Path("runs") / recipe.name / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if chief and not resume and run_dir.exists() and any(run_dir.iterdir()):
        raise KzooError(f"run directory {run_dir} already exists; pass --resume to continue it "
                        "or choose another --out")

    # Everything that can fail on bad input happens before anything is written.
    data, heldout = recipe.load_data(cfg)
    replicas = strategy.num_replicas_in_sync
    if cfg.batch_size % replicas:
        raise KzooError(f"--batch-size {cfg.batch_size} (global) must divide evenly over "
                        f"{replicas} replicas")
    with strategy.scope():
        model = recipe.build(cfg, data)
    if cfg.init_from and not (resume and _completed_epochs(run_dir)):
        if recipe.init_weights is not None:
            recipe.init_weights(cfg, model)
        else:
            from kzoo.hub import init_weights

            init_weights(model, cfg.init_from)
    dataset = recipe.train_dataset(cfg, data, model)
    steps = cfg.steps_per_epoch or max(
        1, data.num_examples // (cfg.batch_size * getattr(model, "d_steps", 1)))

    if not chief:  # multi-worker: only the chief keeps a run directory
        import tempfile

        run_dir = Path(tempfile.mkdtemp(prefix="kzoo-worker-"))
    for sub in ("checkpoints", "logs", "samples", "model"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    from kzoo.io import write_json

    if not resume:
        defaults = recipe.config_cls()
        changed = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                   if getattr(cfg, f.name) != getattr(defaults, f.name)}
        write_json(run_dir / "config.json", {
            "recipe": recipe.name, "config": dataclasses.asdict(cfg), "changed_from_paper": changed,
            "replicas": replicas,
            "kzoo_version": _version(), "keras_version": keras.__version__,
            "tensorflow_version": _tf_version(), "argv": list(sys.argv if argv is None else argv)})
    initial_epoch = _completed_epochs(run_dir)
    _truncate_metrics(run_dir / "metrics.jsonl", initial_epoch)

    state = {"rng": np.random.default_rng(cfg.seed)}
    if recipe.prepare_state is not None:
        state.update(recipe.prepare_state(cfg, model, data))
    if initial_epoch == 0 and "baseline" in state:
        _append_jsonl(run_dir / "metrics.jsonl", {"epoch": 0, "untrained": state["baseline"]})
    print(f"kzoo: training {recipe.name} on {data.name} ({data.num_examples} examples) for "
          f"{cfg.epochs} epochs x {steps} steps, batch {cfg.batch_size} "
          f"[{replicas} replica(s)]; run dir {run_dir}"
          + (f", resuming after epoch {initial_epoch}" if initial_epoch else ""), flush=True)
    start = time.time()
    model.fit(dataset, epochs=cfg.epochs, steps_per_epoch=steps,
              callbacks=_callbacks(recipe, cfg, run_dir, model, state),
              shuffle=False, verbose=1 if sys.stdout.isatty() else 2)
    train_time = time.time() - start

    scores = recipe.evaluate(cfg, model, data, heldout)
    final = {"final": True, "train_seconds": round(train_time, 1), **scores}
    if "baseline" in state:
        final["untrained"] = state["baseline"]
    _append_jsonl(run_dir / "metrics.jsonl", final)
    save_trained(run_dir / "model", model, recipe.inference_model(model),
                 {"recipe": recipe.name, "data": data.name, "image_size": cfg.image_size,
                  "channels": data.channels, "num_classes": data.num_classes,
                  "metrics": scores, "config": dataclasses.asdict(cfg)})
    if not chief:
        shutil.rmtree(run_dir, ignore_errors=True)
        return None
    shown = ", ".join(f"{k} {v:.4g}" for k, v in scores.items() if isinstance(v, (int, float)))
    print(f"kzoo: done in {train_time:.0f}s. {shown or 'no quality metric for this data'}. "
          f"Run dir {run_dir}: model/ (trained model), samples/, metrics.jsonl, logs/ "
          f"(tensorboard --logdir {run_dir / 'logs'})", flush=True)
    return run_dir


def save_trained(model_dir: Path, model, inference, metadata):
    """Write model.keras, inference.keras and metadata.json atomically."""
    from kzoo.io import atomic_path, write_json

    with atomic_path(model_dir / "model.keras") as tmp:
        model.save(tmp)
    with atomic_path(model_dir / "inference.keras") as tmp:
        inference.save(tmp)
    write_json(model_dir / "metadata.json", {"model_class": type(model).__name__, **metadata})


def _version():
    import kzoo

    return kzoo.__version__


def _tf_version():
    import tensorflow as tf

    return tf.__version__


def main(recipe: Recipe, argv=None):
    """Entry point of `python -m kzoo.recipes.<name>`: errors become one line, exit 2."""
    logging.basicConfig(level=logging.WARNING, format="kzoo: %(message)s")
    try:
        run(recipe, argv)
    except KzooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: resume with --resume --out RUN_DIR", file=sys.stderr)
        return 130
    return 0
