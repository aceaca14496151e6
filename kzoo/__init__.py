"""kzoo: a Keras 3 model zoo for generative and dense-prediction vision.

train from a recipe -> export -> serve -> share. See README.md.
"""

__version__ = "0.1.0"

from kzoo.zoo import create_model, list_models  # noqa: E402,F401


def runtime_check():
    """Return a list of problems with the installed runtime packages (empty if fine).

    `onnxruntime` and `onnxruntime-gpu` both install the `onnxruntime` module;
    having both installed silently breaks one of them.
    """
    from importlib import metadata

    problems = []
    have = set()
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.version(dist)
            have.add(dist)
        except metadata.PackageNotFoundError:
            pass
    if len(have) == 2:
        problems.append(
            "both onnxruntime and onnxruntime-gpu are installed; keep one: "
            "`pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu`"
        )
    return problems
