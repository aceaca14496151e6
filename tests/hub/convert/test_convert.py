"""kzoo.hub.convert: upstream weights -> kzoo presets, by CLI, kzoo.hub.load and the catalog."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import kzoo.hub
from kzoo.cli import main
from kzoo.errors import KzooError
from kzoo.hub import cache, catalog, convert
from tests.hub.convert import assert_convert_refused

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "reference"


def _cache_entries(home):
    return sorted(p.relative_to(home).as_posix() for p in (home / "presets").rglob("*")
                  if p.is_dir() and p.parent.name == "converted") if (home / "presets").is_dir() else []


def test_cli_convert_writes_an_ordinary_preset_equal_to_the_reference(tmp_path, capsys):
    out = tmp_path / "facades"
    assert main(["hub", "convert", str(FIXTURES / "unet_batch_dropout.pth"), "--arch", "unet_64",
                 "--out", str(out), "--name", "tiny-unet"]) == 0
    assert "converted" in capsys.readouterr().out
    meta = kzoo.hub.preset.verify(out)
    assert meta["model_class"] == "Pix2Pix" and meta["version"] == "upstream"
    up = meta["upstream"]
    assert up["format"] == "junyanz" and up["arch"] == "unet_64"
    assert up["sha256"] == kzoo.hub.preset.sha256_file(FIXTURES / "unet_batch_dropout.pth")
    assert "Isola" in up["paper"] and "BSD" in meta["license"]
    assert "junyanz/pytorch-CycleGAN-and-pix2pix" in (out / "README.md").read_text()
    data = np.load(FIXTURES / "unet_batch_dropout.npz")
    for part in ("inference", "full"):
        model = kzoo.hub.load(out, part=part, compile=False)
        got = np.asarray(model(data["input"], training=False))
        assert np.abs(got - data["output"]).max() <= 1e-4 * np.ptp(data["output"])


def test_load_converts_once_into_the_cache(kzoo_home):
    ref = f"{FIXTURES / 'resnet_batch.pth'}#arch=resnet_1blocks_batch"
    first = convert.fetch(ref)
    assert first.is_relative_to(kzoo_home) and _cache_entries(kzoo_home)
    stamp = (first / "model.keras").stat().st_mtime_ns
    generator = kzoo.hub.load(ref)  # from the cache: not converted again
    assert (first / "model.keras").stat().st_mtime_ns == stamp
    data = np.load(FIXTURES / "resnet_batch.npz")
    got = np.asarray(generator(data["input"], training=False))
    assert np.abs(got - data["output"]).max() <= 1e-4 * np.ptp(data["output"])
    # the architecture is found when the state dict matches one exactly
    from kzoo.hub.convert import junyanz

    assert junyanz.closest_arch(junyanz_state("resnet_6blocks")) == ("resnet_6blocks", 0)


def junyanz_state(arch):
    from kzoo.hub.convert import junyanz

    rng = np.random.default_rng(0)
    return {n: rng.normal(size=s).astype(np.float32) for n, _, _, s in junyanz.reference_params(arch)}


def test_bad_sources_are_one_line_exit_2_and_leave_no_cache(tmp_path, kzoo_home, capsys):
    import pickle
    import zipfile

    evil = tmp_path / "evil.pth"
    with zipfile.ZipFile(evil, "w") as zf:
        marker = tmp_path / "ran"
        zf.writestr("archive/data.pkl", pickle.dumps(_System(f"touch {marker}"), protocol=2))
    cases = [
        ([str(evil), "--arch", "unet_256"], "refusing to load evil.pth: its pickle calls posix.system"),
        ([str(FIXTURES / "resnet_instance.pth"), "--arch", "resnet_9blocks"],
         "the state dict does not match --arch resnet_9blocks: "),
        ([str(FIXTURES / "resnet_instance.pth"), "--arch", "vgg16"], "unknown junyanz architecture"),
        ([str(FIXTURES / "resnet_instance.pth"), "--reverse", str(FIXTURES / "unet_instance.pth")],
         "the reverse generator: the state dict does not match --arch resnet_2blocks: "),
        ([str(FIXTURES / "resnet_instance.pth"), "--reverse", str(evil)],
         "refusing to load evil.pth: its pickle calls posix.system"),
        ([str(FIXTURES / "resnet_instance.pth"), "--reverse", str(tmp_path / "none.pth")],
         "none.pth: no such weights file (--reverse)"),
        ([str(FIXTURES / "unet_instance.pth"), "--arch", "unet_32_instance", "--reverse",
          str(FIXTURES / "resnet_instance.pth")],
         "--reverse is for CycleGAN generators (resnet_*)"),
    ]
    assert_convert_refused(cases, tmp_path / "out", capsys)
    assert not marker.exists()
    with pytest.raises(KzooError, match=r"it is a resnet_2blocks state dict \(--arch resnet_2blocks\)"):
        kzoo.hub.load(f"{FIXTURES / 'resnet_instance.pth'}#arch=resnet_9blocks")
    assert _cache_entries(kzoo_home) == []
    assert not any(p.name.startswith(".fill") for p in kzoo_home.rglob("*"))


class _System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


def test_catalog_upstream_entries_download_pin_and_convert(http_server, kzoo_home, monkeypatch, tmp_path):
    """The catalog's upstream path end to end, against a local server laid out like the authors'."""
    root, base = http_server
    (root / "cyclegan" / "pretrained_models").mkdir(parents=True)
    shutil.copy(FIXTURES / "resnet_instance.pth", root / "cyclegan" / "pretrained_models" / "tiny2zebra.pth")
    url = f"{base}/cyclegan/pretrained_models/tiny2zebra.pth"
    monkeypatch.setenv("KZOO_CATALOG", str(tmp_path / "catalog.json"))
    (tmp_path / "catalog.json").write_text(json.dumps({"presets": [{
        "name": "cyclegan-tiny2zebra", "version": "upstream", "task": "unpaired-image-to-image-translation",
        "upstream": {"format": "junyanz", "arch": "resnet_2blocks", "source": url,
                     "reverse": f"{base}/cyclegan/pretrained_models/zebra2tiny.pth",
                     "provenance": "junyanz/pytorch-CycleGAN-and-pix2pix scripts/download_cyclegan_model.sh:9"}}]}))
    # the other direction's file (here the same network, so that both directions are checkable)
    shutil.copy(FIXTURES / "resnet_instance.pth", root / "cyclegan" / "pretrained_models" / "zebra2tiny.pth")
    generator = kzoo.hub.load("cyclegan-tiny2zebra", progress=False)
    data = np.load(FIXTURES / "resnet_instance.npz")
    got = np.asarray(generator(data["input"], training=False))
    assert np.abs(got - data["output"]).max() <= 1e-4 * np.ptp(data["output"])
    full = kzoo.hub.load("cyclegan-tiny2zebra", part="full", progress=False)
    back = np.asarray(full.generator_ba(data["input"], training=False))
    assert np.abs(back - data["output"]).max() <= 1e-4 * np.ptp(data["output"])
    digest = kzoo.hub.preset.sha256_file(FIXTURES / "resnet_instance.pth")
    assert cache.pinned(url) == digest  # trust on first use, stored in KZOO_HOME
    assert cache.pinned(f"{base}/cyclegan/pretrained_models/zebra2tiny.pth") == digest
    meta = kzoo.hub.metadata("cyclegan-tiny2zebra")
    assert meta["upstream"]["sha256"] == digest and meta["upstream"]["trust_on_first_use"]
    assert meta["upstream"]["reverse"] == {"source": f"{base}/cyclegan/pretrained_models/zebra2tiny.pth",
                                           "sha256": digest}
    assert "generator_ba hold the upstream generators" in meta["upstream"]["note"]
    assert meta["name"] == "cyclegan-tiny2zebra"
    # KZOO_OFFLINE serves the cached conversion
    monkeypatch.setenv("KZOO_OFFLINE", "1")
    assert kzoo.hub.load("cyclegan-tiny2zebra", progress=False) is not None
    monkeypatch.delenv("KZOO_OFFLINE")
    # the server's file changes: the next download (after the cache is cleared) is refused
    shutil.rmtree(kzoo_home / "presets")
    shutil.copy(FIXTURES / "resnet_batch.pth", root / "cyclegan" / "pretrained_models" / "tiny2zebra.pth")
    with pytest.raises(KzooError, match="changed since its first download"):
        kzoo.hub.load("cyclegan-tiny2zebra", progress=False)
    assert _cache_entries(kzoo_home) == []
    assert cache.pinned(url) == digest


def test_a_failed_first_conversion_pins_nothing(http_server, kzoo_home):
    root, base = http_server
    shutil.copy(FIXTURES / "resnet_instance.pth", root / "x.pth")
    url = f"{base}/x.pth"
    with pytest.raises(KzooError, match="does not match --arch unet_256"):
        kzoo.hub.load(f"{url}#arch=unet_256", progress=False)
    assert cache.pinned(url) is None and _cache_entries(kzoo_home) == []


def test_shipped_catalog_names_the_upstream_checkpoints():
    upstream = {e["name"]: e for e in catalog.entries() if "upstream" in e}
    assert {"pix2pix-facades", "pix2pix-sat2map", "pix2pix-map2sat", "pix2pix-edges2shoes",
            "pix2pix-day2night", "cyclegan-horse2zebra", "cyclegan-zebra2horse",
            "cyclegan-monet2photo", "cyclegan-style-monet", "cyclegan-style-cezanne",
            "cyclegan-style-ukiyoe", "cyclegan-style-vangogh", "cyclegan-summer2winter",
            "cyclegan-winter2summer", "cyclegan-apple2orange", "cyclegan-orange2apple",
            "cyclegan-iphone2dslr-flower", "cyclegan-sat2map", "cyclegan-map2sat",
            "cyclegan-cityscapes-photo2label", "cyclegan-cityscapes-label2photo",
            "cyclegan-facades-photo2label", "cyclegan-facades-label2photo",
            "ddpm-cifar10-32", "ddpm-celebahq-256", "ddpm-church-256", "ddpm-bedroom-256",
            "ddpm-cat-256"} <= set(upstream)
    assert "pix2pix-edges2handbags" not in upstream  # the authors publish no such model
    assert upstream["pix2pix-facades"]["upstream"]["source"] == \
        "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/facades_label2photo.pth"
    horse = upstream["cyclegan-horse2zebra"]["upstream"]
    assert (horse["format"], horse["arch"]) == ("junyanz", "resnet_9blocks")
    assert horse["source"] == "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/horse2zebra.pth"
    assert horse["reverse"] == "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/zebra2horse.pth"
    for name, e in upstream.items():  # a reverse is the authors' other direction, and only that
        up = e["upstream"]
        if "reverse" in up:
            back = next(b for b in upstream.values() if b["upstream"]["source"] == up["reverse"])
            assert back["upstream"]["reverse"] == up["source"], name
    assert "reverse" not in upstream["cyclegan-style-cezanne"]["upstream"]  # no painting -> photo
    assert upstream["ddpm-cifar10-32"]["upstream"]["source"] == "hf://google/ddpm-cifar10-32"
    for e in upstream.values():
        assert "sha256" not in e and "path" not in e and "url" not in e


def test_diffusers_folders_go_to_the_diffusers_converter(tmp_path, monkeypatch):
    """A diffusers folder reaches `convert_diffusers(state, config, scheduler_config)` (the
    real converter and its parity tests live in kzoo.hub.convert.diffusers)."""
    import sys
    import types

    from safetensors.numpy import save_file

    folder = tmp_path / "ddpm"
    folder.mkdir()
    save_file({"conv_in.weight": np.zeros((4, 3, 3, 3), np.float32)},
              str(folder / "diffusion_pytorch_model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", "sample_size": 8}))
    (folder / "scheduler_config.json").write_text(json.dumps({"num_train_timesteps": 10}))
    seen = {}

    def fake(state, config, scheduler_config):
        seen.update(state=state, config=config, scheduler=scheduler_config)
        raise KzooError("unsupported block type 'Fake2D' (supported: DownBlock2D, ...)")

    monkeypatch.setitem(sys.modules, "kzoo.hub.convert.diffusers",
                        types.SimpleNamespace(convert_diffusers=fake))
    assert convert.is_upstream(str(folder))
    with pytest.raises(KzooError, match="unsupported block type"):
        convert.convert(folder, out=tmp_path / "out")
    assert list(seen["state"]) == ["conv_in.weight"] and seen["config"]["sample_size"] == 8
    assert seen["scheduler"] == {"num_train_timesteps": 10}
    assert not (tmp_path / "out").exists()


def test_hf_diffusers_repositories_are_converted_not_installed(tmp_path, kzoo_home, monkeypatch):
    """hf:// of a diffusers repository goes through the converter; a failure leaves no cache."""
    import sys
    import types

    from safetensors.numpy import save_file

    from kzoo.hub import hf

    def fake_download(ref, dest, **kw):
        dest.mkdir(parents=True)
        save_file({"conv_in.weight": np.zeros((4, 3, 3, 3), np.float32)},
                  str(dest / "diffusion_pytorch_model.safetensors"))
        (dest / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
        return "hf://google/ddpm-cifar10-32@" + "0" * 40, {"hf://google/ddpm-cifar10-32": "0" * 40}

    def fake_convert(state, config, scheduler_config):
        raise KzooError("unsupported block type 'Fake2D'")

    monkeypatch.setattr(hf, "download", fake_download)
    monkeypatch.setitem(sys.modules, "kzoo.hub.convert.diffusers",
                        types.SimpleNamespace(convert_diffusers=fake_convert))
    with pytest.raises(KzooError, match="unsupported block type 'Fake2D'"):
        kzoo.hub.load("hf://google/ddpm-cifar10-32")
    leftovers = [p for p in (kzoo_home / "presets").rglob("*") if p.is_file()]
    assert leftovers == [] and cache.pinned("hf://google/ddpm-cifar10-32") is None


@pytest.mark.slow
def test_a_converted_generator_exports_with_parity_and_predicts(tmp_path):
    """`kzoo export` of a .pth reference: SavedModel + ONNX with the parity record (~90 s)."""
    from kzoo.export import export

    ref = f"{FIXTURES / 'resnet_instance.pth'}#arch=resnet_2blocks"
    results = export(ref, out=tmp_path / "export", version=1)
    ab = next(r.path for r in results if r.path.parent.name.endswith("generator_ab"))
    record = json.loads((ab / "kzoo.json").read_text())
    assert (ab / "model.onnx").is_file() and (ab / "saved_model.pb").is_file()
    import onnxruntime as ort

    data = np.load(FIXTURES / "resnet_instance.npz")
    session = ort.InferenceSession(str(ab / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: data["input"]})[0]
    assert np.abs(got - data["output"]).max() <= 1e-4 * np.ptp(data["output"]), record


def test_init_from_accepts_an_upstream_reference(kzoo_home):
    """`--init-from` (kzoo.hub.init_weights) starts a recipe's exact network from a .pth."""
    from kzoo.models.pix2pix import Pix2Pix

    model = Pix2Pix(image_size=64, width=2, levels=6, exact="junyanz")
    kzoo.hub.init_weights(model, f"{FIXTURES / 'unet_batch_dropout.pth'}#arch=unet_64")
    data = np.load(FIXTURES / "unet_batch_dropout.npz")
    got = np.asarray(model.generator(data["input"], training=False))
    assert np.abs(got - data["output"]).max() <= 1e-4 * np.ptp(data["output"])
    with pytest.raises(KzooError, match="different architecture options"):
        kzoo.hub.init_weights(Pix2Pix(image_size=64, width=2, levels=6),
                              f"{FIXTURES / 'unet_batch_dropout.pth'}#arch=unet_64")


def test_convert_sweeps_what_killed_converts_left_and_publishes_with_the_umask(tmp_path, capsys,
                                                                              monkeypatch):
    """kill -9 during `kzoo hub convert` leaves `conv/.NAME.kzoo-PID-*` beside the destination
    and `kzoo-convert-PID-*` in the temporary folder: the next convert removes those of dead
    processes, never a live one's; the preset it writes is readable as the umask says."""
    import os
    import tempfile

    from tests.helpers import dead_pid, leftovers, modes

    conv, scratch = tmp_path / "conv", tmp_path / "system-tmp"
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    dead, live = dead_pid(), os.getpid()
    gone = leftovers(conv, f".facades.kzoo-{dead}-abcd1234", f".zebra.kzoo-{dead}-q1w2e3r4")
    gone += leftovers(scratch, f"kzoo-convert-{dead}-abcd1234")
    kept = leftovers(conv, f".facades.kzoo-{live}-abcd1234")
    kept += leftovers(scratch, f"kzoo-convert-{live}-abcd1234", "kzoo-convert-abcd1234")
    old = os.umask(0o022)
    try:
        assert main(["hub", "convert", str(FIXTURES / "unet_batch_dropout.pth"), "--arch", "unet_64",
                     "--out", str(conv / "facades"), "--name", "tiny-unet"]) == 0
    finally:
        os.umask(old)
    assert not any(p.exists() for p in gone) and all(p.exists() for p in kept)
    assert sorted(p.name for p in conv.iterdir()) == [kept[0].name, "facades"]
    assert sorted(p.name for p in scratch.iterdir()) == sorted(p.name for p in kept[1:])
    got = modes(conv / "facades")
    assert got.pop(".") == 0o755 and set(got.values()) == {0o644}, got


def test_convert_records_the_test_mode_and_export_refuses_it_for_other_models(tmp_path, capsys,
                                                                           tiny_preset):
    """`kzoo hub convert --mode authors`: the inference network runs in the authors' mode,
    metadata and README say so, the full model is unchanged; `kzoo export --mode
    authors` of a model that is not a junyanz network is one line, exit 2."""
    from kzoo.layers.test_mode import mode_of

    out = tmp_path / "facades-authors"
    assert main(["hub", "convert", str(FIXTURES / "unet_batch_dropout.pth"), "--arch", "unet_64",
                 "--out", str(out), "--mode", "authors"]) == 0
    assert "authors mode" in capsys.readouterr().out
    meta = kzoo.hub.preset.verify(out)
    assert meta["test_mode"] == meta["upstream"]["test_mode"] == "authors"
    assert meta["command"].endswith("--mode authors")
    assert "test-time mode of the inference network: `authors`" in (out / "README.md").read_text()
    assert mode_of(kzoo.hub.load(out)) == "authors"
    assert mode_of(kzoo.hub.load(out, part="full", compile=False).generator) == "eval"
    authors = np.load(FIXTURES / "unet_batch_dropout_authors.npz")
    data = np.load(FIXTURES / "unet_batch_dropout.npz")
    first, second = (np.asarray(kzoo.hub.load(out)(data["input"], training=False)) for _ in range(2))
    assert np.abs(first - second).max() > 0.1  # dropout draws a new mask at every call
    assert np.abs(first - authors["batch_stats"]).max() < np.abs(first - data["output"]).max()
    assert main(["export", str(tiny_preset), "--mode", "authors", "--out", str(tmp_path / "e")]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "--mode authors" in line and "not this ConditionalGAN" in line
    assert main(["hub", "convert", str(FIXTURES / "unet_batch_dropout.pth"), "--out",
                 str(tmp_path / "x"), "--mode", "train"]) == 2
    assert "invalid choice: 'train'" in capsys.readouterr().err


@pytest.mark.slow
def test_authors_mode_exports_with_dropout_and_batch_statistics(tmp_path, capsys):
    """The exported authors-mode network really drops out and normalizes per image, in the
    SavedModel and in ONNX (~2 min): the export's own parity compares 64 dropout draws by
    distribution; with dropout forced to zero every artifact equals PyTorch's train mode
    exactly; `kzoo predict --mode` refuses an export made in the other mode."""
    import onnx
    import onnxruntime as ort

    from kzoo.export import export
    from kzoo.export.exporter import build_version, onnx_runner
    from kzoo.export.saved_model import load_signature
    from kzoo.export.spec import describe
    from kzoo.export.source import in_mode, resolve
    from kzoo.layers.test_mode import with_test_mode

    ref = f"{FIXTURES / 'unet_batch_dropout.pth'}#arch=unet_64"
    (result,) = export(ref, out=tmp_path / "export", version=1, mode="authors")
    info = result.info
    assert info["test_mode"]["mode"] == "authors"
    for fmt in ("savedmodel", "onnx"):
        figures = info["parity"][fmt]["draws"]["output"]
        assert figures["draws"] == 64 and figures["mean_z2"] <= 2.0, figures
        assert 0.8 <= figures["spread_ratio"] <= 1.25, figures
    graph = onnx.load(str(result.path / "model.onnx")).graph
    assert "RandomUniformLike" in {n.op_type for n in graph.node}
    data = np.load(FIXTURES / "unet_batch_dropout.npz")
    authors = np.load(FIXTURES / "unet_batch_dropout_authors.npz")
    session = ort.InferenceSession(str(result.path / "model.onnx"), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: data["input"]}
    assert np.abs(session.run(None, feed)[0] - session.run(None, feed)[0]).max() > 0.1
    # dropout forced to zero: batch statistics only, compared exactly
    src = in_mode(resolve(ref))
    network = with_test_mode(src.parts["generator"], "authors", dropout=0.0)
    spec = describe("generator", network, src.card)
    build_version(network, spec, tmp_path / "rate0")
    want = authors["batch_stats"]
    for run in (load_signature(tmp_path / "rate0"), onnx_runner(tmp_path / "rate0" / "model.onnx")):
        got = run(image=data["input"])["output"]
        assert np.abs(got - want).max() <= 1e-5 * np.ptp(want)
    # an export is in one mode: predicting it in the other names the command that makes it
    from kzoo.infer import resolve_model

    with pytest.raises(KzooError, match=r"exported in authors mode; .*kzoo export SOURCE --mode eval"):
        resolve_model(str(result.path.parent), mode="eval")
    assert resolve_model(str(result.path.parent), mode="authors") == result.path
