"""The recipe runner: config -> data -> model -> fit -> run directory.

A recipe (`kzoo.recipes.registry.Recipe`) is a typed dataclass of paper defaults
plus a few functions. `run` resolves its configuration (`kzoo.recipes.config`),
sets up devices and the strategy (`kzoo.recipes.distribute`), trains with the
run's callbacks (`kzoo.recipes.callbacks`) and writes the run directory:

    runs/<recipe>/<run>/
      config.json        every option as run: "config" (training options, with the
                         model options under "model"), changed values listed too
      checkpoints/       Keras BackupAndRestore state, written atomically each epoch
      logs/              TensorBoard
      samples/           epoch_NNN.png: what the model makes, same inputs every epoch
      metrics.jsonl      one JSON line per epoch, then the final quality scores
      model/             the trained model (model.keras, inference.keras, metadata.json)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import shutil
import sys
import time
from pathlib import Path

from kzoo.errors import KzooError
from kzoo.io import error_line, remove_stale_temps
from kzoo.recipes.config import (  # noqa: F401  (the names recipe modules and tools import)
    TrainConfig,
    changed_from,
    load_preset,
    paper_config,
    resolve_config,
    steps_per_epoch,
)
from kzoo.recipes.distribute import (  # noqa: F401
    describe as describe_strategy,
    has_gpu,
    is_chief,
    make_strategy,
    mixed_precision_policy,
    setup_devices,
)
from kzoo.recipes.registry import Recipe, register_recipe  # noqa: F401

log = logging.getLogger("kzoo")


def run(recipe: Recipe, argv=None):
    """Train `recipe` as the command line asks; returns the run directory."""
    cfg, out, resume, notes = resolve_config(recipe, argv)
    for note in notes:
        print(f"kzoo: {note}", flush=True)
    setup_devices()
    import keras

    previous_policy = keras.mixed_precision.global_policy()
    previous_distribution = keras.distribution.distribution()  # --strategy data-parallel on JAX sets one
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy(mixed_precision_policy())
    try:
        return _train(recipe, cfg, out, resume, argv)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        keras.distribution.set_distribution(previous_distribution)


def _train(recipe, cfg, out, resume, argv):
    import keras
    import numpy as np

    from kzoo.io import make_dirs, write_json
    from kzoo.recipes.callbacks import append_jsonl, completed_epochs, run_callbacks, truncate_metrics

    keras.utils.set_random_seed(cfg.seed)
    strategy = make_strategy(cfg.strategy)
    chief = is_chief()
    if (cfg.jit_compile and strategy.num_replicas_in_sync > 1 and keras.backend.backend() == "tensorflow"
            and not has_gpu()):
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
    if cfg.init_from and not (resume and completed_epochs(run_dir)):
        if recipe.init_weights is not None:
            recipe.init_weights(cfg, model)
        else:
            from kzoo.hub import init_weights

            init_weights(model, cfg.init_from)
    dataset = recipe.train_dataset(cfg, data, model)
    steps = steps_per_epoch(cfg, data, minibatches=getattr(model, "d_steps", 1))

    if not chief:  # multi-worker: only the chief keeps a run directory
        import tempfile

        run_dir = Path(tempfile.mkdtemp(prefix="kzoo-worker-"))
    for sub in ("checkpoints", "logs", "samples", "model"):
        make_dirs(run_dir / sub)
        if resume:  # temporary files of writes a killed run never finished
            remove_stale_temps(run_dir / sub)
    if resume:
        remove_stale_temps(run_dir)
    argv = list(sys.argv if argv is None else argv)
    if resume:
        record_resume(run_dir / "config.json", recipe, cfg, argv)
    else:
        write_json(run_dir / "config.json", {
            "recipe": recipe.name, "model_name": recipe.model, "config": dataclasses.asdict(cfg),
            "changed_from_paper": changed_from(cfg, paper_config(recipe)), "replicas": replicas,
            "distribution": describe_strategy(strategy),
            "kzoo_version": _version(), "keras_version": keras.__version__,
            "tensorflow_version": _tf_version(), "argv": argv,
            "keras_backend": keras.backend.backend()})
    initial_epoch = completed_epochs(run_dir)
    truncate_metrics(run_dir / "metrics.jsonl", initial_epoch)

    state = {"rng": np.random.default_rng(cfg.seed)}
    if recipe.prepare_state is not None:
        state.update(recipe.prepare_state(cfg, model, data))
    if initial_epoch == 0 and state.get("baseline"):
        append_jsonl(run_dir / "metrics.jsonl", {"epoch": 0, "untrained": state["baseline"]})
    print(f"kzoo: training {recipe.name} on {data.name} ({data.num_examples} examples) for "
          f"{cfg.epochs} epochs x {steps} steps, batch {cfg.batch_size} "
          f"[{replicas} replica(s)]; run dir {run_dir}"
          + (f", resuming after epoch {initial_epoch}" if initial_epoch else ""), flush=True)
    start = time.time()
    model.fit(dataset, epochs=cfg.epochs, steps_per_epoch=steps,
              callbacks=run_callbacks(run_dir, lambda m: recipe.sample_grid(cfg, m, state)),
              shuffle=False, verbose=1 if sys.stdout.isatty() else 2)
    train_time = time.time() - start

    scores = recipe.evaluate(cfg, model, data, heldout) if cfg.eval_samples != 0 else {}
    final = {"final": True, "train_seconds": round(train_time, 1), **scores}
    if state.get("baseline"):
        final["untrained"] = state["baseline"]
    append_jsonl(run_dir / "metrics.jsonl", final)
    save_trained(run_dir / "model", model, recipe.inference_model(model),
                 {"recipe": recipe.name, "keras_backend": keras.backend.backend(),
                  "data": data.name, "image_size": cfg.image_size,
                  "channels": data.channels, "num_classes": data.num_classes,
                  "metrics": scores, "config": dataclasses.asdict(cfg)})
    if not chief:
        shutil.rmtree(run_dir, ignore_errors=True)
        return None
    shown = ", ".join(f"{k} {v:.4g}" for k, v in scores.items() if isinstance(v, (int, float)))
    print(f"kzoo: done in {train_time:.0f}s. {shown or 'no quality metric for this data'}. "
          f"Run dir {run_dir}: model/ (trained model), samples/, metrics.jsonl, logs/ "
          f"(tensorboard --logdir {run_dir / 'logs'})", flush=True)
    line = recipe.summary(scores) if recipe.summary is not None and scores else None
    if line:
        print(f"kzoo: {line}", flush=True)
    return run_dir


def record_resume(path: Path, recipe, cfg, argv):
    """Record a resume in the run's config.json: "config" takes the schedule options
    the resume changed (`config.check_resume` refused any other change) and the
    "resumes" list gets {"time", "argv", "changed": {option: [before, after]}}."""
    from kzoo.io import write_json
    from kzoo.recipes.config import from_record, make_config, read_run_config

    record = read_run_config(path.parent)
    before = make_config(recipe, *from_record(recipe, record["config"]))
    was = {**dataclasses.asdict(before), **before.model}
    record["config"] = dataclasses.asdict(cfg)
    record.setdefault("resumes", []).append({
        "time": _dt.datetime.now().isoformat(timespec="seconds"), "argv": argv,
        "changed": {k: [was.get(k), v] for k, v in changed_from(cfg, before).items()}})
    write_json(path, record)


def save_trained(model_dir: Path, model, inference, metadata):
    """Write model.keras, inference.keras and metadata.json atomically (free space
    checked first against the size of the weights)."""
    from kzoo.io import atomic_path, variables_nbytes, write_json

    for name, m in (("model.keras", model), ("inference.keras", inference)):
        with atomic_path(model_dir / name, size=variables_nbytes(m)) as tmp:
            m.save(tmp)
    write_json(model_dir / "metadata.json", {"model_class": type(model).__name__,
                                             "card": model.card().to_dict(), **metadata})


def _version():
    import kzoo

    return kzoo.__version__


def _tf_version():
    import tensorflow as tf

    return tf.__version__


def main(recipe: Recipe, argv=None):
    """Entry point of `python -m kzoo.recipes.<name>`: errors become one line, exit 2.

    TensorFlow's start-up and C++ log messages are hidden unless `--verbose`.
    """
    from kzoo.backend import quiet_tensorflow

    logging.basicConfig(level=logging.WARNING, format="kzoo: %(message)s")
    args = sys.argv[1:] if argv is None else argv
    try:
        quiet_tensorflow("--verbose" in args)
        run(recipe, argv)
    except Exception as e:  # bad input, or a full or read-only disk wherever it was met: one line
        line = error_line(e)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: resume with --resume --out RUN_DIR", file=sys.stderr)
        return 130
    return 0
