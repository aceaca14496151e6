"""kzoo.hub.convert.torchvision: torchvision's DeepLabV3 weights, converted, equal torchvision.

The fixtures are written by scripts/reference_fixtures_torchvision.py (torchvision 0.28.0's
own classes at reduced width, seeded random weights and BN statistics, eval mode); CI
needs no torch.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.hub.convert import torchvision as tv
from kzoo.hub.convert.torchfile import load_state_dict

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "reference" / "torchvision"
RATES = (1, 2, 3)  # the fixtures' ASPP rates (the published networks use 12, 24, 36)
# fixture -> (detected architecture, auxiliary head)
VARIANTS = {"resnet_small": ("deeplabv3_resnet", True),  # ResNet [1, 1, 2, 2], dilated, aux
            "mobilenet_small": ("deeplabv3_mobilenet_v3_large", False)}  # width 0.1, no aux


def _outputs(model, x):
    out = (model.aux_network or model.network)(x, training=False)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


@pytest.mark.parametrize("fixture", sorted(VARIANTS))
def test_converted_network_reproduces_torchvision(fixture):
    state = load_state_dict(FIXTURES / f"{fixture}.pth")
    data = np.load(FIXTURES / f"{fixture}.npz")
    arch, aux = VARIANTS[fixture]
    assert tv.detect(state) == arch and tv.read_dims(state)["aux"] == aux
    model = tv.convert_torchvision(state, image_size=40, aspp_rates=RATES)
    got = _outputs(model, data["x"])
    want = [data["out"]] + ([data["aux"]] if aux else [])
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape == (1, 40, 40, 21)
        assert np.abs(g - w).max() <= tv.PROVEN_ERROR * np.ptp(w)
    assert model.class_names[15] == "person" and len(model.class_names) == 21


def test_full_size_architectures_have_the_reference_names_shapes_and_counts():
    """torchvision's state_dict() names and shapes (aux_loss=True), in order, and the
    Keras networks hold exactly those parameters."""
    from kzoo.models.deeplab import DeepLabV3

    reference = json.loads((FIXTURES / "full_size.json").read_text())
    assert set(reference) == set(tv.ARCHS)
    for arch, ref in reference.items():
        params = [(name, tuple(shape)) for name, shape in ref["params"]]
        state = {name: np.zeros(shape, np.float32) for name, shape in params}
        dims = tv.read_dims(state)
        assert tv.reference_params(arch, dims) == params, arch
        assert tv.detect(state) == arch and tv.mismatches(arch, state) == []
        trainable = sum(int(np.prod(s)) for n, s in params if not n.endswith(
            ("running_mean", "running_var", "num_batches_tracked")))
        assert trainable == ref["num_params"], arch
        if arch == "deeplabv3_resnet101":
            continue  # the same code as resnet50 with more blocks (a slow build)
        model = DeepLabV3(**tv.model_kwargs(arch, state, image_size=64))
        weights = model.aux_network.weights
        buffers = [(n, s) for n, s in params if not n.endswith("num_batches_tracked")]
        assert len(weights) == len(buffers), arch
        assert sum(int(np.prod(w.shape)) for w in weights) == \
            sum(int(np.prod(s)) for _, s in buffers), arch
        assert sum(int(np.prod(w.shape)) for w in model.aux_network.trainable_weights) == \
            ref["num_params"], arch


def test_full_size_conversion_assigns_every_weight():
    """A random state dict in the published mobilenet layout loads onto every Keras weight."""
    rng = np.random.default_rng(0)
    params = json.loads((FIXTURES / "full_size.json").read_text())["deeplabv3_mobilenet_v3_large"]
    state = {name: rng.normal(size=shape).astype(np.float32) for name, shape in params["params"]}
    model = tv.convert_torchvision(state, image_size=32)
    net = model.aux_network
    np.testing.assert_array_equal(net.get_layer("backbone_1_block_0_0").kernel.numpy(),
                                  state["backbone.1.block.0.0.weight"].transpose(2, 3, 0, 1))
    np.testing.assert_array_equal(net.get_layer("classifier_4").kernel.numpy(),
                                  state["classifier.4.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(net.get_layer("aux_classifier_1").moving_variance.numpy(),
                                  state["aux_classifier.1.running_var"])


def test_a_mismatched_state_dict_names_the_first_mismatch_and_the_closest_arch():
    mobile = load_state_dict(FIXTURES / "mobilenet_small.pth")
    with pytest.raises(KzooError) as e:
        tv.check("deeplabv3_resnet50", mobile)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("the state dict does not match --arch deeplabv3_resnet50: "
                              "backbone.conv1.weight (64, 3, 7, 7) is missing (")
    assert message.endswith("; it is a deeplabv3_mobilenet_v3_large state dict "
                            "(--arch deeplabv3_mobilenet_v3_large)")
    resnet = load_state_dict(FIXTURES / "resnet_small.pth")
    del resnet["classifier.2.running_var"]
    with pytest.raises(KzooError, match=r"--arch deeplabv3_resnet101: backbone\.layer1\.1\.conv1"
                                        r"\.weight \(2, 8, 1, 1\) is missing .*the closest "
                                        r"architecture is deeplabv3_resnet \(1 mismatch\)$"):
        tv.convert_torchvision(resnet, "deeplabv3_resnet101")
    with pytest.raises(KzooError, match=r"classifier\.2\.running_var \(8,\) is missing"):
        tv.convert_torchvision(resnet)
    with pytest.raises(KzooError, match="unknown torchvision architecture 'deeplabv3_vgg'"):
        tv.parse_arch("deeplabv3_vgg")


def test_the_card_names_the_classes_and_the_normalisation():
    from kzoo.card import ModelCard
    from kzoo.models.deeplab import VOC_CLASSES

    state = load_state_dict(FIXTURES / "resnet_small.pth")
    model = tv.convert_torchvision(state, image_size=40, aspp_rates=RATES)
    card = ModelCard.from_dict(model.card().to_dict())
    segmenter = card.endpoint("segmenter")
    assert [t.class_names for t in segmenter.outputs] == [VOC_CLASSES, VOC_CLASSES]
    assert "(0.485, 0.456, 0.406)" in segmenter.inputs[0].description
    assert card.spec("segmenter")["dynamic"]["spatial_size"] == {"base": 40, "multiple": 1}


def test_the_network_takes_any_size():
    """Explicit PyTorch padding and run-time resizing: other sizes, odd ones too."""
    from kzoo.export.dynamic import spatially_dynamic

    state = load_state_dict(FIXTURES / "mobilenet_small.pth")
    model = tv.convert_torchvision(state, image_size=40, aspp_rates=RATES)
    dynamic = spatially_dynamic(model.network)
    data = np.load(FIXTURES / "mobilenet_small.npz")
    np.testing.assert_allclose(np.asarray(dynamic(data["x"])), data["out"], atol=1e-5 *
                               np.ptp(data["out"]))
    assert dynamic(np.zeros((1, 37, 23, 3), np.float32)).shape == (1, 37, 23, 21)


@pytest.mark.slow
def test_a_converted_segmenter_exports_with_parity_and_predicts_masks_and_areas(tmp_path):
    """The converted small network as a preset -> `kzoo export` (SavedModel + ONNX, parity
    record) -> the ONNX probabilities equal torchvision's softmax; `kzoo predict` writes the
    label ids, the coloured mask and the per-class areas."""
    import onnxruntime as ort
    from PIL import Image

    from kzoo.cli import main
    from kzoo.export import export
    from kzoo.hub import convert

    path = FIXTURES / "resnet_small.pth"
    full, inference, info, size = tv.torchvision_models(load_state_dict(path), image_size=40,
                                                        aspp_rates=RATES)
    preset = convert.write(full, inference, info, size, tmp_path / "preset", name="tv-small",
                           source=str(path), source_sha256="0" * 64)
    results = export(preset, out=tmp_path / "export", version=1)
    folder = next(r.path for r in results if (r.path / "model.onnx").is_file())
    record = json.loads((folder / "kzoo.json").read_text())
    labels_entry = next(e for e in record["outputs"] if e["role"] == "labels")
    assert labels_entry["class_names"][15] == "person"
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    data = np.load(FIXTURES / "resnet_small.npz")
    got = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {session.get_inputs()[0].name: data["x"]})))
    logits = data["out"] - data["out"].max(-1, keepdims=True)
    want = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert np.abs(got["probabilities"] - want).max() <= 1e-5, record.get("parity")
    # any size: a 48x36 photo-like image
    Image.fromarray(((data["x"][0, :36] + 1) * 127.5).astype(np.uint8)).resize((48, 36)).save(
        tmp_path / "street.png")
    assert main(["predict", str(folder.parent), str(tmp_path / "street.png"),
                 "--out", str(tmp_path / "pred")]) == 0
    mask = np.asarray(Image.open(tmp_path / "pred" / "street_labels_mask.png"))
    ids = np.asarray(Image.open(tmp_path / "pred" / "street_labels.png"))
    assert mask.shape == (36, 48, 3) and ids.shape == (36, 48)
    areas = json.loads((tmp_path / "pred" / "street_labels_areas.json").read_text())
    assert sum(a["pixels"] for a in areas["classes"]) == 36 * 48
    for a in areas["classes"]:
        assert a["pixels"] == int((ids == a["class"]).sum())
        assert a["name"] == labels_entry["class_names"][a["class"]]


def test_a_catalog_entry_downloads_pins_and_converts(http_server, kzoo_home, monkeypatch,
                                                     tmp_path):
    """A torchvision catalog entry end to end against a local server laid out like
    download.pytorch.org: downloaded, pinned on first use, detected, converted, cached."""
    import shutil

    import kzoo.hub
    from kzoo.cli import main
    from kzoo.hub import cache, convert

    root, base = http_server
    (root / "models").mkdir()
    digest = kzoo.hub.preset.sha256_file(FIXTURES / "mobilenet_small.pth")
    # the name carries the sha256 prefix, as torchvision's do (torch.hub's check_hash)
    shutil.copy(FIXTURES / "mobilenet_small.pth", root / "models" / f"tiny-{digest[:8]}.pth")
    shutil.copy(FIXTURES / "mobilenet_small.pth", root / "models" / "tiny-0badc0de.pth")
    url = f"{base}/models/tiny-{digest[:8]}.pth"
    monkeypatch.setenv("KZOO_CATALOG", str(tmp_path / "catalog.json"))
    (tmp_path / "catalog.json").write_text(json.dumps({"presets": [{
        "name": "deeplabv3-tiny", "version": "upstream", "task": "semantic-segmentation",
        "upstream": {"format": "torchvision", "arch": "deeplabv3_mobilenet_v3_large",
                     "source": url, "provenance": "pytorch/vision "
                     "torchvision/models/segmentation/deeplabv3.py:186"}}]}))
    network = kzoo.hub.load("deeplabv3-tiny", progress=False, compile=False)
    state = load_state_dict(FIXTURES / "mobilenet_small.pth")
    want = tv.convert_torchvision(state).network  # torchvision's rates, built at 520
    x = np.random.default_rng(1).uniform(-1, 1, (1, 520, 520, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(network(x)), np.asarray(want(x)))
    assert cache.pinned(url) == digest
    meta = kzoo.hub.metadata("deeplabv3-tiny")
    assert meta["upstream"]["format"] == "torchvision" and "BSD-3-Clause" in meta["license"]
    assert meta["card"]["endpoints"][0]["outputs"][0]["class_names"][15] == "person"
    # a file whose sha256 does not start with its name's prefix is refused, and not pinned
    bad = f"{base}/models/tiny-0badc0de.pth"
    with pytest.raises(KzooError, match=r"does not start with 0badc0de, the prefix its name "
                                        r"carries \(torch\.hub's check_hash\)"):
        convert.convert(bad, out=tmp_path / "bad", progress=False)
    assert cache.pinned(bad) is None and not (tmp_path / "bad").exists()
    # the wrong architecture named on the command line: one line, exit 2
    assert main(["hub", "convert", str(FIXTURES / "resnet_small.pth"), "--arch",
                 "deeplabv3_mobilenet_v3_large", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_deeplab_v3_plus_starts_from_the_torchvision_backbones(tmp_path):
    """DeepLabV3+ (the paper's decoder) on torchvision's exact backbones, loaded from a
    DeepLabV3 file or a classification-style state dict, trains (fine-tuning)."""
    import keras
    from safetensors.numpy import save_file

    from kzoo.models.deeplab import DeepLabV3Plus

    path = FIXTURES / "resnet_small.pth"
    small = {"image_size": 48, "num_classes": 3, "aspp_filters": 8, "low_level_filters": 4,
             "decoder_filters": 8}
    plus = DeepLabV3Plus(backbone="torchvision_resnet", blocks=(1, 1, 2, 2), width=2,
                         backbone_weights=str(path), aspp_rates=(2, 4, 6), **small)
    v3 = tv.convert_torchvision(load_state_dict(path), image_size=48, aspp_rates=RATES)
    x = np.random.default_rng(2).uniform(-1, 1, (1, 48, 48, 3)).astype(np.float32)

    def features(network):
        return np.asarray(keras.Model(network.input, network.get_layer(
            "backbone_layer4_1_out").output)(x))

    np.testing.assert_array_equal(features(plus.network), features(v3.aux_network))
    assert plus.network.get_layer("decoder_up2") is not None  # output stride 8 -> 4
    plus.compile(optimizer="adam")
    history = plus.fit(*plus.sample_batch(2, rng=0), epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    # a classification-style MobileNetV3 file (`features.*`, ImageNet layout)
    state = load_state_dict(FIXTURES / "mobilenet_small.pth")
    flat = {"features." + k[len("backbone."):]: v for k, v in state.items()
            if k.startswith("backbone.") and v.ndim}
    save_file(flat, str(tmp_path / "mobilenet_v3_large.safetensors"))
    mobile = DeepLabV3Plus(backbone="torchvision_mobilenet_v3_large", width_mult=0.1,
                           backbone_weights=str(tmp_path / "mobilenet_v3_large.safetensors"),
                           **small)
    kernel = mobile.network.get_layer("backbone_16_0").kernel.numpy()
    np.testing.assert_array_equal(kernel, state["backbone.16.0.weight"].transpose(2, 3, 1, 0))
    assert mobile.network.get_layer("decoder_up4") is not None
    with pytest.raises(KzooError, match=r"\(backbone\): kzoo layer backbone_conv1 has weights"):
        DeepLabV3Plus(backbone="torchvision_resnet", blocks=(1, 1, 2, 2), width=2,
                      backbone_weights=str(FIXTURES / "mobilenet_small.pth"), **small)
