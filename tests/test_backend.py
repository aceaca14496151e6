"""`kzoo.backend`: TensorFlow's start-up lines are dropped at the file descriptor."""

import os
import subprocess
import sys

import pytest

from kzoo.backend import _Silenced


def test_silenced_drops_what_is_written_to_descriptor_2(capfd):
    with _Silenced():
        os.write(2, b"a C++ library says hello\n")
        with _Silenced():  # nested: still dropped, restored once
            os.write(2, b"nested\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_a_failing_import_shows_what_it_printed(capfd):
    with pytest.raises(ImportError):
        with _Silenced():
            os.write(2, b"why it failed\n")
            raise ImportError("no")
    assert capfd.readouterr().err == "why it failed\n"


def test_importing_and_starting_tensorflow_prints_nothing():
    """After `quiet_tensorflow()`, an import of TensorFlow from anywhere (here via Keras)
    and its device discovery (where "failed call to cuInit" is printed) are silent."""
    code = ("from kzoo.backend import quiet_tensorflow\nquiet_tensorflow()\n"
            "import keras\nimport tensorflow as tf\n"
            "print(tf.config.list_physical_devices('GPU') is not None)\n"
            "keras.ops.ones((1,))\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=env)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "True\n", "")
