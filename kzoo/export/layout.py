"""The export tree: `export/<name>/<version>/`, versions that appear only when complete.

A version is built in a hidden staging directory beside its final place
(`export/<name>/.staging-<version>-<pid>-<random>`, same filesystem; TF Serving
and Triton ignore non-numeric entries) and renamed into place once it has passed
its parity checks. A killed export leaves only a staging directory, which the
next export into the same tree removes when its process is gone.

The endpoints of one multi-endpoint export (a VAE's encoder/decoder, CycleGAN's
two generators) form a *group*: each `kzoo.json` names the group's `id` (the
writer's pid and a random part) and its `members` (sibling model directories).
A server loads such a version only once every member holds it with the same
`id` (`group_complete`), so the last rename is the group's commit point; a group
that a killed export left incomplete is removed by the next export
(`remove_incomplete_groups`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

from kzoo.errors import KzooError
from kzoo.io import apply_umask, pid_alive, remove_stale_dirs

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
# The largest version a server reads from a version folder's name: TF Serving parses it
# with strings::safe_strto64 into an int64_t and skips names that do not parse
# (tensorflow/serving, tensorflow_serving/sources/storage_path/
# file_system_storage_path_source.cc, ParseVersionNumber); a larger folder is never served.
MAX_VERSION = 2**63 - 1
STAGING = ".staging-"
# `.staging-<version>-<pid>-<random>` (or `.staging-old<version>-<pid>-replaced`); a name
# without a pid is removed at once.
STAGING_NAME = re.compile(r"^\.staging-(?:[^-]*-(?P<pid>\d+)-.*|.*)$")


def check_name(name):
    if not NAME_RE.match(name or ""):
        raise KzooError(f"export name {name!r} must be lowercase letters, digits, '_', '-' or '.' "
                        "(it becomes a TF Serving / Triton model name)")
    return name


def versions(model_dir):
    """Complete version numbers under `model_dir`, ascending."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir()
                  if p.is_dir() and p.name.isdigit() and not p.name.startswith("0"))


def next_version(model_dirs):
    """One more than the highest version in any of `model_dirs` (endpoints stay in step)."""
    version = max((v for d in model_dirs for v in versions(d)), default=0) + 1
    if version > MAX_VERSION:
        raise KzooError(f"the next version of {', '.join(map(str, model_dirs))} would be {version}, "
                        f"over TF Serving's largest, {MAX_VERSION} (int64); give --version")
    return version


def staging_dir(model_dir, version):
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    remove_stale(model_dir)
    return Path(tempfile.mkdtemp(prefix=f"{STAGING}{version}-{os.getpid()}-", dir=model_dir))


def remove_stale(model_dir):
    """Delete staging directories whose export process no longer runs."""
    remove_stale_dirs(model_dir, STAGING_NAME)


def publish(staged, final, *, force=False):
    """Rename the complete `staged` directory to `final` (replacing it only with `force`)."""
    staged, final = Path(staged), Path(final)
    apply_umask(staged)  # mkdtemp made it 0700: a shared export is readable as the umask says
    _fsync_tree(staged)
    old = None
    if final.exists():
        if not force:
            raise KzooError(f"{final} already exists; pass --force to replace it "
                            "(or leave out --version for the next free one)")
        old = final.with_name(f"{STAGING}old{final.name}-{os.getpid()}-replaced")
        os.rename(final, old)
    os.rename(staged, final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(root):
    for dirpath, _, files in os.walk(root):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(dirpath)


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_version(model_dirs, version, force):
    """Refuse an explicit `version` that exists unless `force`."""
    if not 1 <= version <= MAX_VERSION:
        raise KzooError(f"--version must be between 1 and {MAX_VERSION} (TF Serving reads a "
                        f"version folder's name as an int64), got {version}")
    taken = [str(Path(d) / str(version)) for d in model_dirs if (Path(d) / str(version)).exists()]
    if taken and not force:
        raise KzooError(f"{', '.join(taken)} already exists; pass --force to replace it "
                        "(or leave out --version for the next free one)")


def new_group_id():
    """The id of one export call's group: `<pid>-<random hex>`."""
    return f"{os.getpid()}-{uuid.uuid4().hex}"


def group_complete(path, info):
    """Whether version directory `path` (whose `kzoo.json` is `info`) may be loaded.

    A version without a `group` is complete once its `kzoo.json` exists; one of a
    group needs every member directory to hold the same version with the same
    group `id`."""
    group = info.get("group")
    if not group:
        return True
    path = Path(path)
    for member in group.get("members", ()):
        try:
            other = json.loads((path.parent.parent / member / path.name / "kzoo.json").read_text())
        except (OSError, ValueError):
            return False
        if not isinstance(other, dict) or (other.get("group") or {}).get("id") != group.get("id"):
            return False
    return True


def remove_incomplete_groups(model_dirs):
    """Delete versions of `model_dirs` whose group is incomplete and whose writer is gone."""
    for model_dir in model_dirs:
        for v in versions(model_dir):
            path = Path(model_dir) / str(v)
            try:
                info = json.loads((path / "kzoo.json").read_text())
            except (OSError, ValueError):
                continue
            group = info.get("group") if isinstance(info, dict) else None
            if not isinstance(group, dict) or group_complete(path, info):
                continue
            pid = str(group.get("id", "")).split("-")[0]
            if not pid.isdigit() or not pid_alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)
