import numpy as np

from kzoo.export import parity

SPEC = {"outputs": [{"name": "image"}, {"name": "labels"}]}


def test_relative_error_uses_the_output_range():
    ref = {"image": np.array([[0.0, 2.0]], "float32"), "labels": np.array([1, 2])}
    got = {"image": np.array([[0.0, 2.001]], "float32"), "labels": np.array([1, 2])}
    f = parity.compare(ref, got, SPEC)
    assert abs(f["image"]["max_abs"] - 1e-3) < 1e-6
    assert abs(f["image"]["max_rel"] - 5e-4) < 1e-6
    assert f["labels"] == {"mismatch_fraction": 0.0}
    assert parity.failures(f, 1e-3) == []
    assert "image: max error" in parity.failures(f, 1e-4)[0]


def test_label_flips_shape_and_nan_fail():
    ref = {"image": np.zeros((1, 2), "float32"), "labels": np.arange(10)}
    got = {"image": np.array([[np.nan, 0]], "float32"), "labels": np.r_[np.arange(9), 0]}
    bad = parity.failures(parity.compare(ref, got, SPEC), 1e-4)
    assert any("non-finite" in b for b in bad) and any("10.00% of labels" in b for b in bad)
    f = parity.compare({"image": np.zeros(3), "labels": np.zeros(1)},
                       {"image": np.zeros(4), "labels": np.zeros(1)}, SPEC)
    assert "shape" in parity.failures(f, 1.0)[0]


def test_merge_keeps_the_worst_case():
    a = {"image": {"max_abs": 1.0, "max_rel": 0.1, "output_range": 10.0, "finite": True}}
    b = {"image": {"max_abs": 0.5, "max_rel": 0.2, "output_range": 2.5, "finite": False}}
    m = parity.merge(a, b)["image"]
    assert m["max_abs"] == 1.0 and m["max_rel"] == 0.2 and m["finite"] is False


def test_draws_compare_distributions_and_catch_a_lost_dropout_or_shift():
    """`compare_draws`: equal distributions pass; no spread, or means moved by many
    standard errors, fail with one reason each."""
    rng = np.random.default_rng(0)
    spec = {"outputs": [{"name": "image"}]}
    center = rng.uniform(-0.5, 0.5, (8, 8, 3))
    draw = lambda n, shift=0.0, sd=0.1: {"image": center + shift + sd * rng.normal(size=(n, 8, 8, 3))}  # noqa: E731
    f = parity.compare_draws(draw(64), draw(64), spec)
    assert f["image"]["draws"] == 64 and 0.5 < f["image"]["mean_z2"] < 1.5
    assert parity.failures(f, 1e-4) == []
    lost = parity.failures(parity.compare_draws(draw(64), draw(64, sd=0.0), spec), 1e-4)
    assert len(lost) == 1 and "times as much as Keras" in lost[0]
    moved = parity.failures(parity.compare_draws(draw(64), draw(64, shift=0.05), spec), 1e-4)
    assert len(moved) == 1 and "squared standard errors" in moved[0]
