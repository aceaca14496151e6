"""kzoo.memory: the liveness peak, the activation profile, plans within a budget."""

import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.memory import (ActivationProfile, MemoryPool, _liveness_peak, activation_profile, check_budget,
                         default_request_budget, physical_memory_bytes, plan_run)


def test_liveness_peak_of_a_chain_with_a_skip():
    from onnx import TensorProto, helper

    v = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, None)  # noqa: E731
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Relu", ["b"], ["c"]), helper.make_node("Add", ["a", "c"], ["y"])]
    graph = helper.make_graph(nodes, "g", [v("x")], [v("y")])
    sizes = {"x": 1, "a": 10, "b": 100, "c": 1000, "y": 10000}
    # x dies after node 0; a lives to the Add; b dies after c is made; y at the end
    assert _liveness_peak(graph, sizes) == 10 + 1000 + 10000


def test_activation_profile_of_a_fully_convolutional_model_scales_with_pixels(tmp_path):
    from kzoo.export import export
    from tests.export.common import fcn

    (r,) = export(fcn(channels=3), name="fcn", out=tmp_path, formats="onnx")
    prof = activation_profile(r.path / "model.onnx", r.info)
    # image_model: input 3 ch, conv 4 ch at 1/4 pixels, transposed conv 4 ch, concat 7 ch, output 3 ch
    assert prof.outputs["restored"] == (0.0, 12.0) and prof.inputs["image"] == (0.0, 12.0)
    assert 12 + 28 <= prof.per_pixel <= 12 + 16 + 28 + 12
    assert prof.peak(2, 100) == int(2 * (prof.per_row + prof.per_pixel * 100))


def test_plan_runs_whole_in_chunks_in_tiles_or_refuses():
    prof = ActivationProfile(per_row=1000.0, per_pixel=10.0, outputs={}, inputs={})
    assert plan_run(prof, 4, 0, {}, 10_000, chunk_rows=8, what="x", limit_name="--l").chunk_rows == 4
    plan = plan_run(prof, 100, 0, {"outputs": 1000}, 10_000, chunk_rows=8, what="x", limit_name="--l")
    assert plan.chunk_rows == 8 and plan.tile is None and plan.estimate.total == 9000
    with pytest.raises(KzooError, match=r"100 rows needs about 8\.8 KiB \(outputs 1000 bytes, activations 7\.8 KiB\), over the limit of 7\.8 KiB for one "
                                        r"request \(--limit\)"):
        plan_run(prof, 100, 0, {"outputs": 1000}, 8000, chunk_rows=8, what="100 rows", limit_name="--limit")
    # 1000 x 1000 pixels: 10 MB whole; tiles of a multiple of 16 with 8 px of context fit 1 MB
    plan = plan_run(prof, 1, 10**6, {}, 10**6, chunk_rows=8, what="x", limit_name="--l", tile_multiple=16, overlap=8)
    assert plan.tile % 16 == 0 and prof.peak(1, (plan.tile + 16) ** 2) <= 10**6 < prof.peak(1, (plan.tile + 32) ** 2)
    with pytest.raises(KzooError, match="over the limit"):  # a model that does not tile
        plan_run(prof, 1, 10**6, {}, 10**6, chunk_rows=8, what="x", limit_name="--l")


def test_budget_flags_and_defaults():
    machine = physical_memory_bytes()
    assert 0 < default_request_budget() == machine // 4
    assert check_budget(None, "--x") == default_request_budget() and check_budget(1 << 20, "--x") == 1 << 20
    for bad in (0, 12, -5, 1.5, "7"):
        with pytest.raises(KzooError, match="--x must be a whole number of bytes >= 1 MiB"):
            check_budget(bad, "--x")
    with pytest.raises(KzooError, match="more than this machine's memory"):
        check_budget(machine * 2, "--x")


def test_memory_pool():
    pool = MemoryPool(100)
    assert pool.reserve(60) and not pool.reserve(50) and pool.reserve(40)
    pool.release(60)
    assert pool.reserve(50)
    assert MemoryPool(10).reserve(1000)  # one request alone may use all of its own budget


def test_release_memory_and_rss():
    from kzoo.memory import release_memory, rss_bytes

    rss, peak = rss_bytes()
    assert 0 < rss <= peak
    block = np.ones(50 << 20, np.uint8)
    del block
    release_memory()  # a no-op where glibc is missing; never raises
