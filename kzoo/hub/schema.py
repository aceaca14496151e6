"""Checks of the hub's JSON (a preset's metadata.json, catalog entries) before any use.

A preset may come from anywhere, so its metadata.json is hostile until checked:
`read_json` bounds its size and parses it without letting deep nesting or huge
numbers escape as `RecursionError` / `ValueError`; `check_tree` bounds nesting
depth, container sizes and string lengths everywhere in the document; and
`check_metadata` / `check_catalog_entry` check the type and range of every field
kzoo reads. Each problem is one `KzooError` line naming the file and the field:

    /tmp/p/metadata.json: field 'files'['model.keras']['size'] must be an integer
    in [0, 9007199254740992], got str '12'

A preset's `dataset` is a name (`builtin:digits`, `tfds:mnist`), never a path:
`is_dataset_name` tells which values may be handed to `kzoo.data`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from kzoo.errors import KzooError

MAX_METADATA_BYTES = 1 << 20  # a real preset's metadata.json is a few KB
MAX_DEPTH = 16                # nesting of lists and objects
MAX_ITEMS = 4096              # entries of one list or object
MAX_STRING = 8192             # characters of one string (or key)
MAX_FILES = 64                # files one preset may list
MAX_FILE_BYTES = 1 << 53      # a size JSON numbers hold exactly; the archive budget is lower

_SHA256 = re.compile(r"[0-9a-f]{64}")
_DATASET_NAME = re.compile(r"(builtin|tfds):[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,199}")


def read_json(path, *, max_bytes: int = MAX_METADATA_BYTES):
    """Parse the JSON file `path` (at most `max_bytes`) and `check_tree` it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise KzooError(f"{path}: {size:,} bytes, more than the {max_bytes:,} a kzoo JSON "
                            "file may have")
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise KzooError(f"{path}: cannot be read ({e.strerror or e})") from None
    return parse_json(data, path, max_bytes=max_bytes)


def parse_json(data: bytes, where, *, max_bytes: int = MAX_METADATA_BYTES):
    """Parse and `check_tree` the JSON document `data` (from `where`, for messages)."""
    if len(data) > max_bytes:
        raise KzooError(f"{where}: more than the {max_bytes:,} bytes a kzoo JSON file may have")
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise KzooError(f"{where} is not valid JSON: not UTF-8 ({e.reason})") from None
    except RecursionError:
        raise KzooError(f"{where} is not valid kzoo JSON: nested deeper than {MAX_DEPTH} "
                        "levels") from None
    except ValueError as e:  # JSONDecodeError, or an integer of thousands of digits
        raise KzooError(f"{where} is not valid JSON: {e}") from None
    check_tree(obj, where)
    return obj


def check_tree(obj, where):
    """Bound the nesting depth, container sizes and string lengths of a JSON value."""
    stack = [(obj, 0, "")]
    while stack:
        value, depth, at = stack.pop()
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                raise KzooError(f"{where}: the string at {at or 'top level'} has {len(value):,} "
                                f"characters (at most {MAX_STRING:,})")
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth >= MAX_DEPTH:
            raise KzooError(f"{where}: nested deeper than {MAX_DEPTH} levels (at {at})")
        if len(value) > MAX_ITEMS:
            raise KzooError(f"{where}: {at or 'the top level'} has {len(value):,} entries "
                            f"(at most {MAX_ITEMS:,})")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            if isinstance(key, str) and len(key) > MAX_STRING:
                raise KzooError(f"{where}: a key at {at or 'top level'} has {len(key):,} "
                                f"characters (at most {MAX_STRING:,})")
            stack.append((child, depth + 1, f"{at}[{key!r}]" if at else repr(key)))


# --- field checks: each returns None (fine) or what the value should have been -----

def _describe(value) -> str:
    if isinstance(value, (dict, list)):
        return f"{'an object' if isinstance(value, dict) else 'a list'} of {len(value)} entries"
    shown = json.dumps(value)
    kind = "null" if value is None else type(value).__name__
    return f"{kind} {shown[:40] + '...' if len(shown) > 40 else shown}"


def text(max_len: int = 256, pattern: re.Pattern | None = None):
    def check(v):
        if not isinstance(v, str) or len(v) > max_len or (pattern and not pattern.fullmatch(v)):
            return f"a string of at most {max_len} characters" + (
                f" matching {pattern.pattern}" if pattern else "")
    return check


def integer(lo: int, hi: int):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            return f"an integer in [{lo}, {hi}]"
    return check


def number(lo: float = 0.0):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= lo:
            return f"a number >= {lo:g}"
    return check


def mapping(v):
    if not isinstance(v, dict):
        return "an object"


def optional(check):
    def opt(v):
        if v is not None:
            return check(v)
    return opt


def either(*checks):
    def check(v):
        reasons = [c(v) for c in checks]
        if all(reasons):
            return " or ".join(reasons)
    return check


def list_of(check, max_len: int):
    def check_list(v):
        if not isinstance(v, list) or len(v) > max_len:
            return f"a list of at most {max_len} entries"
        for item in v:
            if check(item):
                return f"a list whose entries are each {check(item)}"
    return check_list


def relative_name(v):
    """A file name inside a preset: relative, '/'-separated, no '..', no empty parts."""
    if not isinstance(v, str) or not 0 < len(v) <= 255 or "\\" in v or "\0" in v \
            or v.startswith("/") or any(p in ("", ".", "..") for p in v.split("/")):
        return "a relative file name inside the preset (no '/', '..' or '\\' tricks)"


def _file_info(v):
    if not isinstance(v, dict):
        return "an object with sha256 and size"
    for key, check in (("sha256", text(64, _SHA256)), ("size", integer(0, MAX_FILE_BYTES))):
        if key not in v:
            return f"an object with {key!r}"
        if check(v[key]):
            return f"an object whose {key!r} is {check(v[key])}"


def file_table(v):
    if not isinstance(v, dict) or not 0 < len(v) <= MAX_FILES:
        return f"an object of 1 to {MAX_FILES} files"
    for name, info in v.items():
        problem = relative_name(name) or _file_info(info)
        if problem:
            return f"an object of files: {name[:80]!r} should be {problem}"


def _tensor_spec(v):
    if not isinstance(v, dict):
        return "an object"
    checks = {"name": text(128), "dtype": text(32),
              "shape": list_of(optional(integer(0, 1 << 31)), 8)}
    for key, check in checks.items():
        if key in v and check(v[key]):
            return f"an object whose {key!r} is {check(v[key])}"


def _card(v):
    """A `kzoo.card.ModelCard` as `to_dict()` writes it (parsed and validated)."""
    from kzoo.card import ModelCard

    if not isinstance(v, dict):
        return "a model card object"
    try:
        ModelCard.from_dict(v)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        return f"a valid model card ({type(e).__name__}: {str(e)[:80]})"


_NAME = text(128)
_VERSION = either(text(32), integer(0, 1 << 31))
# Every metadata.json field that kzoo reads, with its type and range.
METADATA_FIELDS = {
    "format": (True, text(64)),
    "format_version": (False, integer(0, 1 << 31)),
    "files": (True, file_table),
    "name": (False, _NAME),
    "version": (False, _VERSION),
    "license": (False, optional(text(128))),
    "task": (False, optional(_NAME)),
    "model_class": (False, optional(_NAME)),
    "inference_class": (False, optional(_NAME)),
    "recipe": (False, optional(_NAME)),
    "dataset": (False, optional(text(256))),
    "image_size": (False, optional(integer(1, 1 << 16))),
    "channels": (False, optional(integer(1, 4))),
    "num_classes": (False, optional(integer(1, 1 << 20))),
    "inputs": (False, list_of(_tensor_spec, 64)),
    "outputs": (False, list_of(_tensor_spec, 64)),
    "value_ranges": (False, mapping),
    "card": (False, _card),
    "metrics": (False, optional(mapping)),
    "untrained_metrics": (False, optional(mapping)),
    "train_seconds": (False, optional(number())),
    "config": (False, mapping),
    "changed_from_paper": (False, mapping),
    "command": (False, optional(text(4096))),
    "kzoo_version": (False, optional(text(64))),
    "keras_version": (False, optional(text(64))),
    "tensorflow_version": (False, optional(text(64))),
    "published_with": (False, mapping),
}
# Every field of a catalog entry (kzoo/hub/catalog.json, KZOO_CATALOG).
CATALOG_FIELDS = {
    "name": (True, text(64, re.compile(r"[a-z0-9][a-z0-9._-]{0,63}"))),
    "version": (True, either(text(32, re.compile(r"[A-Za-z0-9._-]+")), integer(0, 1 << 31))),
    "task": (True, _NAME),
    "sha256": (False, text(64, _SHA256)),  # required unless "upstream" (check_catalog_entry)
    "size": (False, integer(1, MAX_FILE_BYTES)),
    "upstream": (False, mapping),
    "path": (False, text(4096)),
    "url": (False, text(4096)),
    "model_class": (False, optional(_NAME)),
    "recipe": (False, optional(_NAME)),
    "dataset": (False, optional(text(256))),
    "image_size": (False, optional(integer(1, 1 << 16))),
    "metrics": (False, optional(mapping)),
    "license": (False, optional(text(128))),
}


def check_fields(obj, fields: dict, where, what: str):
    """Check `obj` (a JSON object) against `fields`: {key: (required, check)}."""
    if not isinstance(obj, dict):
        raise KzooError(f"{where}: {what} must be a JSON object, got {_describe(obj)}")
    for key, (required, check) in fields.items():
        if key not in obj:
            if required:
                raise KzooError(f"{where}: {what} has no {key!r} field")
            continue
        problem = check(obj[key])
        if problem:
            raise KzooError(f"{where}: field {key!r} must be {problem}, got {_describe(obj[key])}")
    return obj


def check_metadata(meta, where) -> dict:
    """Check a preset's parsed metadata.json (see `METADATA_FIELDS`); returns it."""
    check_tree(meta, where)
    return check_fields(meta, METADATA_FIELDS, where, "preset metadata")


def check_catalog_entry(entry, where) -> dict:
    """Check one catalog entry (see `CATALOG_FIELDS`); returns it."""
    check_tree(entry, where)
    check_fields(entry, CATALOG_FIELDS, where, "a catalog entry")
    for key in ("sha256", "size"):  # an upstream entry's source is pinned on first download
        if key not in entry and "upstream" not in entry:
            raise KzooError(f"{where}: a catalog entry has no {key!r} field")
    return entry


def is_dataset_name(value) -> bool:
    """Whether a preset's `dataset` value names data (`builtin:NAME`, `tfds:NAME[...]`)
    that `kzoo.data` may load. Anything else -- a folder path above all -- is only a
    description: no kzoo code scans it.

    Example:
    >>> is_dataset_name("builtin:digits"), is_dataset_name("/usr")
    (True, False)
    """
    return isinstance(value, str) and bool(_DATASET_NAME.fullmatch(value)) \
        and ".." not in value.split("/")
