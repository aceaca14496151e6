"""`kzoo.hub.convert.diffusers_folder`: which folders are diffusers model folders, the files
that identify one, and the options a folder refuses (the conversions themselves are proven in
test_diffusers.py and test_autoencoder_kl.py)."""

import json
from pathlib import Path

import pytest

from kzoo.errors import KzooError
from kzoo.hub.convert import Source
from kzoo.hub.convert import diffusers_folder as df


def _folder(root: Path, *, pipeline=False, class_name="UNet2DModel", weights=True, scheduler=True):
    model = root / "unet" if pipeline else root
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"_class_name": class_name}))
    if weights:
        (model / df.WEIGHTS[0]).write_bytes(b"not read here")
    if pipeline:
        (root / "model_index.json").write_text("{}")
    if scheduler:
        where = root / ("scheduler" if pipeline else "")
        where.mkdir(exist_ok=True)
        (where / "scheduler_config.json").write_text("{}")
    return root


def test_model_folders_and_pipelines_are_recognised_and_run_dirs_are_not(tmp_path):
    assert df.is_diffusers_folder(_folder(tmp_path / "model"))
    assert df.is_diffusers_folder(_folder(tmp_path / "pipeline", pipeline=True))
    assert df.is_diffusers_folder(_folder(tmp_path / "config_only", weights=False))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"recipe": "dcgan"}))
    assert not df.is_diffusers_folder(run)  # a kzoo run directory also has a config.json
    preset = _folder(tmp_path / "preset")
    (preset / "metadata.json").write_text("{}")
    assert not df.is_diffusers_folder(preset)
    assert not df.is_diffusers_folder(tmp_path / "missing")
    assert not df.is_diffusers_folder(preset / "config.json")  # a file


def test_the_files_that_identify_a_folder(tmp_path):
    root = _folder(tmp_path / "pipeline", pipeline=True)
    assert [p.relative_to(root).as_posix() for p in df.files(Source(root))] == [
        f"unet/{df.WEIGHTS[0]}", "unet/config.json", "scheduler/scheduler_config.json"]
    bare = _folder(tmp_path / "bare", weights=False, scheduler=False)
    assert df.files(Source(bare)) == [bare / "config.json"]
    with pytest.raises(KzooError, match="a diffusers model folder holds diffusion_pytorch_model"):
        df.read(bare)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"reverse": Path("other.pth")}, "--reverse is for CycleGAN generator files"),
    ({"mode": "authors"}, "--mode authors is for junyanz generators"),
    ({"arch": "resnet_9blocks"}, "--arch resnet_9blocks is for .pth files"),
])
def test_options_for_other_formats_are_refused_in_one_line(tmp_path, kwargs, message):
    source = Source(_folder(tmp_path / "model"), **kwargs)
    assert df.accepts(source)
    with pytest.raises(KzooError, match=message):
        df.models(source)


def test_each_model_class_has_its_converter():
    assert set(df.CLASSES) == {"UNet2DModel", "AutoencoderKL"} and df.DEFAULT_CLASS in df.CLASSES
    assert set(df.CLASSES) < set(df.ARCHS)
