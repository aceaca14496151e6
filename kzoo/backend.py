"""TensorFlow's start-up lines, hidden: `quiet_tensorflow()` before anything imports it.

Importing TensorFlow (2.21 here) prints from its C++ libraries while they load --
absl's "WARNING: All log messages before absl::InitializeLog() is called are written
to STDERR", "cudart_stub.cc ... Could not find cuda drivers", oneDNN and CPU-feature
notices -- and at first use, "failed call to cuInit" (an error-level line, hidden only by
`TF_CPP_MIN_LOG_LEVEL=3`). The lines printed while loading ignore
`TF_CPP_MIN_LOG_LEVEL`, so they are dropped at the file descriptor: once
`quiet_tensorflow()` has run, every import of `tensorflow` or `jax` (their first
import, wherever in kzoo or a test it happens, and any of their submodules imported
later) runs with descriptor 2 pointed at a temporary file, which is shown only if the
import fails. The kzoo command, the recipes, the benchmarks and the tests call it
first thing; `--verbose` shows everything.

This module imports nothing heavy, and nothing of kzoo: the command line, the recipes
and the tests all use it.
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import sys
import tempfile
import threading

QUIET_PACKAGES = ("tensorflow", "jax", "jaxlib")
"""Packages whose import is run with the stderr descriptor dropped (when quiet)."""


def quiet_tensorflow(verbose: bool = False):
    """Hide TensorFlow's start-up and C++ log lines unless `verbose`.

    Sets `TF_CPP_MIN_LOG_LEVEL=3` (unless the environment already sets it; `verbose`
    sets a missing one to 0); when that level is at least 1, imports of
    `QUIET_PACKAGES` from now on drop what their libraries print while loading, and
    Python-side absl and TensorFlow logging shows errors only.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    if is_quiet():
        _install()
        if "tensorflow" in sys.modules:
            _quiet_python_logging()


def is_quiet() -> bool:
    """Whether `TF_CPP_MIN_LOG_LEVEL` asks for quiet (>= 1)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") or 0) >= 1
    except ValueError:
        return False


def import_tensorflow():
    """`import tensorflow`, quietly when `TF_CPP_MIN_LOG_LEVEL` >= 1 (`quiet_tensorflow`
    sets it). Returns the module.

    Example::

        tf = import_tensorflow()
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if is_quiet():
        _install()
    import tensorflow as tf

    return tf


def _quiet_python_logging():
    """absl's and TensorFlow's Python loggers: errors only (set once they exist: absl
    makes its own logger class for "absl" when it is first imported)."""
    if "absl.logging" in sys.modules:
        logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


class _Silenced:
    """Descriptor 2 pointed at a temporary file while the outermost quiet import runs
    (nested imports are inside it); what was written is replayed if the import fails."""

    _lock = threading.RLock()
    _depth = 0

    def __enter__(self):
        with self._lock:
            type(self)._depth += 1
            self.outer = self._depth == 1
            if self.outer:
                sys.stderr.flush()
                self.sink = tempfile.TemporaryFile()
                self.saved = os.dup(2)
                os.dup2(self.sink.fileno(), 2)
        return self

    def __exit__(self, kind, error, tb):
        with self._lock:
            type(self)._depth -= 1
            if self.outer:
                os.dup2(self.saved, 2)
                os.close(self.saved)
                if kind is not None:
                    self.sink.seek(0)
                    sys.stderr.write(self.sink.read().decode(errors="replace"))
                self.sink.close()
        return False


class _QuietLoader(importlib.abc.Loader):
    """Runs another loader's `create_module` (where an extension module's library is
    loaded) and `exec_module` silenced; the module keeps its own loader."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        with _Silenced():
            return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        with _Silenced():
            self.loader.exec_module(module)
        if module.__name__ in QUIET_PACKAGES:
            _quiet_python_logging()


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds `QUIET_PACKAGES` modules with the finders after it and wraps their loader,
    unless a quiet import is already running (its silence covers the nested ones)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] not in QUIET_PACKAGES or _Silenced._depth or not is_quiet():
            return None
        for finder in sys.meta_path[sys.meta_path.index(self) + 1:]:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


_FINDER = _QuietFinder()


def _install():
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
