import json

import pytest

from kzoo.errors import KzooError
from kzoo.hub import schema
from kzoo.hub.preset import read_metadata

SHA = "ab" * 32


def _meta(**changes):
    meta = {"format": "kzoo-preset", "format_version": 1, "name": "p", "version": "1",
            "task": "t", "dataset": "builtin:digits", "image_size": 8, "channels": 1,
            "inputs": [{"name": "z", "shape": [None, 4], "dtype": "float32", "range": None}],
            "outputs": [], "metrics": {"fid": 1.5}, "config": {}, "train_seconds": 2.0,
            "files": {"model.keras": {"sha256": SHA, "size": 10},
                      "inference.keras": {"sha256": SHA, "size": 10}}}
    for key, value in changes.items():
        if value is _DROP:
            meta.pop(key)
        else:
            meta[key] = value
    return meta


_DROP = object()


def _deep(n):
    return json.loads("[" * n + "]" * n)


def test_good_metadata_passes_and_shipped_style_values_are_accepted():
    meta = _meta(version=2, license=None, metrics=None, num_classes=10)
    assert schema.check_metadata(meta, "m.json") is meta


@pytest.mark.parametrize("changes, message", [
    ({"files": _DROP}, "has no 'files' field"),
    ({"format": 7}, "field 'format' must be a string"),
    ({"format_version": "1"}, "field 'format_version' must be an integer"),
    ({"format_version": True}, "field 'format_version' must be an integer"),
    ({"files": []}, "field 'files' must be an object of 1 to 64 files"),
    ({"files": {}}, "an object of 1 to 64 files"),
    ({"files": {f"f{i}": {"sha256": SHA, "size": 1} for i in range(65)}}, "1 to 64 files"),
    ({"files": {"model.keras": "abc"}}, "'model.keras' should be an object with sha256"),
    ({"files": {"model.keras": {"size": 1}}}, "an object with 'sha256'"),
    ({"files": {"model.keras": {"sha256": "XYZ", "size": 1}}}, "'sha256' is a string"),
    ({"files": {"model.keras": {"sha256": SHA, "size": "12"}}}, "'size' is an integer"),
    ({"files": {"model.keras": {"sha256": SHA, "size": -1}}}, "'size' is an integer"),
    ({"files": {"../x": {"sha256": SHA, "size": 1}}}, "relative file name"),
    ({"files": {"/etc/passwd": {"sha256": SHA, "size": 1}}}, "relative file name"),
    ({"files": {"a//b": {"sha256": SHA, "size": 1}}}, "relative file name"),
    ({"image_size": "32"}, "'image_size' must be an integer in"),
    ({"image_size": 0}, "'image_size' must be an integer in"),
    ({"channels": 7}, "'channels' must be an integer in \\[1, 4\\]"),
    ({"name": ["a"]}, "'name' must be a string"),
    ({"name": "n" * 1000}, "'name' must be a string of at most 128"),
    ({"dataset": {"path": "/usr"}}, "'dataset' must be a string"),
    ({"inputs": {"z": 1}}, "'inputs' must be a list"),
    ({"inputs": [{"shape": "none"}]}, "'shape' is a list"),
    ({"metrics": [1, 2]}, "'metrics' must be an object"),
    ({"train_seconds": float("nan")}, "'train_seconds' must be a number"),
    ({"config": _deep(40)}, "nested deeper than 16 levels"),
    ({"config": {"x": "y" * 100_000}}, "has 100,000 characters"),
    ({"config": {"x": list(range(5000))}}, "has 5,000 entries"),
], ids=lambda v: None if isinstance(v, str) else str(list(v))[:40])
def test_hostile_fields_are_one_error(changes, message):
    with pytest.raises(KzooError, match=message):
        schema.check_metadata(_meta(**changes), "m.json")


def test_read_json_bounds_size_nesting_and_numbers(tmp_path):
    path = tmp_path / "metadata.json"
    for data, message in ((b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
                          (b'{"a": ' + b"1" * 5000 + b"}", "not valid JSON"),
                          (b'{"a": "\xff"}', "not UTF-8"),
                          (b"{", "not valid JSON"),
                          (b" " * (schema.MAX_METADATA_BYTES + 1), "more than the 1,048,576")):
        path.write_bytes(data)
        with pytest.raises(KzooError, match=message):
            schema.read_json(path)
    with pytest.raises(KzooError, match="cannot be read"):
        schema.read_json(tmp_path / "missing.json")


def test_read_metadata_uses_the_checks(tmp_path):
    (tmp_path / "metadata.json").write_text(json.dumps(_meta(format_version="2")))
    with pytest.raises(KzooError, match="'format_version' must be an integer"):
        read_metadata(tmp_path)
    (tmp_path / "metadata.json").write_text("[" * 50_000)
    with pytest.raises(KzooError, match="nested deeper"):
        read_metadata(tmp_path)


def test_catalog_entries():
    good = {"name": "cgan-digits", "version": "2", "task": "t", "sha256": SHA, "size": 5}
    assert schema.check_catalog_entry(good, "c") is good
    for bad, message in (({**good, "size": "5"}, "'size' must be an integer"),
                         ({**good, "name": "../x"}, "'name' must be a string"),
                         ({**good, "version": "1/../../x"}, "'version' must be a string"),
                         ({k: v for k, v in good.items() if k != "sha256"}, "no 'sha256'"),
                         ("entry", "must be a JSON object, got str")):
        with pytest.raises(KzooError, match=message):
            schema.check_catalog_entry(bad, "c")


@pytest.mark.parametrize("value, ok", [
    ("builtin:digits", True), ("builtin:photos/gray2color", True), ("tfds:mnist:train", True),
    ("/usr", False), ("~/data", False), ("data/imgs", False), ("builtin:../..", False),
    ("tfds:", False), (None, False), (["builtin:digits"], False),
])
def test_dataset_is_a_name_never_a_path(value, ok):
    assert schema.is_dataset_name(value) is ok
