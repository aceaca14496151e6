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
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "load_average_1min": os.getloadavg()[0]}  # other work on the machine while measuring
    try:
        import onnxruntime as ort

        info["onnxruntime"] = ort.__version__
        info["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        pass
    return info


def _best_seconds(fn, repeats):
    fn()  # warm-up: thread pools, first-call allocation
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_peak(n=2048, repeats=8, dtype="float32"):
    """The machine's practical float32 peak: best-of-`repeats` n x n matmul in TensorFlow and NumPy.

    Both are reported; `gflops` is the larger, which is what a well-tuned kernel reaches on
    this machine (2 n^3 floating-point operations per product). Measured between other work,
    so the best of several runs is the least disturbed one.

    Returns:
        {"n", "dtype", "repeats", "tensorflow_gflops", "numpy_gflops", "gflops", "source"}.
    """
    import numpy as np
    import tensorflow as tf

    flop = 2 * n ** 3
    a = tf.random.normal((n, n), dtype=dtype)
    b = tf.random.normal((n, n), dtype=dtype)
    mm = tf.function(lambda x, y: tf.matmul(x, y))
    tf_s = _best_seconds(lambda: mm(a, b).numpy(), repeats)
    an, bn = a.numpy(), b.numpy()
    np_s = _best_seconds(lambda: an @ bn, repeats)
    rates = {"tensorflow": flop / tf_s / 1e9, "numpy": flop / np_s / 1e9}
    best = max(rates, key=rates.get)
    return {"n": n, "dtype": dtype, "repeats": repeats, "tensorflow_gflops": rates["tensorflow"],
            "numpy_gflops": rates["numpy"], "gflops": rates[best], "source": best}
