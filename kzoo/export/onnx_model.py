"""ONNX through tf2onnx, from the same `tf.function` that the SavedModel serves.

`tf2onnx.convert.from_keras` does not work with Keras 3, so the endpoint's
serving function is traced to a concrete function and converted with
`tf2onnx.convert.from_function`; input and output names are those of the
SavedModel signature, and the batch dimension is the symbolic `batch` (height and
width are `height`/`width` on dynamic image inputs).

tf2onnx runs without its `reshape_optimizer`: for a tensor with one channel the
NHWC<->NCHW transposes around a convolution become reshapes, and that optimizer's
rewrite of them depends on Python's string-hash order (PYTHONHASHSEED, different in
every process and pytest-xdist worker): under some seeds it drops the Squeeze after
the last convolution and the graph returns (1, N, H, W, 1) for (N, H, W, 1).
Without it the shapes are computed at run time, the same for every seed; every
converted model's output ranks are checked against its spec.

`to_fp16` converts weights and compute to float16 with onnxruntime's converter,
keeping float32 inputs/outputs and keeping in float32 the ops that lose accuracy
in half precision (resizing, softmax, normalization statistics, exp/log).
"""

from __future__ import annotations

import contextlib
import logging

from kzoo.errors import KzooError

DEFAULT_OPSET = 17
FP32_OPS = ("Resize", "Upsample", "Softmax", "ReduceMean", "Pow", "Sqrt", "Exp", "Log",
            "InstanceNormalization", "LayerNormalization")


def max_opset():
    from tf2onnx import constants

    return max(constants.OPSET_TO_IR_VERSION)


def convert(part, spec, path, *, opset=DEFAULT_OPSET):
    """Write `part` as ONNX at `path` (fp32); returns the opset used."""
    import tensorflow as tf

    from kzoo.export.saved_model import serving_fn, tensor_specs

    if not 7 <= opset <= max_opset():
        raise KzooError(f"--opset {opset} is not supported by tf2onnx (7..{max_opset()})")
    specs = tensor_specs(spec)
    fn = tf.function(serving_fn(part, spec), input_signature=specs)
    with _quiet(), _without_optimizers(UNSAFE_OPTIMIZERS):
        import tf2onnx

        model, _ = tf2onnx.convert.from_function(fn, input_signature=specs, opset=opset)
    _name_dims(model, spec)
    _check_converted(model, spec)
    save(model, path)
    return opset


def save(model, path):
    import onnx

    from kzoo.io import atomic_path

    with atomic_path(path, suffix=".onnx") as tmp:
        onnx.save(model, str(tmp))


def _check_converted(model, spec):
    """tf2onnx keeps going past ops it cannot convert; refuse such a model, and one whose
    outputs do not have the ranks the spec declares."""
    import onnx

    std = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}
    bad = sorted({n.op_type for n in model.graph.node if n.domain not in std})
    if bad:
        raise KzooError(f"tf2onnx could not convert these ops: {', '.join(bad)}")
    onnx.checker.check_model(model)
    ranks = {e["name"]: len(e["shape"]) for e in spec["outputs"]}
    for out in model.graph.output:
        rank = len(out.type.tensor_type.shape.dim)
        if out.name in ranks and rank != ranks[out.name]:
            raise KzooError(f"tf2onnx converted output {out.name!r} with rank {rank}, not "
                            f"{ranks[out.name]}")


UNSAFE_OPTIMIZERS = ("reshape_optimizer",)


@contextlib.contextmanager
def _without_optimizers(names):
    """Run tf2onnx without the graph optimizers `names` (see module docstring)."""
    from tf2onnx import optimizer

    registry = optimizer._optimizers  # tf2onnx's ordered {name: class}, no public switch
    saved = dict(registry)
    for name in names:
        registry.pop(name, None)
    try:
        yield
    finally:
        registry.clear()
        registry.update(saved)


def _name_dims(model, spec):
    """Symbolic names for the dynamic dims: `batch` everywhere, `height`/`width` on images."""
    entries = {e["name"]: e for e in spec["inputs"] + spec["outputs"]}
    values = [(v, True) for v in model.graph.input] + [(v, False) for v in model.graph.output]
    for value, is_input in values:
        dims = value.type.tensor_type.shape.dim
        entry = entries.get(value.name)
        if not dims or entry is None:
            continue
        dims[0].dim_param = "batch"
        if is_input and entry["role"] == "image" and len(dims) == 4:
            for i, label in ((1, "height"), (2, "width")):
                if entry["shape"][i] is None:
                    dims[i].dim_param = label


def to_fp16(src, dst):
    """Convert the fp32 ONNX model at `src` to fp16 at `dst` (fp32 I/O, see FP32_OPS)."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(src))
    with _quiet():
        half = convert_float_to_float16(model, keep_io_types=True,
                                        op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(FP32_OPS))
    save(half, dst)
    return list(FP32_OPS)


@contextlib.contextmanager
def _quiet():
    """tf2onnx logs every step at INFO; keep warnings only."""
    loggers = [logging.getLogger(n) for n in ("tf2onnx", "onnxruntime")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
