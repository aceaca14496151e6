"""ONNX Runtime kernels behind the inference rows that stay below goal, each beside its baseline.

One-node ONNX graphs on CPU with kzoo's session options (`kzoo.infer.session_options`),
timed alternately (`benchmarks.infer.alternate`), median milliseconds:

- pixel shuffle: `DepthToSpace` (DCR, the mode of `tf.nn.depth_to_space`, and CRD) on the
  input of the paper-width (64) SRResNet's second upsampling from a 64x64 input, batch 4, beside an `Identity` copy of the same
  tensor (what a block copy costs; TensorFlow's NHWC pixel shuffle is one);
- elementwise op on a tensor whose last axis has size 1 (a one-channel NHWC image, as the
  pix2pix colouriser's L was before `kzoo.layers.color` dropped that axis) beside the same
  values without the axis;
- `Pow` with a non-integer exponent (the sRGB and CIE Lab curves) beside `Exp(Log(x) * p)`,
  the form `kzoo.export.onnx_model` now writes it in.
"""

from __future__ import annotations

import numpy as np


def _session(nodes, initializers=()):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from kzoo.infer import session_options

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "kernel", [x], [y], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ort.InferenceSession(model.SerializeToString(), session_options(),
                                providers=["CPUExecutionProvider"])


def _compare(what, shapes, variants, repeats):
    """One row: {what, shape, <variant>_ms...}; variants: {name: (nodes, initializers, shape)}."""
    from benchmarks.infer import alternate

    rng = np.random.default_rng(0)
    fns = {}
    for name, (nodes, inits, shape) in variants.items():
        sess, x = _session(nodes, inits), rng.uniform(0.01, 1.0, shape).astype(np.float32)
        fns[name] = lambda sess=sess, x=x: sess.run(None, {"x": x})
    row = {"kernel": what, "shape": shapes}
    row.update({f"{k}_ms": v for k, v in alternate(fns, repeats, 2).items()})
    return row


def run(repeats=20):
    from onnx import helper, numpy_helper

    def node(op, inputs=("x",), **attrs):
        return helper.make_node(op, list(inputs), ["y"], **attrs)

    rows = []
    d2s = (4, 256, 128, 128)  # paper-width SRResNet x4 from 64x64: the second pixel shuffle's input
    rows.append(_compare("pixel shuffle (NCHW)", str(d2s), {
        "DepthToSpace DCR": ([node("DepthToSpace", blocksize=2, mode="DCR")], [], d2s),
        "DepthToSpace CRD": ([node("DepthToSpace", blocksize=2, mode="CRD")], [], d2s),
        "copy": ([node("Identity")], [], d2s)}, repeats))
    scale = numpy_helper.from_array(np.array(1.5, np.float32), "c")
    rows.append(_compare("Mul by a scalar", "(16, 64, 64, 1) vs (16, 64, 64)", {
        "last axis 1": ([node("Mul", ("x", "c"))], [scale], (16, 64, 64, 1)),
        "no channel axis": ([node("Mul", ("x", "c"))], [scale], (16, 64, 64))}, repeats))
    p = numpy_helper.from_array(np.array(1 / 2.4, np.float32), "p")
    exp_log = [helper.make_node("Log", ["x"], ["l"]), helper.make_node("Mul", ["l", "p"], ["m"]),
               helper.make_node("Exp", ["m"], ["y"])]
    rows.append(_compare("x ^ (1 / 2.4)", "(16, 64, 64, 3)", {
        "Pow": ([node("Pow", ("x", "p"))], [p], (16, 64, 64, 3)),
        "Exp(Log(x) * p)": (exp_log, [p], (16, 64, 64, 3))}, repeats))
    for r in rows:
        print("  kernels: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{v}" for k, v in r.items()),
              flush=True)
    return rows
