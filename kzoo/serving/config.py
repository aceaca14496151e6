"""Which models and versions `kzoo serve` serves: TF Serving's `models.config` and version policies.

A `ModelConfig` is one entry of TF Serving's `ModelServerConfig.model_config_list`
(name, base path, `model_version_policy`, `version_labels`). `read_config` parses
the text-proto file with the official `tensorflow_serving.config.model_server_config_pb2`;
`tree_config` is what `kzoo serve EXPORT` serves without one: every model directory of
the tree with TF Serving's default policy, the latest version.

kzoo's own per-model settings, which TF Serving's `ModelConfig` has no field for, are
read from `serving.json` in the model's base path (beside its version directories):
`{"max_request_memory_bytes": N}` bounds the estimated memory of one request to that
model (`kzoo.memory`), overriding `kzoo serve --max-request-memory-bytes`.

`aspired(policy, versions)` is the version policy of TF Serving's
`FileSystemStoragePathSource`: `latest` (the N highest, default N=1), `all`, or
`specific` (the listed versions that exist).

Example:
>>> aspired(("latest", 2), [1, 2, 3]), aspired(("specific", (1, 7)), [1, 2, 3])
([2, 3], [1])

References:
    TF Serving configuration, https://www.tensorflow.org/tfx/serving/serving_config
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from kzoo.errors import KzooError

LATEST = ("latest", 1)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One served model.

    Args:
        name: str. The model name clients send.
        base_path: Path. Directory holding `<version>/` subdirectories.
        policy: tuple. `("latest", n)`, `("all",)` or `("specific", (v, ...))`.
        labels: tuple of (label, version) pairs.
        max_request_memory_bytes: int or None. The model's request memory budget
            (`serving.json`); None: the server's.
    """

    name: str
    base_path: Path
    policy: tuple = LATEST
    labels: tuple = ()
    max_request_memory_bytes: int | None = None


SETTINGS_FILE = "serving.json"
SETTINGS = {"max_request_memory_bytes"}


def model_settings(base_path):
    """The kzoo settings of a model directory (`serving.json`, see module docstring) as
    ModelConfig fields; {} when there is none. A bad file is one `KzooError` line."""
    from kzoo.memory import check_budget

    path = Path(base_path) / SETTINGS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise KzooError(f"cannot read {path}: {err.strerror}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise KzooError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict) or set(data) - SETTINGS:
        raise KzooError(f"{path} must be a JSON object with the keys {', '.join(sorted(SETTINGS))}; got "
                        f"{sorted(data) if isinstance(data, dict) else type(data).__name__}")
    if "max_request_memory_bytes" in data:
        data["max_request_memory_bytes"] = check_budget(data["max_request_memory_bytes"],
                                                        f"{path}: max_request_memory_bytes")
    return data


def aspired(policy, versions):
    """The versions of `versions` (ints) that `policy` wants loaded, ascending."""
    versions = sorted(versions)
    if policy[0] == "all":
        return versions
    if policy[0] == "specific":
        return [v for v in versions if v in set(policy[1])]
    return versions[-policy[1]:] if policy[1] > 0 else []


def _policy(proto):
    which = proto.WhichOneof("policy_choice")
    if which == "all":
        return ("all",)
    if which == "specific":
        if not proto.specific.versions:
            raise KzooError("model_version_policy specific { } lists no versions")
        return ("specific", tuple(sorted(proto.specific.versions)))
    n = proto.latest.num_versions if which == "latest" else 1
    return ("latest", n or 1)


def read_config(path):
    """`models.config` (TF Serving `ModelServerConfig` text proto) -> [ModelConfig].

    A relative `base_path` is taken relative to the file's directory (TF Serving
    requires absolute paths unless given `--model_config_list_root_dir`).
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise KzooError(f"cannot read the model config {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise KzooError(f"{path} is not a TF Serving ModelServerConfig: not a text file") from None
    try:
        proto = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as err:
        raise KzooError(f"{path} is not a TF Serving ModelServerConfig: {err}") from None
    if proto.WhichOneof("config") != "model_config_list":
        raise KzooError(f"{path} has no model_config_list (custom_model_config is not supported)")
    models, seen = [], set()
    for c in proto.model_config_list.config:
        if not c.name or not c.base_path:
            raise KzooError(f"{path}: every config needs a name and a base_path")
        if c.name in seen:
            raise KzooError(f"{path}: Illegal to list model {c.name} multiple times in config list")
        seen.add(c.name)
        if c.model_platform not in ("", "tensorflow", "onnx"):
            raise KzooError(f"{path}: model {c.name} requests unsupported platform {c.model_platform}")
        base = Path(c.base_path)
        base = base if base.is_absolute() else path.parent / base
        models.append(ModelConfig(c.name, base, _policy(c.model_version_policy),
                                  tuple(sorted(c.version_labels.items())), **model_settings(base)))
    return models


def tree_config(root):
    """Every model directory of an export tree, latest version (TF Serving's default policy)."""
    root = Path(root)
    if not root.is_dir():
        raise KzooError(f"{root} is not a directory; give an export tree (kzoo export writes export/)")
    return [ModelConfig(p.name, p, **model_settings(p)) for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith(".")]


def parse_policy(text):
    """`--version-policy` text (`latest`, `latest:N`, `all`, `specific:1,3`) -> policy tuple."""
    kind, _, arg = text.partition(":")
    try:
        if kind == "all" and not arg:
            return ("all",)
        if kind == "latest":
            n = int(arg or 1)
            if n >= 1:
                return ("latest", n)
        if kind == "specific" and arg:
            return ("specific", tuple(sorted(int(v) for v in arg.split(","))))
    except ValueError:
        pass
    raise KzooError(f"--version-policy must be latest[:N], all or specific:V1,V2,...; got {text!r}")
