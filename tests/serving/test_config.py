"""models.config parsing with the official protos, and TF Serving's version policies."""

import pytest

from kzoo.errors import KzooError
from kzoo.serving.config import aspired, parse_policy, read_config, tree_config

CONFIG = """
model_config_list {
  config { name: "a" base_path: "models/a" model_platform: "tensorflow" }
  config {
    name: "b" base_path: "/srv/b" model_platform: "tensorflow"
    model_version_policy { specific { versions: 3 versions: 1 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 3 }
  }
  config { name: "c" base_path: "c" model_version_policy { latest { num_versions: 2 } } }
  config { name: "d" base_path: "d" model_version_policy { all { } } }
}
"""


def test_read_config_policies_labels_and_paths(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(CONFIG)
    a, b, c, d = read_config(path)
    assert (a.name, a.base_path, a.policy, a.labels) == ("a", tmp_path / "models" / "a", ("latest", 1), ())
    assert str(b.base_path) == "/srv/b" and b.policy == ("specific", (1, 3))
    assert dict(b.labels) == {"stable": 1, "canary": 3}
    assert c.policy == ("latest", 2) and d.policy == ("all",)


@pytest.mark.parametrize("text,match", [
    ("model_config_list { config { name: 'a' base_path: 'x' } config { name: 'a' base_path: 'y' } }",
     "multiple times"),
    ("model_config_list { config { name: 'a' } }", "needs a name and a base_path"),
    ("model_config_list { confg { } }", "not a TF Serving ModelServerConfig"),
    ("model_config_list { config { name: 'a' base_path: 'x' model_platform: 'pytorch' } }",
     "unsupported platform pytorch"),
    ("", "no model_config_list"),
])
def test_bad_configs_are_one_line_errors(tmp_path, text, match):
    path = tmp_path / "models.config"
    path.write_text(text)
    with pytest.raises(KzooError, match=match):
        read_config(path)


def test_version_policies():
    assert aspired(("latest", 1), [3, 1, 2]) == [3]
    assert aspired(("latest", 2), [3, 1, 2]) == [2, 3]
    assert aspired(("all",), [2, 1]) == [1, 2]
    assert aspired(("specific", (1, 7)), [1, 2]) == [1]
    assert aspired(("latest", 1), []) == []
    assert parse_policy("latest:3") == ("latest", 3) and parse_policy("specific:2,1") == ("specific", (1, 2))
    for bad in ("latest:0", "newest", "specific:", "all:2"):
        with pytest.raises(KzooError, match="--version-policy"):
            parse_policy(bad)


def test_tree_config_skips_hidden_and_files(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / ".staging").mkdir()
    (tmp_path / "models.config").write_text("")
    assert [c.name for c in tree_config(tmp_path)] == ["m"]
    with pytest.raises(KzooError, match="is not a directory"):
        tree_config(tmp_path / "nope")


def test_per_model_memory_budget_from_serving_json(tmp_path):
    import json

    import pytest

    from kzoo.errors import KzooError
    from kzoo.serving.config import read_config, tree_config

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "serving.json").write_text(json.dumps({"max_request_memory_bytes": 64 << 20}))
    assert {c.name: c.max_request_memory_bytes for c in tree_config(tmp_path)} == {"a": 64 << 20, "b": None}
    (tmp_path / "models.config").write_text('model_config_list { config { name: "x" base_path: "a" } }')
    assert read_config(tmp_path / "models.config")[0].max_request_memory_bytes == 64 << 20
    for bad, match in (({"max_request_memory_bytes": 5}, "must be a whole number of bytes >= 1 MiB"),
                       ({"memory": 1}, "must be a JSON object with the keys max_request_memory_bytes")):
        (tmp_path / "a" / "serving.json").write_text(json.dumps(bad))
        with pytest.raises(KzooError, match=match):
            tree_config(tmp_path)
    (tmp_path / "a" / "serving.json").write_text("{")
    with pytest.raises(KzooError, match="serving.json is not valid JSON"):
        tree_config(tmp_path)
