"""kzoo's pix2pix step under `fit` against the TensorFlow pix2pix tutorial's own code cells.

`reference_loops` in `benchmarks/train.py` rewrites the tutorial's `train_step` on kzoo's
networks; this row runs the tutorial itself. Given the notebook
(tensorflow/docs `site/en/tutorials/generative/pix2pix.ipynb`, read from the
`tensorflow/docs` repository; it is never committed here), `tutorial_namespace` executes
the statements of its code cells that define the names in `TUTORIAL_NAMES` -- the
generator and discriminator builders and instances, the losses, the two Adam optimizers,
the summary writer and the `@tf.function` `train_step` -- verbatim, in notebook order,
chosen by the names they define, never by cell index; dataset download, plotting and
checkpoint statements do not define those names and are skipped (the IPython magics and
shell lines do not parse as Python and are skipped too). The summary writer writes into a
temporary folder, so the tutorial step pays for its four `tf.summary.scalar` writes as a
user's does.

Both sides train on the same random 256x256 pairs in [-1, 1] (batch 1, the tutorial's
BATCH_SIZE): the tutorial through its `fit` loop's body (`for step, (input_image, target)
in ds.enumerate(): train_step(input_image, target, step)`), kzoo through
`Pix2Pix.fit` on the same `tf.data` pairs (width 64, 256x256, Adam(2e-4, beta1 0.5) as the
tutorial). Blocks of `steps` steps alternate tutorial, kzoo (and kzoo's bare
`tf.function(train_step)`, which splits what `fit` adds from what the step itself costs) in
one process, so load from other work on the machine hits them alike; a block's wall and
process (CPU) time run from the start of its first step to the end of its last (fit's own
set-up before the first batch is not counted). The ratio is the median over rounds of
tutorial time / kzoo time (> 1: kzoo is faster), of wall time and of CPU time; on a machine
shared with other work the CPU ratio is the steadier (wall time there is mostly waiting).

`python -m benchmarks --suites tutorial --tutorial PATH/pix2pix.ipynb` writes the row.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

TUTORIAL_NAMES = ("OUTPUT_CHANNELS", "downsample", "upsample", "Generator", "generator", "LAMBDA",
                  "loss_object", "generator_loss", "Discriminator", "discriminator",
                  "discriminator_loss", "generator_optimizer", "discriminator_optimizer", "log_dir",
                  "summary_writer", "train_step")
"""The names whose defining statements run: networks, losses, optimizers, summaries, step."""

SKIPPED_IMPORTS = ("matplotlib", "IPython")
"""Plotting and notebook-display imports of the tutorial's first code cell."""


def _defined(stmt):
    """Names a top-level statement binds."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def tutorial_statements(path):
    """`[(cell_index, source)]`: the statements of the notebook that define `TUTORIAL_NAMES`,
    and its imports (but plotting ones), verbatim and in notebook order.

    Raises:
        ValueError: the file is not a notebook, or a name is defined by no statement.
    """
    try:
        cells = json.loads(Path(path).read_text())["cells"]
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: not a readable Jupyter notebook ({e})") from None
    found, out = set(), []
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell["source"])
        try:
            tree = ast.parse(source)
        except SyntaxError:  # IPython magics and shell lines (%tensorboard, !ls)
            continue
        lines = source.splitlines()
        for stmt in tree.body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in stmt.names] if isinstance(stmt, ast.Import) else [stmt.module or ""]
                keep = not any(m.split(".")[0] in SKIPPED_IMPORTS for m in modules)
            else:
                names = _defined(stmt) & set(TUTORIAL_NAMES)
                found |= names
                keep = bool(names)
            if keep:
                first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
                out.append((index, "\n".join(lines[first - 1:stmt.end_lineno])))
    missing = [n for n in TUTORIAL_NAMES if n not in found]
    if missing:
        raise ValueError(f"{path}: no statement defines {', '.join(missing)} "
                         "(is it tensorflow/docs site/en/tutorials/generative/pix2pix.ipynb?)")
    return out


def tutorial_namespace(path, workdir):
    """Execute the tutorial's statements (`tutorial_statements`) in a fresh namespace, in `workdir`
    (where its summary writer writes); return the namespace."""
    namespace = {"__name__": "pix2pix_tutorial"}
    with _cwd(workdir):
        for index, source in tutorial_statements(path):
            exec(compile(source, f"{path}[cell {index}]", "exec"), namespace)  # noqa: S102
    return namespace


@contextlib.contextmanager
def _cwd(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def random_pairs(n, size=256, seed=0):
    """`n` random (input, target) pairs, (n, size, size, 3) float32 each, in [-1, 1]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return tuple(np.tanh(rng.standard_normal((n, size, size, 3))).astype("float32") for _ in range(2))


class _Clock:
    """Wall and process time from a first mark to a last one."""

    def __init__(self):
        self.start = self.end = None

    def mark(self, first):
        now = (time.perf_counter(), time.process_time())
        if first:
            self.start = now
        self.end = now

    def seconds(self):
        return self.end[0] - self.start[0], self.end[1] - self.start[1]


def measure(path, *, steps=10, rounds=3, warmup=2, bare=False, image_size=256, width=64, flops=True,
            log=print):
    """One row: the tutorial's `train_step` vs kzoo's `fit`-driven step, alternating blocks.

    Args:
        path: the tutorial notebook (`pix2pix.ipynb`).
        steps: steps per timed block.
        rounds: timed rounds (each runs a block of every arm).
        warmup: untimed steps of every arm first (tracing).
        bare: also time kzoo's `train_step` as a bare `tf.function` (no `fit`).
        flops: count each step's FLOPs (traces both steps again).
        image_size, width: kzoo's pix2pix and the pairs (the tutorial's are 256 and 64;
            smaller only for tests with a matching notebook).
    """
    import keras
    import tensorflow as tf

    from benchmarks.flops import analytic_step_flops, graph_flops
    from kzoo.zoo import create_model

    load_before = os.getloadavg()[0]
    workdir = tempfile.TemporaryDirectory(prefix="kzoo-tutorial-")
    keras.utils.set_random_seed(0)
    ns = tutorial_namespace(path, workdir.name)
    model = create_model("pix2pix", seed=0, image_size=image_size, width=width)
    adam = lambda: keras.optimizers.Adam(2e-4, beta_1=0.5)  # the tutorial's optimizers
    model.compile(g_optimizer=adam(), d_optimizer=adam())
    source, target = random_pairs(steps, image_size)
    data = tf.data.Dataset.from_tensor_slices((source, target)).batch(1)

    def tutorial_block(clock):
        for i, (input_image, target_image) in enumerate(data):
            clock.mark(i == 0)
            ns["train_step"](input_image, target_image, tf.constant(i, tf.int64))
        clock.mark(False)

    class Marks(keras.callbacks.Callback):
        def __init__(self, clock):
            super().__init__()
            self.clock = clock

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self.clock.mark(True)

        def on_train_batch_end(self, batch, logs=None):
            self.clock.mark(False)

    def fit_block(clock):
        model.fit(data, epochs=1, verbose=0, callbacks=[Marks(clock)])

    step_fn = tf.function(model.train_step)

    def bare_block(clock):
        for i, batch in enumerate(data):
            clock.mark(i == 0)
            step_fn(batch)
        clock.mark(False)

    arms = {"tutorial": tutorial_block, "kzoo_fit": fit_block}
    if bare:
        arms["kzoo_step"] = bare_block
    with _cwd(workdir.name):
        for fn in arms.values():  # warm-up: trace every step (the blocks are `steps` long)
            for _ in range(max(1, warmup // steps + (warmup % steps > 0))):
                fn(_Clock())
        times = {k: [] for k in arms}
        for r in range(rounds):
            for name, fn in arms.items():
                clock = _Clock()
                fn(clock)
                times[name].append(clock.seconds())
            log(f"  tutorial round {r + 1}/{rounds}: " + ", ".join(
                f"{k} {t[-1][0] / steps:.3f} s/step" for k, t in times.items()))
        batch = next(iter(data))
        gflop = {}
        if flops:
            gflop = {"tutorial_step_gflop": graph_flops(ns["train_step"].get_concrete_function(
                         batch[0], batch[1], tf.constant(0, tf.int64))) / 1e9,
                     "kzoo_step_gflop": graph_flops(step_fn.get_concrete_function(batch)) / 1e9,
                     "kzoo_step_gflop_analytic": analytic_step_flops(
                         model.train_step, batch, [model.generator, model.discriminator]) / 1e9}
    workdir.cleanup()
    med = {k: (statistics.median(w for w, _ in t) / steps, statistics.median(c for _, c in t) / steps)
           for k, t in times.items()}
    row = {"recipe": "pix2pix", "reference": "tensorflow/docs pix2pix.ipynb (cells run verbatim)",
           "image_size": image_size, "width": width, "batch": 1,
           "kzoo_fit_step_s": med["kzoo_fit"][0], "tutorial_step_s": med["tutorial"][0],
           "kzoo_fit_cpu_s": med["kzoo_fit"][1], "tutorial_cpu_s": med["tutorial"][1],
           "ratio_to_tutorial": statistics.median(t[0] / k[0] for t, k in zip(times["tutorial"],
                                                                              times["kzoo_fit"])),
           "cpu_ratio_to_tutorial": statistics.median(t[1] / k[1] for t, k in zip(times["tutorial"],
                                                                                  times["kzoo_fit"])),
           **gflop,
           "rounds": rounds, "steps_per_round": steps,
           "load_average_1min": [load_before, os.getloadavg()[0]]}
    if bare:
        row.update(kzoo_step_s=med["kzoo_step"][0], kzoo_step_cpu_s=med["kzoo_step"][1],
                   bare_ratio_to_tutorial=statistics.median(
                       t[0] / k[0] for t, k in zip(times["tutorial"], times["kzoo_step"])))
    return row


def run(path, **kwargs):
    """The tutorial row (a one-row list), or a row with the error: reported, not hidden."""
    try:
        row = measure(path, **kwargs)
        print(f"  tutorial: kzoo fit {row['kzoo_fit_step_s']:.3f} s/step ({row['kzoo_fit_cpu_s']:.2f} "
              f"CPU-s), tutorial {row['tutorial_step_s']:.3f} s/step ({row['tutorial_cpu_s']:.2f} CPU-s), "
              f"ratio {row['ratio_to_tutorial']:.2f}", flush=True)
    except Exception as e:  # noqa: BLE001 -- reported in the row, not hidden
        row = {"recipe": "pix2pix", "reference": "error", "error": f"{type(e).__name__}: {e}"[:300]}
        print(f"  tutorial: {row['error']}", flush=True)
    return [row]
