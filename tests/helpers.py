"""Shared test helpers; the tests every model gets are in tests/models/test_contract.py."""

from __future__ import annotations

import numpy as np


def weights_of(networks):
    return [v.numpy().copy() for net in networks for v in net.trainable_variables]


def changed(before, networks, allow_unchanged=()):
    variables = [v for net in networks for v in net.trainable_variables]
    return [not np.allclose(a, v.numpy()) for a, v in zip(before, variables)
            if not any(v.path.endswith(name) for name in allow_unchanged)]


def compile_adam(model, jit_compile=False, lr=1e-3):
    import keras

    model.compile(g_optimizer=keras.optimizers.Adam(lr), d_optimizer=keras.optimizers.Adam(lr),
                  jit_compile=jit_compile)
    return model


def dead_pid():
    """The pid of a process that has already exited (a killed run's leftovers name it)."""
    import subprocess
    import sys

    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)


def leftovers(parent, *names, age=0.0):
    """Make folders `names` in `parent`, each holding a file, last modified `age` s ago."""
    import os
    import time
    from pathlib import Path

    made = []
    for name in names:
        folder = Path(parent) / name
        folder.mkdir(parents=True)
        (folder / "part.bin").write_bytes(b"x" * 100)
        when = time.time() - age
        os.utime(folder, (when, when))
        made.append(folder)
    return made


def modes(root):
    """{relative path: permission bits} of `root` and everything in it."""
    import stat
    from pathlib import Path

    root = Path(root)
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}
