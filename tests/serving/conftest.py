"""Shared fixtures of the serving tests: one small export tree, one running server."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def export_tree(tmp_path_factory):
    """cgan (SavedModel + ONNX, versions 1 and 2) and fcn (ONNX, dynamic H/W)."""
    from kzoo.export import export
    from tests.export.common import fcn, tiny_cgan

    root = tmp_path_factory.mktemp("serving") / "export"
    export(tiny_cgan(), name="cgan", out=root, formats="savedmodel,onnx", version=1)
    export(tiny_cgan(), name="cgan", out=root, formats="savedmodel,onnx", version=2)
    export(fcn(channels=3), name="fcn", out=root, formats="onnx")
    return root


@pytest.fixture(scope="session")
def server(export_tree):
    """`kzoo serve` on 127.0.0.1 (any free ports), REST + gRPC, batching on, every version
    served, small limits (1 MiB bodies and gRPC messages, 64 MiB of tensors a request)."""
    from kzoo.serving.server import ModelServer

    s = ModelServer(export_tree, port=0, grpc_port=0, max_batch=16, batch_wait_ms=2, version_policy=("all",),
                    max_body_bytes=1 << 20, grpc_max_message_bytes=1 << 20, max_tensor_bytes=64 << 20,
                    body_timeout_s=2, header_timeout_s=2).start(timeout=120)
    yield s
    s.stop()


@pytest.fixture
def cgan_inputs():
    rng = np.random.default_rng(1)
    return {"z": rng.standard_normal((3, 8)).astype("float32"), "label": np.array([0, 5, 9], "int32")}


@pytest.fixture(scope="session")
def ddpm_server(tmp_path_factory):
    """`kzoo serve` of a DDPM export: its eps-network `ddpm` and its sampler endpoint
    `ddpm_sampler` (kzoo/export/sampler.py), ONNX, the ddpm_digits model at the tests' tiny
    size (8x8, T = 50; exporting the shipped 16x16, T = 1000 preset takes 40 s here)."""
    yield from _serve_tiny(tmp_path_factory, "ddpm_digits", "ddpm", "ddpm")


@pytest.fixture(scope="session")
def stylegan2_server(tmp_path_factory):
    """`kzoo serve` of a StyleGAN2 export at the family's TINY config (8x8 gray, 4 ws, w_dim 8):
    its endpoints `sg_generator`, `sg_mapping` and `sg_synthesis`, ONNX (about 10 s here)."""
    yield from _serve_tiny(tmp_path_factory, "stylegan2", "stylegan2", "sg")


def _serve_tiny(tmp_path_factory, entry, family, name):
    """`kzoo serve` (REST only) of registry `entry` at `family`'s tiny size exported to ONNX
    as `name`; yields the server and stops it."""
    from kzoo.export import export
    from kzoo.serving.server import ModelServer
    from kzoo.zoo import create_model, tiny_overrides

    root = tmp_path_factory.mktemp(f"serving_{name}") / "export"
    export(create_model(entry, **tiny_overrides(family)), name=name, out=root, formats="onnx")
    s = ModelServer(root, port=0, grpc_port=None, max_batch=16, batch_wait_ms=2,
                    max_body_bytes=4 << 20).start(timeout=120)
    yield s
    s.stop()
