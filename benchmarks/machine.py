"""What machine a benchmark ran on, and its measured float32 matmul peak."""

from __future__ import annotations

import os
import platform
import time


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe():
    """CPU model, cores, GPUs and library versions."""
    import keras
    import numpy as np
    import tensorflow as tf

    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]}
    try:
        import onnxruntime as ort

        info["onnxruntime"] = ort.__version__
        info["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        pass
    return info


def matmul_peak(n=2048, repeats=10, dtype="float32"):
    """Achieved GFLOP/s of an n x n float32 matmul through TensorFlow (the practical peak)."""
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=dtype)
    b = tf.random.normal((n, n), dtype=dtype)
    mm = tf.function(lambda x, y: tf.matmul(x, y))
    mm(a, b).numpy()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        mm(a, b).numpy()
        times.append(time.perf_counter() - t)
    best = min(times)
    return {"n": n, "dtype": dtype, "seconds": best, "gflops": 2 * n ** 3 / best / 1e9}
