"""kzoo.hub.convert.junyanz: the authors' generators, converted, equal the reference outputs.

The fixtures are written by scripts/make_reference_fixtures.py (PyTorch, seeded random
weights, eval mode); CI needs no torch.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.hub.convert import junyanz
from kzoo.hub.convert.torchfile import load_state_dict

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "reference"

# fixture -> (architecture name, what it covers)
VARIANTS = {
    "unet_batch_dropout": "unet_64",  # batch norm with running stats, dropout blocks in eval
    "unet_instance": "unet_32_instance",  # instance norm, biases, 1 -> 3 channels
    "resnet_instance": "resnet_2blocks",  # CycleGAN's: instance norm without affine
    "resnet_batch": "resnet_1blocks_batch",
}


@pytest.mark.parametrize("fixture", sorted(VARIANTS))
def test_converted_generator_reproduces_the_reference_outputs(fixture):
    state = load_state_dict(FIXTURES / f"{fixture}.pth")
    data = np.load(FIXTURES / f"{fixture}.npz")
    generator = junyanz.convert_junyanz(state, VARIANTS[fixture])
    got = np.asarray(generator(data["input"], training=False))
    want = data["output"]
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= junyanz.PROVEN_ERROR * np.ptp(want)
    # a second input size: the networks are fully convolutional
    if fixture.startswith("resnet"):
        assert generator(data["input"][:1, :16, :24], training=False).shape == (1, 16, 24, 3)


def test_full_size_architectures_have_the_reference_names_shapes_and_counts():
    reference = json.loads((FIXTURES / "junyanz_full_size.json").read_text())
    assert set(reference) == set(junyanz.ARCHS)
    for arch, params in reference.items():
        params = [(name, tuple(shape)) for name, shape in params
                  if not name.endswith("num_batches_tracked")]
        ours = [(name, shape) for name, _, _, shape in junyanz.reference_params(arch)]
        assert ours == params, arch
        generator = junyanz.build_generator(arch)
        count = sum(int(np.prod(s)) for _, s in params)
        assert sum(int(np.prod(w.shape)) for w in generator.weights) == count, arch
        assert len(generator.weights) == len(params), arch


def test_full_size_conversion_assigns_every_weight():
    """A random state dict in the published unet_256 layout converts onto every Keras weight."""
    rng = np.random.default_rng(0)
    state = {name: rng.normal(size=shape).astype(np.float32)
             for name, _, _, shape in junyanz.reference_params("unet_128")}
    generator = junyanz.convert_junyanz(state, "unet_128")
    kernel = generator.get_layer("down1_conv").kernel.numpy()
    np.testing.assert_array_equal(kernel, state["model.model.1.model.1.weight"].transpose(2, 3, 1, 0))
    up = generator.get_layer("out_conv").kernel.numpy()  # (in, out, kh, kw) -> (kh, kw, out, in)
    np.testing.assert_array_equal(up, state["model.model.3.weight"].transpose(2, 3, 1, 0))


def test_old_instance_norm_statistics_are_ignored():
    """Checkpoints saved by PyTorch < 0.4 hold running stats for InstanceNorm2d (unused in eval)."""
    state = load_state_dict(FIXTURES / "resnet_instance.pth")
    old = dict(state, **{"model.2.running_mean": np.zeros(4, np.float32),
                         "model.2.running_var": np.ones(4, np.float32)})
    assert junyanz.mismatches("resnet_2blocks", old) == []


def test_a_mismatched_state_dict_names_the_first_mismatch_and_the_closest_arch():
    state = {name: np.zeros(shape, np.float32)
             for name, _, _, shape in junyanz.reference_params("resnet_9blocks")}
    with pytest.raises(KzooError) as e:
        junyanz.check("resnet_6blocks", state)
    message = str(e.value)
    assert "\n" not in message
    assert ": model.16.weight (256, 128, 3, 3) is missing (22 mismatches in all)" in message
    assert "it is a resnet_9blocks state dict (--arch resnet_9blocks)" in message
    unet = {n: np.zeros(s, np.float32) for n, _, _, s in junyanz.reference_params("unet_256")}
    del unet["model.model.3.bias"]
    with pytest.raises(KzooError, match=r"--arch unet_128: model\.model\.1\.model(\.3\.model)+\.2\.weight is not a "
                                        r"parameter of unet_128 \(21 mismatches in all\); the closest "
                                        r"architecture is unet_256 \(1 mismatch\)$"):
        junyanz.check("unet_128", unet)
    with pytest.raises(KzooError, match="unknown junyanz architecture 'unet_100'"):
        junyanz.parse_arch("unet_100")


def test_kzoo_layout_stays_the_default():
    """exact=None keeps the layout the shipped pix2pix/cyclegan presets were saved with."""
    from kzoo.models.cyclegan import resnet_generator
    from kzoo.models.pix2pix import unet_generator

    unet = unet_generator(width=4, levels=5, input_channels=1)
    assert unet.get_layer("down0_conv").use_bias and not unet.get_layer("down1_conv").use_bias
    assert [l.name for l in unet.layers if l.name.startswith("skip")] == [f"skip{i}" for i in (3, 2, 1, 0)]
    resnet = resnet_generator(width=4, num_blocks=1)
    assert not resnet.get_layer("c7s1_conv").use_bias
    with pytest.raises(ValueError, match="exact must be None or 'junyanz'"):
        resnet_generator(exact="other")


# --- the authors' default test mode (kzoo.layers.test_mode) -------------------------

def _authors_fixture():
    state = load_state_dict(FIXTURES / "unet_batch_dropout.pth")
    return (junyanz.convert_junyanz(state, VARIANTS["unet_batch_dropout"]),
            np.load(FIXTURES / "unet_batch_dropout.npz"),
            np.load(FIXTURES / "unet_batch_dropout_authors.npz"))


def test_authors_mode_batch_statistics_equal_pytorch_train_mode():
    """Dropout forced off, authors mode is PyTorch's train mode on one image at a time:
    equal within float32 rounding, and far from eval mode (so not trivially)."""
    from kzoo.layers.test_mode import mode_of, with_test_mode

    generator, data, authors = _authors_fixture()
    network = with_test_mode(generator, "authors", dropout=0.0)
    assert mode_of(network) == "authors" and mode_of(generator) == "eval"
    got = np.asarray(network(data["input"], training=False))
    want = authors["batch_stats"]
    assert np.abs(got - want).max() <= 1e-5 * np.ptp(want)
    assert np.abs(data["output"] - want).max() > 1.0  # eval mode is another network
    alone = np.asarray(network(data["input"][1:], training=False))  # statistics are per image
    assert np.abs(alone - want[1:]).max() <= 1e-5 * np.ptp(want)
    # the rebuilt network holds copies of the weights: eval mode is unchanged
    np.testing.assert_allclose(np.asarray(generator(data["input"], training=False)),
                               data["output"], atol=1e-4 * np.ptp(data["output"]))


def test_authors_mode_dropout_matches_pytorch_over_many_draws():
    """With dropout on, each call draws new masks: over N draws of one input the
    per-output means agree with PyTorch's (2,000 draws) within their standard errors
    (mean z^2 about 1, every |z| < 6) and so do the spreads (within 10 %)."""
    import keras

    from kzoo.layers.test_mode import with_test_mode

    keras.utils.set_random_seed(0)
    generator, data, authors = _authors_fixture()
    network = with_test_mode(generator, "authors")
    n = 1000
    x = np.repeat(data["input"][:1], 250, axis=0)  # per-image statistics: rows are independent draws
    draws = np.concatenate([np.asarray(network(x, training=False)) for _ in range(n // 250)])
    mean, std = draws.mean(0), draws.std(0, ddof=1)
    ref_mean, ref_std, m = authors["dropout_mean"], authors["dropout_std"].astype(np.float64), int(authors["draws"])
    z = (mean - ref_mean) / np.sqrt(ref_std ** 2 / m + std ** 2 / n + 1e-12)
    assert np.mean(z ** 2) < 1.5 and np.abs(z).max() < 6, (np.mean(z ** 2), np.abs(z).max())
    assert 0.9 < std.mean() / ref_std.mean() < 1.1
    assert ref_std.mean() > 0.05  # dropout moves the outputs: the comparison has power
    # eval mode (no dropout, running statistics) fails the same comparison by far
    still = np.asarray(generator(data["input"][:1], training=False))[0]
    assert np.mean(((still - ref_mean) / np.sqrt(ref_std ** 2 / m + 1e-12)) ** 2) > 100


def test_instance_norm_networks_are_the_same_in_both_modes():
    """CycleGAN's generators (instance norm, no dropout): authors mode changes nothing."""
    from kzoo.layers.test_mode import with_test_mode

    for fixture in ("resnet_instance", "unet_instance"):
        state = load_state_dict(FIXTURES / f"{fixture}.pth")
        data = np.load(FIXTURES / f"{fixture}.npz")
        generator = junyanz.convert_junyanz(state, VARIANTS[fixture])
        authors = with_test_mode(generator, "authors")
        np.testing.assert_array_equal(np.asarray(authors(data["input"], training=False)),
                                      np.asarray(generator(data["input"], training=False)))
