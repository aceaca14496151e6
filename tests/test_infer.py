"""ONNX Runtime inference from kzoo.json, without TensorFlow."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from kzoo.diffusion import KZOO
from kzoo.errors import KzooError
from kzoo.export import export
from kzoo.infer import OnnxModel, choose_providers, find_version, load_image, predict
from tests.export.common import fcn, save_run, tiny_cgan


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    export(tiny_cgan(), name="cgan", out=root, formats="onnx", fp16=True)
    export(fcn(channels=3), name="fcn", out=root, formats="onnx")
    export(fcn(channels=3, size=8, dynamic=False), name="fixed", out=root, formats="onnx")
    return root


def test_provider_order():
    assert choose_providers(["CPUExecutionProvider", "CUDAExecutionProvider",
                             "TensorrtExecutionProvider"]) == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(["CPUExecutionProvider", "AzureExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers(["CUDAExecutionProvider", "CPUExecutionProvider"], ["cpu"]) == [
        "CPUExecutionProvider"]
    with pytest.raises(KzooError, match="'cuda' is not available.*available: CPUExecutionProvider"):
        choose_providers(["CPUExecutionProvider"], ["cuda"])


def test_generate_with_labels(exported):
    model = OnnxModel(exported / "cgan")
    assert model.provider == "CPUExecutionProvider" and model.path == exported / "cgan" / "1"
    out, feeds = model.generate(5, seed=3, label=7)
    assert out["image"].dtype == np.uint8 and out["image"].shape == (5, 16, 16, 1)
    assert list(feeds["label"]) == [7] * 5
    again, _ = model.generate(5, seed=3, label=7)
    np.testing.assert_array_equal(out["image"], again["image"])  # seeded
    half = OnnxModel(exported / "cgan", fp16=True)
    assert np.abs(half.generate(5, seed=3, label=7)[0]["image"].astype(int) - out["image"]).max() <= 2
    with pytest.raises(KzooError, match="0..9"):
        model.generate(2, label=10)


def test_generate_in_batches_gives_the_same_items(exported):
    """`kzoo predict --num N` generates in batches (bounded memory for any N): item i does
    not depend on the batch size; labels keep cycling through the classes."""
    model = OnnxModel(exported / "cgan")
    whole, feeds = model.generate(5, seed=3)
    parts = list(model.generate_batches(5, seed=3, batch=2))
    assert [(start, len(out["image"])) for start, out, _ in parts] == [(0, 2), (2, 2), (4, 1)]
    np.testing.assert_array_equal(np.concatenate([out["image"] for _, out, _ in parts]), whole["image"])
    assert [int(v) for _, _, f in parts for v in f["label"]] == list(feeds["label"]) == [0, 1, 2, 3, 4]
    assert model.output_nbytes() == 16 * 16 * 1  # one uint8 16x16 gray image


def test_image_model_pre_and_post_processing(exported):
    model = OnnxModel(exported / "fcn" / "1" / "model.onnx")
    img = np.random.default_rng(0).integers(0, 256, (10, 6, 3), dtype=np.uint8)
    out = model.predict_image(img)["restored"]
    assert out.dtype == np.uint8 and out.shape == (10, 6, 3)
    x = model.preprocess(img)
    assert x.dtype == np.float32 and x.min() >= -1 and x.max() <= 1
    assert abs(x[0, 0, 0] - (img[0, 0, 0] / 127.5 - 1)) < 1e-6


@pytest.mark.parametrize("which,image,match", [
    ("fcn", np.zeros((8, 8, 4), np.uint8), "has 4 channels; fcn expects 3 \\(RGB\\)"),
    ("fcn", np.zeros((8, 8), np.uint8), "has 1 channels; fcn expects 3"),
    ("fixed", np.zeros((9, 8, 3), np.uint8), "image: fixed takes 8x8 images, got 9x8"),
])
def test_bad_images(exported, which, image, match):
    with pytest.raises(KzooError, match=match):
        OnnxModel(exported / which).predict_image(image)


def test_sizes_not_a_multiple_are_padded_and_cropped_back(exported):
    """fcn takes multiples of 2: a 7x9 image is reflect-padded to 8x10, run, and cropped back."""
    model = OnnxModel(exported / "fcn")
    img = np.random.default_rng(1).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    out = model.predict_image(img)["restored"]
    padded = np.pad(img, ((0, 1), (0, 1), (0, 0)), mode="reflect")
    assert out.shape == (7, 9, 3)
    np.testing.assert_array_equal(out, model.predict_image(padded)["restored"][:7, :9])
    with pytest.raises(KzooError, match="image: fcn takes images whose height and width are "
                                        "multiples of 2, got 7x9"):
        model.preprocess(img)  # raw tensors are not padded


@pytest.fixture(scope="module")
def sr(tmp_path_factory):
    from kzoo.zoo import create_model, tiny_overrides

    model = create_model("srresnet", **tiny_overrides("srresnet"))
    (r,) = export(model, name="sr", out=tmp_path_factory.mktemp("sr"), formats="onnx")
    return r


def test_super_resolution_tiles_without_seams(sr):
    """Tiles run with enough context give the untiled output; without context they do not."""
    model = OnnxModel(sr.path)
    img = np.random.default_rng(2).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    x = model.preprocess(img)
    whole = model.run(lr=x[None])["sr"]
    tiled = model.run_tiled(x, tile=16, overlap=16)["sr"]  # tiny SRResNet: receptive radius 11.5
    assert tiled.shape == whole.shape == (1, 148, 200, 3)
    np.testing.assert_allclose(tiled, whole, atol=1e-4)
    seams = model.run_tiled(x, tile=16, overlap=0)["sr"]
    assert np.abs(seams - whole).max() > 1e-2  # the test can tell
    auto = model.predict_image(img, tile=16, overlap=16)["sr"]
    assert np.abs(auto.astype(int) - model.predict_image(img, tile=0)["sr"]).max() <= 1


def test_raw_run_errors_are_kzoo_errors(exported):
    model = OnnxModel(exported / "cgan")
    with pytest.raises(KzooError, match="missing label"):
        model.run(z=np.zeros((1, 8), "float32"))
    with pytest.raises(KzooError, match=r"shape \(1, 9\); expected z: float32 of shape \(batch, 8\)"):
        model.run(z=np.zeros((1, 9), "float32"), label=np.zeros(1, "int32"))
    with pytest.raises(KzooError, match="different batch sizes"):
        model.run(z=np.zeros((2, 8), "float32"), label=np.zeros(1, "int32"))


def test_onnxruntime_failures_become_one_message(exported, monkeypatch):
    model = OnnxModel(exported / "fcn")

    def broken(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions")

    monkeypatch.setattr(model.session, "run", broken)
    with pytest.raises(KzooError, match="fcn cannot run on image .*multiple of 2.*INVALID_ARGUMENT"):
        model.run(image=np.zeros((1, 4, 4, 3), "float32"))


def test_find_version_errors(exported, tmp_path):
    with pytest.raises(KzooError, match="several models; give one of"):
        find_version(exported)
    with pytest.raises(KzooError, match="not an exported model"):
        find_version(tmp_path)


def test_load_image_channels(tmp_path):
    Image.new("P", (4, 3)).save(tmp_path / "p.png")
    Image.new("LA", (4, 3)).save(tmp_path / "la.png")
    assert load_image(tmp_path / "p.png").shape == (3, 4, 3)
    assert load_image(tmp_path / "la.png").shape == (3, 4, 2)
    (tmp_path / "x.png").write_text("no image")
    with pytest.raises(KzooError, match="cannot read image"):
        load_image(tmp_path / "x.png")
    with pytest.raises(KzooError, match="does not exist"):
        load_image(tmp_path / "missing.png")


def test_predict_writes_images(exported, tmp_path):
    paths = predict(exported / "cgan", out=tmp_path / "gen", num=3, seed=1)
    assert [p.name for p in paths] == ["image_000_label0.png", "image_001_label1.png",
                                       "image_002_label2.png"]
    Image.fromarray(np.zeros((8, 6, 3), np.uint8)).save(tmp_path / "in.png")
    (out,) = predict(exported / "fcn", [tmp_path / "in.png"], tmp_path / "pred")
    assert out == tmp_path / "pred" / "in.png" and np.asarray(Image.open(out)).shape == (8, 6, 3)
    with pytest.raises(KzooError, match="takes no input images"):
        predict(exported / "cgan", [tmp_path / "in.png"], tmp_path / "x")
    with pytest.raises(KzooError, match="give one or more INPUT"):
        predict(exported / "fcn", [], tmp_path / "x")


def test_super_resolution_at_any_size_writes_pngs(sr, tmp_path):
    """SR's linear output carries its range (clipped): PNGs, at sizes other than the base."""
    r = sr
    assert r.info["outputs"][0]["range"] == [-1.0, 1.0] and r.info["outputs"][0]["clip"]
    Image.fromarray(np.full((6, 10, 3), 90, np.uint8)).save(tmp_path / "lr.png")
    (out,) = predict(r.path, [tmp_path / "lr.png"], tmp_path / "pred")
    assert out.suffix == ".png" and np.asarray(Image.open(out)).shape == (24, 40, 3)


def test_predict_from_a_run_exports_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KZOO_HOME", str(tmp_path / "home"))
    run = save_run(tmp_path / "run", tiny_cgan(), "cgan")
    paths = predict(run, out=tmp_path / "gen", num=2, label=4)
    assert [p.name for p in paths] == ["image_000_label4.png", "image_001_label4.png"]
    (cached,) = list((tmp_path / "home" / "exports").glob("*/cgan/1/model.onnx"))
    mtime = cached.stat().st_mtime
    predict(run, out=tmp_path / "gen2", num=1)
    assert cached.stat().st_mtime == mtime  # reused, not exported again


def test_no_tensorflow_is_imported(exported, tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import kzoo.infer
        from kzoo.cli import main
        model = kzoo.infer.OnnxModel({str(exported / 'cgan')!r})
        model.generate(2)
        assert main(["predict", {str(exported / 'cgan')!r}, "--num", "2",
                     "--out", {str(tmp_path / 'out')!r}]) == 0
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx"))
        print(bad)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert len(list((tmp_path / "out").glob("*.png"))) == 2


def test_ddpm_samples_on_onnxruntime_like_keras(tmp_path):
    """The exported eps-model + kzoo.diffusion's NumPy loop == DDPM.sample in Keras."""
    from kzoo.models.ddpm import DDPM, TINY

    model = DDPM(**{**TINY, "num_timesteps": 20})
    export(model, name="ddpm", out=tmp_path, formats="onnx")
    onnx = OnnxModel(tmp_path / "ddpm")
    assert onnx.is_diffusion and onnx.info["diffusion"]["num_timesteps"] == 20
    # kzoo's own model keeps Ho et al.'s sampler, recorded in kzoo.json for kzoo.infer
    assert onnx.info["diffusion"]["sampler_options"] == KZOO.config() == model.sampler_options.config()
    for sampler, steps in (("ddim", 5), ("ddpm", 20)):
        got = onnx.diffusion_sample(3, seed=4, sampler=sampler, steps=steps)
        want = model.sample(3, sampler=sampler, steps=steps, seed=4)
        want = np.clip(np.rint((want + 1) / 2 * 255), 0, 255)
        assert got.shape == want.shape and got.dtype == np.uint8
        assert np.abs(got.astype(int) - want).max() <= 1
    from unittest import mock

    with mock.patch("kzoo.io.memory_bytes", return_value=10**9), pytest.raises(
            KzooError, match=r"--num 1000000000 \(1000000000 float32 images of 8x8x1 sampled together\) "
                             r"needs at least 256,000,000,000 bytes of memory, more than the 1,000,000,000"):
        onnx.diffusion_sample(10**9, steps=5)
    with pytest.raises(KzooError, match="--steps must be between 1 and T = 20"):
        onnx.diffusion_sample(1, steps=21)
    paths = predict(tmp_path / "ddpm", out=tmp_path / "gen", num=2, steps=4)
    assert [p.name for p in paths] == ["sample_000.png", "sample_001.png"]
    # a kzoo.json written before sampler options were recorded: kzoo's own sampler
    info_path = next((tmp_path / "ddpm").rglob("kzoo.json"))
    info = json.loads(info_path.read_text())
    del info["diffusion"]["sampler_options"]
    info_path.write_text(json.dumps(info))
    old = OnnxModel(tmp_path / "ddpm").diffusion_sample(3, seed=4, sampler="ddim", steps=5)
    np.testing.assert_array_equal(old, onnx.diffusion_sample(3, seed=4, sampler="ddim", steps=5))


def test_predict_from_a_hub_preset_name(tmp_path, monkeypatch):
    """A shipped catalog name works as `kzoo predict`'s source (exported once into the cache)."""
    monkeypatch.setenv("KZOO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KZOO_OFFLINE", raising=False)
    paths = predict("cgan-digits", out=tmp_path / "gen", num=2, label=7)
    assert [p.name for p in paths] == ["image_000_label7.png", "image_001_label7.png"]
    assert np.asarray(Image.open(paths[0])).shape == (32, 32)
    with pytest.raises(KzooError, match="did you mean cgan-digits"):
        predict("cgan-digit", out=tmp_path / "x")


def test_predict_tiles_as_asked(sr, tmp_path):
    """`kzoo predict --tile N --overlap K` (`predict(tile=, overlap=)`): with enough context the
    tiled PNG is the whole image's (to a grey level); without context it differs."""
    from PIL import Image

    from kzoo.cli import main
    from kzoo.infer import predict

    img = np.random.default_rng(3).integers(0, 256, (40, 44, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "lr.png")

    def run(tile, overlap, out):
        (path,) = predict(sr.path, [tmp_path / "lr.png"], tmp_path / out, tile=tile, overlap=overlap)
        return np.asarray(Image.open(path)).astype(int)

    whole = run(0, 0, "whole")
    assert np.abs(run(16, 16, "tiled") - whole).max() <= 1
    assert np.abs(run(16, 0, "seams") - whole).max() > 2
    assert main(["predict", str(sr.path), str(tmp_path / "lr.png"), "--tile", "16", "--overlap", "16",
                 "--out", str(tmp_path / "cli")]) == 0
    assert np.abs(np.asarray(Image.open(tmp_path / "cli" / "lr.png")).astype(int) - whole).max() <= 1
    assert main(["predict", str(sr.path), str(tmp_path / "lr.png"), "--tile", "-1"]) == 2


def test_predict_checks_the_memory_budget_before_decoding(exported, sr, tmp_path, monkeypatch):
    """`kzoo predict --max-memory-bytes`: an image over the budget is refused from its header
    (never decoded), with `--tile` named for models of any size; super-resolution tiles to fit;
    a generator's --num is refused or run in batches."""
    import kzoo.infer as infer
    from kzoo.cli import main
    from kzoo.errors import KzooError

    Image.new("RGB", (2048, 2048)).save(tmp_path / "big.png")
    decoded = []
    real_load = infer.load_image
    monkeypatch.setattr(infer, "load_image", lambda p: decoded.append(p) or real_load(p))
    with pytest.raises(KzooError, match=r"big.png \(2048x2048\) needs about .* over the limit of 16\.0 MiB for one "
                                        r"request \(--max-memory-bytes\); --tile N runs it in N x N tiles"):
        predict(exported / "fcn", [tmp_path / "big.png"], tmp_path / "out", max_memory_bytes=16 << 20)
    assert decoded == []
    assert main(["predict", str(exported / "fcn"), str(tmp_path / "big.png"), "--out", str(tmp_path / "o"),
                 "--max-memory-bytes", str(16 << 20)]) == 2
    # the same image in tiles fits (its outputs and the decoded image are counted whole)
    (path,) = predict(exported / "fcn", [tmp_path / "big.png"], tmp_path / "out", max_memory_bytes=256 << 20,
                      tile=256)
    assert np.asarray(Image.open(path)).shape == (2048, 2048, 3)
    # super-resolution chooses a tile that fits
    model = OnnxModel(sr.path)
    assert 0 < model.plan_image(300, 300, 64 << 20) < 256
    with pytest.raises(KzooError, match="over the limit of 2.0 MiB"):
        model.plan_image(300, 300, 2 << 20)
    # generators: kzoo predict streams batches of 64 (a huge --num is bounded by the disk it
    # fills, checked first), each batch checked against the budget
    with pytest.raises(KzooError, match=r"bytes free .*\(ENOSPC\)"):
        predict(exported / "cgan", [], tmp_path / "g", num=1_000_000_000)
    gen = OnnxModel(exported / "cgan")
    with pytest.raises(KzooError, match=r"--num 1000000 \(1000000 at a time\) needs about .* over the limit"):
        next(gen.generate_batches(10**6, batch=10**6, max_memory_bytes=1 << 20))
    calls = []
    run = gen.run
    gen.run = lambda **f: calls.append(len(f["z"])) or run(**f)
    images, _ = gen.generate(150, chunk_rows=64)
    assert calls == [64, 64, 22] and len(images["image"]) == 150


def test_jpeg_at_size_fits_the_budget_and_the_report_compares_at_equal_bytes():
    from kzoo.infer import jpeg_at_size, reconstruction_report

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    image = np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)
    image = np.clip(image + rng.integers(0, 60, image.shape), 0, 255).astype(np.uint8)
    decoded, nbytes, quality = jpeg_at_size(image, 1500)
    assert decoded.shape == image.shape and nbytes <= 1500 and 1 <= quality < 95
    bigger, more, better = jpeg_at_size(image, 2500)
    assert nbytes < more <= 2500 and better > quality
    line = reconstruction_report(image, image, np.zeros((4, 4, 4), np.float32))
    assert line.startswith("reconstruction PSNR inf dB from a 4x4x4 latent (128 bytes as float16)")
    assert "(quality 1, the smallest JPEG: over the latent's size)" in line  # 128 bytes: none fits


def test_predict_reports_an_autoencoders_psnr_beside_a_jpeg(tmp_path):
    """`kzoo predict` on the reconstruct endpoint of a KL autoencoder (Stable Diffusion's
    VAE family) writes the reconstruction and the latent and logs the PSNR comparison."""
    from kzoo.models.vae import KL_TINY, AutoencoderKL

    model = AutoencoderKL(**KL_TINY, seed=0)
    results = export(model, name="sdvae", out=tmp_path / "exp", formats="onnx")
    reconstruct = next(r.path for r in results if r.path.parent.name.endswith("reconstruct"))
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(tmp_path / "in.png")
    lines = []
    paths = predict(reconstruct, [tmp_path / "in.png"], tmp_path / "pred", log=lines.append)
    assert sorted(p.name for p in paths) == ["in_latent.npy", "in_reconstruction.png"]
    assert np.load(tmp_path / "pred" / "in_latent.npy").shape == (8, 8, 4)
    report = next(line for line in lines if "reconstruction PSNR" in line)
    assert "8x8x4 latent (512 bytes as float16); JPEG at" in report
