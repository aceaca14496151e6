"""Where a run executes: logical devices, tf.distribute strategies, the chief, mixed precision."""

from __future__ import annotations

import json
import os

from kzoo.backend import import_tensorflow  # the first import of TensorFlow in a run: quiet
from kzoo.errors import KzooError


def has_gpu() -> bool:
    tf = import_tensorflow()

    return bool(tf.config.list_physical_devices("GPU"))


def setup_devices():
    """Honour KZOO_LOGICAL_CPUS=N: split the CPU into N logical devices (tests, demos)."""
    tf = import_tensorflow()

    n = int(os.environ.get("KZOO_LOGICAL_CPUS", "0") or 0)
    if n > 1:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
        except RuntimeError:
            # TensorFlow is already initialised (e.g. by a test's conftest): keep its devices.
            return


class SingleDevice:
    """What a non-TensorFlow backend trains under: one device, one replica (`--strategy default`)."""

    num_replicas_in_sync = 1
    description = {"type": "single-device"}

    def scope(self):
        import contextlib

        return contextlib.nullcontext()


class KerasDataParallel:
    """`--strategy data-parallel` on JAX: `keras.distribution.DataParallel` over the local devices.

    Set globally when created (Keras' JAX trainer reads it in `fit`, `evaluate`
    and `predict`; `kzoo.recipes.runner.run` restores the previous one): the
    variables are replicated on every device, each batch is split along its
    first axis over the devices, and the jitted step is one program over the
    global batch (GSPMD), so a step equals the single-device step on the same
    global batch -- batch-norm statistics included, which are over the global
    batch, unlike tf.distribute's per-replica ones.

    Example (with `KERAS_BACKEND=jax` and two devices)::

        strategy = KerasDataParallel()
        strategy.num_replicas_in_sync  # 2
    """

    def __init__(self):
        import keras

        devices = keras.distribution.list_devices()
        self.distribution = keras.distribution.DataParallel(devices=devices)
        keras.distribution.set_distribution(self.distribution)
        self.num_replicas_in_sync = len(devices)
        self.description = {"type": "keras.distribution.DataParallel", "devices": list(devices)}

    def scope(self):
        return self.distribution.scope()


def describe(strategy) -> dict:
    """What a run trains under, for its config.json: the strategy's type and devices."""
    if hasattr(strategy, "description"):
        return strategy.description
    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy: no devices of its own (TensorFlow places ops)
        devices = []
    return {"type": f"tf.distribute.{type(strategy).__name__}", "devices": devices}


def make_strategy(name):
    """Where a run trains: `default` (one device), `data-parallel` (synchronous data
    parallelism over the local devices on any backend: TensorFlow's MirroredStrategy,
    keras.distribution.DataParallel on JAX), or the tf.distribute strategies `mirrored`
    (GPUs, else the logical CPUs; what data-parallel is on TensorFlow) and
    `multiworker` (from TF_CONFIG), which need the TensorFlow backend."""
    import keras

    if name not in ("default", "data-parallel", "mirrored", "multiworker"):
        raise KzooError(f"--strategy must be default, data-parallel, mirrored or multiworker, got {name!r}")
    backend = keras.backend.backend()
    if backend != "tensorflow":
        if name == "default":
            return SingleDevice()
        if name == "data-parallel" and backend == "jax":
            return KerasDataParallel()
        raise KzooError(f"--strategy {name} needs KERAS_BACKEND=tensorflow" if name == "data-parallel"
                        else f"--strategy {name} is tf.distribute and needs KERAS_BACKEND=tensorflow; "
                        f"with KERAS_BACKEND={backend} use --strategy default"
                        + (" or data-parallel" if backend == "jax" else ""))
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name in ("mirrored", "data-parallel"):
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


def is_chief(tf_config=None) -> bool:
    """Whether this process writes the run directory: the chief, or worker 0 of a
    cluster without one (TF_CONFIG; a single process is its own chief)."""
    if tf_config is None:
        tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = tf_config.get("task", {})
    return task.get("type", "chief") == "chief" or (
        task.get("type") == "worker" and task.get("index", 0) == 0
        and "chief" not in tf_config.get("cluster", {}))


def mixed_precision_policy() -> str:
    """mixed_float16 on a GPU, mixed_bfloat16 on a CPU (no float16 kernels there)."""
    return "mixed_float16" if has_gpu() else "mixed_bfloat16"
