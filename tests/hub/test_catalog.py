import json
from pathlib import Path

import pytest

from kzoo.errors import KzooError
from kzoo.hub import catalog
from kzoo.hub.preset import sha256_file


def _write(path, *entries):
    path.write_text(json.dumps({"presets": list(entries)}))
    return path


def _entry(name, version="1", **kw):
    return {"name": name, "version": version, "task": "t", "sha256": "0" * 64, "size": 1000,
            "url": f"https://example.org/{name}-{version}.tar.gz", **kw}




def test_shipped_catalog_points_at_real_packaged_presets():
    shipped = [e for e in catalog._read(catalog.SHIPPED) if "upstream" not in e]  # kzoo-made
    assert shipped, "the shipped catalog is empty"
    for e in shipped:
        assert "path" in e, f"{e['name']} is not shipped in the package"
        assert sha256_file(e["path"]) == e["sha256"], e["name"]
        assert e["size"] <= 8e6, f"{e['name']} is too big to ship (house rule: 8 MB a file)"
        assert e["metrics"], f"{e['name']} has no measured metrics"
    from kzoo.recipes.registry import list_recipes

    assert {e["recipe"] for e in shipped} >= set(list_recipes())  # one real preset per model family
    assert "cgan-digits" in {e["name"] for e in shipped}


def _shipped_names():
    return sorted({e["name"] for e in catalog._read(catalog.SHIPPED) if "upstream" not in e})


@pytest.mark.parametrize("name", _shipped_names())
def test_every_shipped_preset_loads_and_runs(name, kzoo_home):
    import numpy as np

    from kzoo.hub import load, metadata
    from kzoo.hub.loader import card

    meta = metadata(name)
    # presets published with a model card describe their tensors there, older ones at the top
    io = meta if "inputs" in meta else card(name).endpoints[0].spec()
    assert meta["name"] == name and meta["metrics"] == catalog.lookup(name)["metrics"]
    model = load(name)
    assert type(model).__name__ == meta["inference_class"]
    rng = np.random.default_rng(0)
    inputs = {}
    for spec in io["inputs"]:  # unknown sizes: the preset's image size (or a small LR patch)
        shape = [2] + [d if d is not None else meta["image_size"] // 4 if spec["name"] == "lr"
                       else meta["image_size"] for d in spec["shape"][1:]]
        if "int" in spec["dtype"]:
            inputs[spec["name"]] = np.ones(shape, spec["dtype"])
        else:
            inputs[spec["name"]] = rng.uniform(-1, 1, shape).astype(spec["dtype"])
    out = model(inputs if len(inputs) > 1 else next(iter(inputs.values())), training=False)
    outs = out.values() if isinstance(out, dict) else [out]
    for o in outs:
        o = np.asarray(o)
        assert o.shape[0] == 2 and np.all(np.isfinite(o))
    for spec in io["outputs"]:
        if spec.get("range") in ([-1.0, 1.0], [0.0, 1.0]) and not spec.get("clip"):  # clip: unbounded
            value = np.asarray(out[spec["name"]] if isinstance(out, dict) else out)
            assert spec["range"][0] - 1e-5 <= value.min() and value.max() <= spec["range"][1] + 1e-5


def test_versions_and_override(tmp_path, monkeypatch):
    path = _write(tmp_path / "c.json", _entry("alpha", "1"), _entry("alpha", "10"), _entry("alpha", "2"))
    monkeypatch.setenv("KZOO_CATALOG", str(path))
    assert catalog.lookup("alpha")["version"] == "10"
    assert catalog.lookup("alpha@2")["version"] == "2"
    with pytest.raises(KzooError, match="no version '3'"):
        catalog.lookup("alpha@3")


def test_unknown_name_lists_the_closest(tmp_path, monkeypatch):
    monkeypatch.setenv("KZOO_CATALOG", str(_write(tmp_path / "c.json", _entry("pix2pix-edges"))))
    with pytest.raises(KzooError, match=r"unknown preset 'cgan-digit'; did you mean cgan-digits"):
        catalog.lookup("cgan-digit")
    with pytest.raises(KzooError, match="did you mean pix2pix-edges"):
        catalog.lookup("pix2pix-edge")


def test_bad_catalogs(tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    monkeypatch.setenv("KZOO_CATALOG", str(bad))
    with pytest.raises(KzooError, match="not valid JSON"):
        catalog.entries()
    entry = _entry("x")
    del entry["sha256"]
    monkeypatch.setenv("KZOO_CATALOG", str(_write(tmp_path / "c.json", entry)))
    with pytest.raises(KzooError, match="entry 0: a catalog entry has no 'sha256' field"):
        catalog.entries()


@pytest.mark.parametrize("content, message", [
    ('{"presets": "all"}', "has no 'presets' list"),
    ('[1, 2]', "has no 'presets' list"),
    ('{"presets": [7]}', "must be a JSON object, got int 7"),
    ('{"presets": [{"name": "x", "version": "1", "task": "t", "sha256": "%s", "size": "big",'
     ' "url": "https://h/x.tar.gz"}]}' % ("0" * 64), "field 'size' must be an integer"),
    ('{"presets": [{"name": "x", "version": "1", "task": "t", "sha256": "%s", "size": 5}]}'
     % ("0" * 64), "exactly one of path / url"),
    ('{"presets": ' + "[" * 5000 + "]" * 5000 + "}", "nested deeper"),
], ids=["presets-not-list", "top-level-list", "entry-not-object", "size-string", "no-location",
        "deep"])
def test_hostile_catalogs_are_one_error(tmp_path, monkeypatch, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    monkeypatch.setenv("KZOO_CATALOG", str(bad))
    with pytest.raises(KzooError, match=message):
        catalog.entries()


def test_add_entry_replaces_same_version_and_keeps_paths_relative(tmp_path):
    path = tmp_path / "cat" / "catalog.json"
    path.parent.mkdir()
    archive = tmp_path / "cat" / "presets" / "a.tar.gz"
    e = {k: v for k, v in _entry("a").items() if k != "url"}
    catalog.add_entry(path, dict(e, path=str(archive), size=5))
    catalog.add_entry(path, dict(e, path=str(archive), size=7))
    catalog.add_entry(path, dict(e, version="2", path=str(archive)))
    data = json.loads(path.read_text())["presets"]
    assert [(d["version"], d["size"]) for d in data] == [("1", 7), ("2", 1000)]
    assert data[0]["path"] == "presets/a.tar.gz"
    assert catalog._read(path)[0]["path"] == str(archive)


def test_table():
    text = catalog.table([_entry("cgan-digits", metrics={"frechet_distance": 104.7}, image_size=32,
                                 size=6_640_907)])
    header, row = text.splitlines()
    assert header.split() == ["name", "task", "size", "metrics", "image", "size"]
    assert "cgan-digits@1" in row and "6.6 MB" in row and "frechet_distance 105" in row and "32x32" in row


def test_table_shows_a_few_scalar_scores():
    metrics = {"a_iou": 0.9, "per_class_iou": [0.1, 0.2], "ddpm_steps": 1000, "ddpm_sample_seconds": 3.0,
               "b": 1.0, "c": 2.0, "d": 3.0, "input_psnr": 4.0}  # baselines last
    row = catalog.table([_entry("x", metrics=metrics, image_size=8)]).splitlines()[1]
    assert "a_iou 0.9, b 1, c 2, d 3 (+1 more: kzoo hub info)" in row
    assert "per_class" not in row and "steps" not in row and "seconds" not in row


# The lines of the authors' download scripts (junyanz/pytorch-CycleGAN-and-pix2pix) the
# upstream entries cite, as read there (the same text in every indexed copy of the repo).
# The weights URLs of torchvision 0.28.0's torchvision/models/segmentation/deeplabv3.py (pytorch/vision),
# line: text, as read in the installed package (`Weights(url=...)` of each weights enum).
TORCHVISION_DEEPLABV3 = {
    144: '        url="https://download.pytorch.org/models/deeplabv3_resnet50_coco-cd0a2569.pth",',
    165: '        url="https://download.pytorch.org/models/deeplabv3_resnet101_coco-586e9e4e.pth",',
    186: '        url="https://download.pytorch.org/models/deeplabv3_mobilenet_v3_large-fc3c493d.pth",',
}
AUTHORS_SCRIPTS = {
    "scripts/download_cyclegan_model.sh": {
        3: 'echo "Note: available models are apple2orange, orange2apple, summer2winter_yosemite, '
           'winter2summer_yosemite, horse2zebra, zebra2horse, monet2photo, style_monet, style_cezanne, '
           'style_ukiyoe, style_vangogh, sat2map, map2sat, cityscapes_photo2label, cityscapes_label2photo, '
           'facades_photo2label, facades_label2photo, iphone2dslr_flower"',
        9: "URL=http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/$FILE.pth"},
    "scripts/download_pix2pix_model.sh": {
        3: 'echo "Note: available models are edges2shoes, sat2map, map2sat, facades_label2photo, and '
           'day2night"',
        8: "URL=http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/$FILE.pth"},
}


# The lines of the super-resolution authors' code that name their weights' URLs, as read
# there (xinntao/Real-ESRGAN at a4abfb2979a7; EDSR-PyTorch src/model/edsr.py's url dict).
_REL = "https://github.com/xinntao/Real-ESRGAN/releases/download/"
_SNU = "https://cv.snu.ac.kr/research/EDSR/models/"
SR_AUTHORS_LINES = {
    ("xinntao/Real-ESRGAN", "inference_realesrgan.py"): {
        62: f"        file_url = ['{_REL}v0.1.0/RealESRGAN_x4plus.pth']",
        74: f"        file_url = ['{_REL}v0.2.1/RealESRGAN_x2plus.pth']",
        78: f"        file_url = ['{_REL}v0.2.5.0/realesr-animevideov3.pth']",
        84: f"            '{_REL}v0.2.5.0/realesr-general-x4v3.pth'"},
    ("sanghyun-son/EDSR-PyTorch", "src/model/edsr.py"): {
        6: f"    'r16f64x2': '{_SNU}edsr_baseline_x2-1bc95232.pt',",
        7: f"    'r16f64x3': '{_SNU}edsr_baseline_x3-abf2a44e.pt',",
        8: f"    'r16f64x4': '{_SNU}edsr_baseline_x4-6b446fab.pt',",
        9: f"    'r32f256x2': '{_SNU}edsr_x2-0edfb8a3.pt',",
        10: f"    'r32f256x3': '{_SNU}edsr_x3-ea3ef2c6.pt',",
        11: f"    'r32f256x4': '{_SNU}edsr_x4-4f62e9ef.pt'"},
}


def _upstream_entries():
    return [e for e in catalog._read(catalog.SHIPPED) if "upstream" in e]


@pytest.mark.parametrize("entry", _upstream_entries(), ids=lambda e: e["name"])
def test_every_upstream_entry_has_the_provenance_of_its_source(entry):
    """Each URL is the authors' script's URL line with a model name its line 3 lists (the
    other direction's too); each hf:// entry cites its repository's model card and pins a
    commit or says it is pinned on first download."""
    import re

    up = entry["upstream"]
    repo, path, line = re.fullmatch(r"(\S+/\S+) ([^ :]+)(?::(\d+))?(?: .*)?", up["provenance"]).groups()
    if up["format"] == "junyanz":
        assert repo == "junyanz/pytorch-CycleGAN-and-pix2pix" and path in AUTHORS_SCRIPTS
        script = AUTHORS_SCRIPTS[path]
        template = script[int(line)]
        assert template.startswith("URL=")
        listed = re.split(r", (?:and )?", script[3].split("available models are ")[1].rstrip('"'))
        for url in [up["source"]] + ([up["reverse"]] if "reverse" in up else []):
            stem = url.rsplit("/", 1)[1].removesuffix(".pth")
            assert stem in listed and template[len("URL="):].replace("$FILE", stem) == url
        assert up["arch_provenance"].startswith(repo + " ")
        assert up["arch"] == ("unet_256" if path.endswith("pix2pix_model.sh") else "resnet_9blocks")
    elif up["format"] in ("realesrgan", "edsr"):
        assert f"'{up['source']}'" in SR_AUTHORS_LINES[repo, path][int(line)]
        assert up["arch_provenance"].startswith(repo + " ")
        assert up["arch"] == {"realesr-": "SRVGGNetCompact", "realesrg": "RRDBNet",
                              "edsr-": "EDSR"}[next(p for p in ("realesr-", "realesrg", "edsr-")
                                                    if entry["name"].startswith(p))]
    elif up["format"] == "torchvision":
        assert repo == "pytorch/vision" and path == "torchvision/models/segmentation/deeplabv3.py"
        assert TORCHVISION_DEEPLABV3[int(line)] == f'        url="{up["source"]}",'
        assert up["source"].rsplit("/", 1)[1].startswith(up["arch"] + ("_coco-" if "resnet" in
                                                                        up["arch"] else "-"))
    else:
        assert up["source"] == f"hf://{repo}" and path == "README.md"
        assert re.fullmatch(r"[0-9a-f]{40}", up["revision"]) or \
            up["revision"] == catalog.PIN_ON_FIRST_DOWNLOAD


def test_the_traced_revision_of_ddpm_cifar10_32():
    # https://huggingface.co/google/ddpm-cifar10-32/raw/30eb34ce06e995c15ec349bc188a86d6bd0d5359/README.md
    # (a mirror of it, found by the lead); the other google/ddpm-* commits were not traced
    assert catalog.lookup("ddpm-cifar10-32")["upstream"]["revision"] == \
        "30eb34ce06e995c15ec349bc188a86d6bd0d5359"


@pytest.mark.parametrize("change, message", [
    ({"provenance": None}, "upstream.provenance must name where the source was read"),
    ({"provenance": "somewhere"}, "upstream.provenance must name where the source was read"),
    ({"revision": "main"}, "upstream.revision must be a commit"),
    ({"revision": None}, "upstream.revision must be a commit"),
    ({"source": "hf://google/ddpm-cifar10-32@main"}, "name the commit in upstream.revision"),
], ids=["no-provenance", "bad-provenance", "branch", "no-revision", "revision-in-source"])
def test_an_upstream_entry_without_provenance_or_commit_is_refused(tmp_path, monkeypatch, change, message):
    up = {"format": "diffusers", "source": "hf://google/ddpm-cifar10-32", "revision": "a" * 40,
          "provenance": "google/ddpm-cifar10-32 README.md"}
    up.update(change)
    up = {k: v for k, v in up.items() if v is not None}
    entry = {"name": "x", "version": "upstream", "task": "t", "upstream": up}
    monkeypatch.setenv("KZOO_CATALOG", str(_write(tmp_path / "c.json", entry)))
    with pytest.raises(KzooError, match=message) as e:
        catalog.entries()
    assert "\n" not in str(e.value)
    up = dict(up, source="http://h/x.pth", format="junyanz", arch="unet_256", revision="a" * 40)
    monkeypatch.setenv("KZOO_CATALOG", str(_write(tmp_path / "d.json", dict(entry, upstream=up))))
    with pytest.raises(KzooError, match="provenance|revision is for hf:// sources"):
        catalog.entries()


def test_every_upstream_format_declares_the_error_its_fixture_test_proves():
    """docs/hub.md's "proven error" column comes from the converter modules; each names the
    test that asserts its PROVEN_ERROR (by the constant, not a copy of the number), and its
    recorded MEASURED_ERROR is within it."""
    import ast
    import importlib

    repo = Path(__file__).resolve().parents[2]
    modules = {catalog.converter_module(e).__name__ for e in catalog.entries() if "upstream" in e}
    assert modules == {f"kzoo.hub.convert.{m}" for m in ("junyanz", "diffusers", "torchvision", "sr",
                                                         "autoencoder_kl")}
    for name in sorted(modules):
        module = importlib.import_module(name)
        assert 0 < module.MEASURED_ERROR <= module.PROVEN_ERROR, name
        path, function = module.PROVEN_BY.split("::")
        tree = ast.parse((repo / path).read_text())
        test = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function), None)
        assert test is not None, f"{name}: {module.PROVEN_BY} does not exist"
        assert "PROVEN_ERROR" in ast.unparse(test), f"{module.PROVEN_BY} does not assert {name}.PROVEN_ERROR"
    with pytest.raises(KzooError, match="no converter for upstream format 'onnx'"):
        catalog.converter_module({"name": "x", "upstream": {"format": "onnx"}})
