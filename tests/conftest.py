"""Test set-up: quiet TensorFlow, and one CPU split into 2 logical devices.

The split must happen before TensorFlow initialises its devices, so it is done
here, at collection time; tests of `tf.distribute.MirroredStrategy` then get two
replicas on a CPU-only machine.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KZOO_LOGICAL_CPUS"] = "2"

from kzoo.recipes.runner import setup_devices  # noqa: E402

setup_devices()
