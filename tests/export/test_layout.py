import json
import os
import subprocess
import sys

import pytest

from kzoo.errors import KzooError
from kzoo.export import layout


def test_versions_ignore_staging_and_non_numeric(tmp_path):
    for d in ("1", "3", ".staging-4-1-x", "notes", "007"):
        (tmp_path / "m" / d).mkdir(parents=True)
    assert layout.versions(tmp_path / "m") == [1, 3]
    assert layout.next_version([tmp_path / "m", tmp_path / "other"]) == 4
    assert layout.next_version([tmp_path / "none"]) == 1


def test_publish_never_overwrites_without_force(tmp_path):
    model = tmp_path / "m"
    staged = layout.staging_dir(model, 1)
    (staged / "a.txt").write_text("one")
    layout.publish(staged, model / "1")
    assert (model / "1" / "a.txt").read_text() == "one" and not staged.exists()
    staged = layout.staging_dir(model, 1)
    (staged / "a.txt").write_text("two")
    with pytest.raises(KzooError, match="--force"):
        layout.publish(staged, model / "1")
    assert (model / "1" / "a.txt").read_text() == "one"
    layout.publish(staged, model / "1", force=True)
    assert (model / "1" / "a.txt").read_text() == "two"
    assert [p.name for p in model.iterdir()] == ["1"]  # the replaced version is gone too


def test_stale_staging_of_a_dead_process_is_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".staging-1-{dead}-abc"
    live = tmp_path / f".staging-1-{os.getpid()}-abc"
    stale.mkdir(), live.mkdir()
    layout.remove_stale(tmp_path)
    assert not stale.exists() and live.exists()


def test_names_and_versions_are_checked(tmp_path):
    with pytest.raises(KzooError, match="lowercase"):
        layout.check_name("My Model")
    (tmp_path / "m" / "2").mkdir(parents=True)
    with pytest.raises(KzooError, match="already exists"):
        layout.check_version([tmp_path / "m"], 2, force=False)
    layout.check_version([tmp_path / "m"], 2, force=True)
    with pytest.raises(KzooError, match="between 1 and 9223372036854775807"):
        layout.check_version([tmp_path / "m"], 0, force=True)
    with pytest.raises(KzooError, match="between 1 and 9223372036854775807"):
        layout.check_version([tmp_path / "m"], 2**63, force=True)
    (tmp_path / "m" / str(2**63 - 1)).mkdir()  # TF Serving's largest: the next one cannot be
    with pytest.raises(KzooError, match="would be 9223372036854775808, over TF Serving's largest"):
        layout.next_version([tmp_path / "m"])


def _member(root, name, version, group):
    (root / name / str(version)).mkdir(parents=True)
    (root / name / str(version) / "kzoo.json").write_text(json.dumps({"group": group}))


def test_a_group_is_complete_only_when_every_member_holds_it(tmp_path):
    group = {"id": layout.new_group_id(), "members": ["vae_decoder", "vae_encoder"]}
    _member(tmp_path, "vae_encoder", 1, group)
    assert not layout.group_complete(tmp_path / "vae_encoder" / "1", {"group": group})
    _member(tmp_path, "vae_decoder", 1, {**group, "id": "another-export"})
    assert not layout.group_complete(tmp_path / "vae_encoder" / "1", {"group": group})
    (tmp_path / "vae_decoder" / "1" / "kzoo.json").write_text(json.dumps({"group": group}))
    assert layout.group_complete(tmp_path / "vae_encoder" / "1", {"group": group})
    assert layout.group_complete(tmp_path / "x" / "1", {})  # a single-endpoint version


def test_an_incomplete_group_of_a_dead_export_is_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    members = ["vae_decoder", "vae_encoder"]
    _member(tmp_path, "vae_encoder", 1, {"id": f"{dead}-abc", "members": members})  # killed mid-publish
    _member(tmp_path, "vae_encoder", 2, {"id": f"{os.getpid()}-def", "members": members})  # still writing
    for v, gid in ((3, f"{dead}-ghi"),):  # a complete group of a finished export stays
        _member(tmp_path, "vae_encoder", v, {"id": gid, "members": members})
        _member(tmp_path, "vae_decoder", v, {"id": gid, "members": members})
    layout.remove_incomplete_groups([tmp_path / m for m in members])
    assert layout.versions(tmp_path / "vae_encoder") == [2, 3]
    assert layout.versions(tmp_path / "vae_decoder") == [3]


@pytest.mark.parametrize("umask, folder, file", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_published_versions_take_the_umask(tmp_path, umask, folder, file):
    """mkdtemp makes the staging folder 0700: a published version would be unreadable to
    the server's user. It gets the umask's permissions, as a plain mkdir would."""
    from tests.helpers import modes

    old = os.umask(umask)
    try:
        staged = layout.staging_dir(tmp_path / "m", 1)
        (staged / "variables").mkdir()
        (staged / "variables" / "v.data").write_bytes(b"v")
        (staged / "kzoo.json").write_text("{}")
        layout.publish(staged, tmp_path / "m" / "1")
    finally:
        os.umask(old)
    got = modes(tmp_path / "m" / "1")
    assert got == {".": folder, "variables": folder, "variables/v.data": file, "kzoo.json": file}
