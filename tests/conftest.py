"""Test set-up: quiet TensorFlow (no start-up or cuInit lines), and one CPU split into 2
logical devices.

The split must happen before TensorFlow initialises its devices, so it is done
here, at collection time; tests of `tf.distribute.MirroredStrategy` then get two
replicas on a CPU-only machine.
"""

import os

os.environ["KZOO_LOGICAL_CPUS"] = "2"

from kzoo.backend import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

from kzoo.recipes.runner import setup_devices  # noqa: E402

setup_devices()
