import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.hub import archive, loader
from kzoo.hub.preset import sha256_file


@pytest.fixture
def tiny_archive(tiny_preset_dir, tmp_path):
    return archive.pack(tiny_preset_dir, tmp_path / "tiny-cgan.tar.gz")


def _catalog(tmp_path, monkeypatch, **location):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"presets": [{"name": "tiny-cgan", "version": "1", "task": "t",
                                             "size": 1, **location}]}))
    monkeypatch.setenv("KZOO_CATALOG", str(path))


def test_local_folder_archive_and_file_url(tiny_preset_dir, tiny_archive, tmp_path):
    assert loader.fetch(str(tiny_preset_dir)) == tiny_preset_dir
    cached = loader.fetch(str(tiny_archive))
    assert cached.parent.name == "sha256" and (cached / "model.keras").is_file()
    zipped = archive.pack(tiny_preset_dir, tmp_path / "tiny.zip")
    assert sha256_file(loader.fetch(str(zipped)) / "model.keras") == sha256_file(cached / "model.keras")
    digest = sha256_file(tiny_archive)
    assert loader.fetch(f"file://{tiny_archive}#sha256={digest}") == cached
    with pytest.raises(KzooError, match="does not match"):
        loader.fetch(f"file://{tiny_archive}#sha256={'0' * 64}")
    with pytest.raises(KzooError, match="no such preset"):
        loader.fetch(str(tmp_path / "missing.tar.gz"))


def test_https_url_via_local_server(http_server, tiny_archive, kzoo_home, monkeypatch, capsys):
    root, base = http_server
    shutil.copy(tiny_archive, root / "tiny.tar.gz")
    digest = sha256_file(tiny_archive)
    url = f"{base}/tiny.tar.gz#sha256={digest}"
    with pytest.raises(KzooError, match="refusing plain http"):
        loader.fetch(url)  # http is never allowed by default
    with pytest.raises(KzooError, match="add #sha256"):
        loader.fetch(f"{base}/tiny.tar.gz", allow_http=True)
    folder = loader.fetch(url, allow_http=True)
    assert "downloading" in capsys.readouterr().err
    assert not list((kzoo_home / "downloads").iterdir())  # the archive is not kept
    monkeypatch.setenv("KZOO_OFFLINE", "1")
    assert loader.fetch(url, allow_http=True) == folder  # from the cache


def test_catalog_name_download_cache_and_offline(http_server, tiny_archive, tmp_path, monkeypatch):
    root, base = http_server
    shutil.copy(tiny_archive, root / "tiny.tar.gz")
    _catalog(tmp_path, monkeypatch, url=f"{base}/tiny.tar.gz", sha256=sha256_file(tiny_archive),
             size=tiny_archive.stat().st_size)
    monkeypatch.setenv("KZOO_ALLOW_HTTP_LOCALHOST", "1")
    monkeypatch.setenv("KZOO_OFFLINE", "1")
    with pytest.raises(KzooError, match=r"not in the cache.*kzoo hub download tiny-cgan@1"):
        loader.fetch("tiny-cgan")
    monkeypatch.delenv("KZOO_OFFLINE")
    folder = loader.fetch("tiny-cgan@1")
    (root / "tiny.tar.gz").unlink()  # the server is no longer needed
    monkeypatch.setenv("KZOO_OFFLINE", "1")
    gen = loader.load("tiny-cgan")
    assert gen.output_shape == (None, 8, 8, 1)
    assert loader.metadata("tiny-cgan")["name"] == "tiny-cgan" and folder.is_dir()


def test_catalog_sha_mismatch_leaves_no_cache_entry(http_server, tiny_archive, tmp_path, monkeypatch,
                                                    kzoo_home):
    root, base = http_server
    shutil.copy(tiny_archive, root / "tiny.tar.gz")
    _catalog(tmp_path, monkeypatch, url=f"{base}/tiny.tar.gz", sha256="1" * 64,
             size=tiny_archive.stat().st_size)
    with pytest.raises(KzooError, match="does not match"):
        loader.fetch("tiny-cgan", allow_http=True, progress=False)
    leftovers = [p for p in (kzoo_home / "presets").rglob("*") if p.is_file()]
    assert leftovers == [] and not list((kzoo_home / "downloads").iterdir())


def test_truncated_catalog_download_leaves_no_cache_entry(http_server, tiny_archive, tmp_path,
                                                          monkeypatch, kzoo_home):
    root, base = http_server
    shutil.copy(tiny_archive, root / "tiny.tar.gz")
    _catalog(tmp_path, monkeypatch, url=f"{base}/truncated/tiny.tar.gz", sha256=sha256_file(tiny_archive))
    with pytest.raises(KzooError, match="truncated|download failed"):
        loader.fetch("tiny-cgan", allow_http=True, progress=False)
    assert [p for p in kzoo_home.rglob("*") if p.is_file() and p.suffix != ".lock"] == []


def test_corrupted_cache_entry_is_refused_and_removed(tiny_archive):
    folder = loader.fetch(str(tiny_archive))
    path = folder / "model.keras"
    data = path.read_bytes()
    path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    with pytest.raises(KzooError, match="corrupted and was removed"):
        loader.fetch(str(tiny_archive))
    assert not folder.exists()
    assert loader.fetch(str(tiny_archive)) == folder  # fetched anew


def test_unknown_name_and_bad_refs():
    with pytest.raises(KzooError, match="did you mean cgan-digits"):
        loader.load("cgan-digit")
    with pytest.raises(KzooError, match="unsupported reference"):
        loader.fetch("s3://bucket/x.tar.gz")


def _shipped_samples(n):
    gen = loader.load("cgan-digits")
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 10
    z = rng.standard_normal((n, 64)).astype("float32")
    return gen.predict([z, labels.astype("int32")], verbose=0), labels


def test_shipped_preset_loads():
    images, _ = _shipped_samples(20)
    assert images.shape == (20, 32, 32, 1) and images.min() >= -1 and images.max() <= 1
    assert images.std() > 0.3  # digits on a background, not a flat picture


@pytest.mark.slow
def test_shipped_preset_draws_the_asked_digits():
    """The real cgan-digits preset: the reference classifier reads the digits it was asked for."""
    from kzoo.metrics import digits_generation_scores

    images, labels = _shipped_samples(500)
    assert digits_generation_scores(images, labels)["class_consistency"] > 0.9


def test_two_processes_fill_the_cache_once(tiny_archive, kzoo_home):
    code = ("import sys; from kzoo.hub import loader\n"
            "print(loader.fetch(sys.argv[1]))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tiny_archive)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert outs[0][0] == outs[1][0]
    entries = list((kzoo_home / "presets" / "sha256").iterdir())
    assert len(entries) == 1  # no second copy, no leftover temporary folder
    loader.verify(entries[0])


def test_init_weights(tiny_preset_dir):
    from kzoo.zoo import create_model

    model = create_model("cgan_digits", image_size=8, width=4, latent_dim=4, seed=1)
    full = loader.load(str(tiny_preset_dir), part="full")
    assert not np.allclose(model.generator.weights[0].numpy(), full.generator.weights[0].numpy())
    loader.init_weights(model, str(tiny_preset_dir))
    for a, b in zip(model.weights, full.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(KzooError, match="differ from the preset"):
        loader.init_weights(create_model("cgan_digits", image_size=8, width=8, latent_dim=4),
                            str(tiny_preset_dir))
    with pytest.raises(KzooError, match="holds a ConditionalGAN"):
        loader.init_weights(create_model("dcgan", image_size=8, width=4, latent_dim=4, channels=1),
                            str(tiny_preset_dir))



def test_recipe_init_from(tiny_preset_dir, tmp_path):
    """`--init-from` starts a recipe run from the preset's weights."""
    from kzoo.recipes import cgan
    from kzoo.recipes.runner import run

    out = run(cgan.RECIPE, ["--preset", "quick", "--image-size", "8", "--width", "4",
                            "--latent-dim", "4", "--batch-size", "8", "--epochs", "1",
                            "--steps-per-epoch", "1", "--eval-samples", "0", "--no-jit-compile",
                            "--learning-rate", "1e-12", "--init-from", str(tiny_preset_dir),
                            "--out", str(tmp_path / "run")])
    import keras

    trained = keras.saving.load_model(out / "model" / "inference.keras")
    preset = loader.load(str(tiny_preset_dir))
    kernel = "out_conv"  # no batch norm after it: Adam moves it by about the learning rate (1e-12)
    np.testing.assert_allclose(trained.get_layer(kernel).kernel.numpy(),
                               preset.get_layer(kernel).kernel.numpy(), rtol=0, atol=1e-9)
    assert json.loads((out / "config.json").read_text())["config"]["init_from"] == str(tiny_preset_dir)


def test_hub_folder_takes_only_hub_references(tiny_preset_dir, tmp_path, kzoo_home):
    assert loader.hub_folder(tiny_preset_dir) is None  # plain folders and files: the caller's
    assert loader.hub_folder(tmp_path / "model.keras") is None
    assert loader.hub_folder(tmp_path / "missing" / "run") is None
    (tmp_path / "notes.txt").write_text("x")
    assert loader.hub_folder(tmp_path / "notes.txt") is None
    packed = archive.pack(tiny_preset_dir, tmp_path / "tiny.tar.gz")
    assert (loader.hub_folder(packed) / "metadata.json").is_file()
    assert (loader.hub_folder(packed.as_uri()) / "model.keras").is_file()
    assert loader.hub_folder("cgan-digits").name  # a catalog name
    with pytest.raises(KzooError, match="did you mean"):
        loader.hub_folder("cgan-digit")
