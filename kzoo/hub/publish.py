"""`kzoo hub publish RUN_DIR --name NAME [--to DIR|hf://owner/repo]`.

To a folder: the preset is packed into `DIR/<name>-<version>.tar.gz` (reproducible
bytes) and its catalog entry (sha256, size, metrics, ...) is returned, ready for
`catalog.add_entry` or an `https://.../<archive>#sha256=<hex>` URL. To hf://: the
preset folder is uploaded with `huggingface_hub` (its README.md is the model card).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from kzoo.errors import KzooError
from kzoo.hub import archive, hf
from kzoo.hub.preset import DEFAULT_LICENSE, build_preset, sha256_file


def entry_for(meta: dict, **location) -> dict:
    """The catalog entry of a preset whose metadata is `meta`."""
    return {"name": meta["name"], "version": meta["version"], "task": meta["task"],
            "model_class": meta["model_class"], "recipe": meta["recipe"],
            "dataset": meta["dataset"], "image_size": meta["image_size"],
            "metrics": meta["metrics"], "license": meta["license"], **location}


def publish(run_dir, *, name, to="presets", version="1", license=DEFAULT_LICENSE,
            overwrite=False) -> dict:
    """Build the preset of `run_dir` and publish it to a folder or hf://; returns its entry."""
    import json

    with tempfile.TemporaryDirectory(prefix="kzoo-publish-") as tmp:
        folder = build_preset(run_dir, Path(tmp) / name, name=name, version=version,
                              license=license)
        meta = json.loads((folder / "metadata.json").read_text())
        if str(to).startswith("hf://"):
            where = hf.upload(folder, str(to), message=f"kzoo preset {name} {version}")
            return entry_for(meta, url=where)
        dest = Path(to) / f"{name}-{version}.tar.gz"
        if dest.exists() and not overwrite:
            raise KzooError(f"{dest} already exists (pass --force to replace it)")
        archive.pack(folder, dest)
    return entry_for(meta, path=str(dest.resolve()), sha256=sha256_file(dest),
                     size=dest.stat().st_size)


def copy_to(folder, dest):
    """Copy a (cached) preset folder to `dest` (for `kzoo hub download --to`).

    The free space is checked first (`kzoo.io.check_free_space`); the copy is made in a
    temporary folder beside `dest` and renamed into place (`kzoo.io.publish_dir`), so a
    full disk or a kill leaves no half copy, and a failure is one `KzooError` line
    naming the file (not shutil.copytree's list of every failed file).
    """
    from kzoo.io import check_free_space, output_error, publish_dir, temp_dir

    folder, dest = Path(folder), Path(dest)
    if dest.exists():
        raise KzooError(f"{dest} already exists")
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    check_free_space(dest, sum(p.stat().st_size for p in files))
    tmp = temp_dir(dest.parent, dest.name)
    try:
        for src in files:
            target = tmp / src.relative_to(folder)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, target)
            except OSError as e:
                raise output_error(dest / src.relative_to(folder), e) from None
        publish_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
