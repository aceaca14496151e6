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
converted model's output ranks are checked against its spec. A dilated convolution
with SAME padding on inputs of unknown size, which TF writes as SpaceToBatchND - Conv2D
- BatchToSpaceND and tf2onnx leaves as a SpaceToDepth chain, is converted as one dilated
Conv (`_same_dilated_conv`, a tf2onnx rewriter). Two more rewriters: Keras' nearest
`UpSampling2D` (two `tf.repeat`s, ~30 ops in tf2onnx's form) becomes one nearest `Resize`
(`_nearest_upsampling`), and every float `tf.where` one `Where` (`_select_as_where`) where
tf2onnx writes six arithmetic ops that turn an inf in the branch not taken into NaN;
and an Add of a scalar constant a one-element vector (`_scalar_adds`), on which tf2onnx's
transpose optimizer would otherwise fail (`x + 0` goes).

`clean` then rewrites what tf2onnx leaves for CPU inference: a Keras PReLU
(relu(x) - alpha * relu(-x), five ops) becomes one `PRelu`, kzoo's pixel shuffle
(reshape - transpose - reshape on NHWC) becomes one `DepthToSpace` (mode DCR, the
channel order of `tf.nn.depth_to_space`), Keras' group and instance norm (a
15-op moments chain on NHWC) become `InstanceNormalization` on NCHW (`_group_norm`),
and tf2onnx's graph optimizers run again, so that the NHWC<->NCHW transposes around
those ops cancel: a fully convolutional network keeps one transpose after its input
and one before its output. A `Pow` with a non-integer constant exponent (the sRGB and
Lab curves of `kzoo.layers.color`) becomes Exp(Log(x) * p), which onnxruntime vectorises
(`_pow_as_exp`; 2x faster, `benchmarks/kernels.py`). Last, a softmax that tf2onnx's transpose optimizer left on NCHW's channel
axis moves after the output transpose, to the last axis (`_softmax_last`). The
exporter's parity check runs on the cleaned graph.

`to_fp16` converts weights and compute to float16 with onnxruntime's converter,
keeping float32 inputs/outputs and keeping in float32 the ops that lose accuracy
in half precision (resizing, softmax, normalization statistics, exp/log).
`to_int8` quantizes statically to QDQ form (int8 weights per output channel,
uint8 activations with ranges calibrated on given inputs) with onnxruntime's
quantizer; its quality is measured by the caller on inputs it did not calibrate on.
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

        rewriters = [_same_dilated_conv, _nearest_upsampling, _select_as_where, _scalar_adds]
        model, _ = tf2onnx.convert.from_function(fn, input_signature=specs, opset=opset,
                                                 custom_rewriter=rewriters)
    model = clean(model)
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


def _same_dilated_conv(g, ops):
    """tf2onnx rewriter: SpaceToBatchND - Conv2D(VALID) - BatchToSpaceND, TF's form of a dilated
    2-D convolution with SAME padding on inputs of unknown size, -> one Conv2D with dilations and
    explicit padding.

    tf2onnx's own `rewrite_conv_dilations` leaves this case (run-time paddings) to an ONNX
    Pad - Transpose - SpaceToDepth - Conv - DepthToSpace - Transpose - Slice chain that
    runs the convolution on block^2 times the batch (DeepLab's atrous ASPP). At stride 1, SAME
    padding does not depend on the input size: d * (k - 1) in all, floor half before --
    checked against the constant end padding TF computes its run-time padding from.
    """
    import numpy as np
    from tf2onnx.graph_matcher import GraphMatcher, OpTypePattern

    pattern = OpTypePattern("BatchToSpaceND", name="batch_to_space", inputs=[
        OpTypePattern("Conv2D", name="conv", inputs=[
            OpTypePattern("SpaceToBatchND", name="space_to_batch", inputs=[
                OpTypePattern("*"), OpTypePattern("Const|ConstV2"), OpTypePattern("*")]),
            OpTypePattern("*")]),
        OpTypePattern("Const|ConstV2"), OpTypePattern("*")])
    for match in list(GraphMatcher(pattern, allow_reorder=False).match_ops(ops)):
        s2b, conv, b2s = (match.get_op(k) for k in ("space_to_batch", "conv", "batch_to_space"))
        block = s2b.inputs[1].get_tensor_value(as_list=True)
        kernel = g.get_shape(conv.input[1])
        if (block != b2s.inputs[1].get_tensor_value(as_list=True) or len(block) != 2
                or conv.get_attr_value("padding") != b"VALID"
                or conv.get_attr_value("data_format", b"NHWC") != b"NHWC"
                or list(conv.get_attr_value("strides")) != [1, 1, 1, 1]
                or kernel is None or any(k is None or k < 1 for k in kernel[:2])
                or s2b.inputs[2].is_const()):
            continue
        total = [d * (k - 1) for d, k in zip(block, kernel[:2])]
        start, end = [t // 2 for t in total], [t - t // 2 for t in total]
        node = s2b.inputs[2]  # TF: stack([start, end + (block - padded size % block) % block])
        while node.type in ("Concat", "ConcatV2", "Pack", "ExpandDims", "Identity", "StridedSlice"):
            rest = [i for i in node.inputs if not i.is_const()]
            if not rest:
                break
            node = rest[0]
        if node.type not in ("Add", "AddV2"):
            continue
        const = [i for i in node.inputs if i.is_const()]
        if len(const) != 1 or [int(v) for v in np.ravel(const[0].get_tensor_value(as_list=False))] != end:
            continue
        g.replace_inputs(conv, [s2b.input[0], conv.input[1]])
        g.copy_shape(b2s.output[0], conv.output[0])
        g.replace_all_inputs(b2s.output[0], conv.output[0])
        conv.set_attr("dilations", [1] + block + [1])
        conv.set_attr("padding", "EXPLICIT")
        conv.set_attr("explicit_paddings", [0, 0, start[0], end[0], start[1], end[1], 0, 0])
    return g.get_nodes()


def _repeat(g, node):
    """(x, axis, r) if `node` is the Reshape of TF's `tf.repeat(x, r, axis)` with a constant
    scalar `r` on a rank-4 NHWC `x` along height or width (axis 1 or 2) -- Reshape(Tile(
    ExpandDims(x, axis + 1), multiples 1 but r at axis + 1), shape) -- else None."""
    import numpy as np

    if node.type != "Reshape":
        return None
    tile = node.inputs[0]
    if tile is None or tile.type != "Tile" or not tile.inputs[1].is_const():
        return None
    expand = tile.inputs[0]
    if expand is None or expand.type != "ExpandDims" or not expand.inputs[1].is_const():
        return None
    multiples = [int(v) for v in np.ravel(tile.inputs[1].get_tensor_value(as_list=False))]
    dim = int(np.ravel(expand.inputs[1].get_tensor_value(as_list=False))[0])
    x = expand.input[0]
    shape = g.get_shape(x)
    if shape is None or len(shape) != 4 or len(multiples) != 5:
        return None
    dim = dim + 5 if dim < 0 else dim
    if dim not in (2, 3) or any(m != 1 for i, m in enumerate(multiples) if i != dim) or multiples[dim] < 2:
        return None
    out_shape = g.get_shape(node.output[0])
    if out_shape is not None and (len(out_shape) != 4 or out_shape[3] != shape[3]):
        return None
    return x, dim - 1, multiples[dim]


def _nearest_upsampling(g, ops):
    """tf2onnx rewriter: TF's `tf.repeat` along height and/or width (Keras' nearest
    `UpSampling2D`, `kzoo.layers.conv.upsample_conv(upsample="resize")`) -> one ONNX
    nearest `Resize` on NCHW between transposes, which tf2onnx's transpose optimizer then
    cancels against the convolutions'.

    tf2onnx converts each repeat as Unsqueeze - Tile - Reshape with a run-time shape
    computation of about a dozen ops, and its transpose optimizer leaves a transpose
    around each on NCHW graphs: 2 x ~16 ops per upsampling. Resize with scales r and
    "asymmetric" coordinates, "floor" rounding reads output pixel i from input pixel
    floor(i / r): exactly the repeat. Needs opset 11 (Resize's roi/scales inputs).
    """
    import numpy as np

    if g.opset < 11:
        return ops
    merged = set()
    for node in reversed(list(ops)):  # outputs first, so that height + width merge into one
        found = None if node.name in merged else _repeat(g, node)
        if found is None:
            continue
        x, axis, r = found
        scales = [1.0, 1.0, 1.0, 1.0]  # NCHW
        scales[axis + 1] = float(r)
        inner = _repeat(g, g.get_node_by_output(x)) if g.get_node_by_output(x) is not None else None
        others = [c for c in g.find_output_consumers(x) if c.type != "Shape"]  # Shape: the outer's size
        if inner is not None and inner[1] != axis and len(others) == 1:
            merged.add(g.get_node_by_output(x).name)  # left unused, deleted by tf2onnx
            x, axis2, r2 = inner  # repeat along height then width (or back): one Resize
            scales[axis2 + 1] = float(r2)
        name = node.name
        to_nchw = g.make_node("Transpose", [x], attr={"perm": [0, 3, 1, 2]}, name=f"{name}/nchw")
        roi = g.make_const(f"{name}/roi", np.array([], np.float32)).output[0]
        scale = g.make_const(f"{name}/scales", np.array(scales, np.float32)).output[0]
        resize = g.make_node("Resize", [to_nchw.output[0], roi, scale], name=f"{name}/resize",
                             attr={"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                                   "nearest_mode": "floor"})
        out_shapes, out_dtypes = [g.get_shape(node.output[0])], [g.get_dtype(node.output[0])]
        g.remove_node(node.name)
        g.make_node("Transpose", [resize.output[0]], attr={"perm": [0, 2, 3, 1]}, name=f"{name}/nhwc",
                    outputs=list(node.output), shapes=out_shapes, dtypes=out_dtypes)
    return g.get_nodes()


def _scalar_adds(g, ops):
    """tf2onnx rewriter: an Add of a one-element constant to a tensor of known rank: `x + 0`
    (a Keras `Rescaling` without offset computes x * scale + 0) becomes an Identity, which
    tf2onnx removes; any other scalar constant becomes a one-element vector (the same
    broadcast).

    tf2onnx's transpose optimizer merges a constant added after a Conv into the Conv's bias
    and fails on a rank-0 constant (`max()` of its empty shape): "Failed to apply
    optimize_transpose", and the NHWC<->NCHW transposes stay until the second optimizer
    pass in `clean` (Real-ESRGAN's output, mapped from [0, 1] to [-1, 1], is conv_last *
    2 + -1).
    """
    import numpy as np

    for node in ops:
        if node.type not in ("Add", "AddV2") or len(node.input) != 2:
            continue
        for i in (0, 1):
            const, other = node.inputs[i], node.input[1 - i]
            if const is None or not const.is_const():
                continue
            value = np.asarray(const.get_tensor_value(as_list=False))
            shape = g.get_shape(other)
            if value.size != 1 or not shape or value.ndim > len(shape):
                continue
            if float(value.ravel()[0]) == 0.0:
                g.replace_inputs(node, [other])
                node.type = "Identity"
            elif value.ndim == 0:
                vector = g.make_const(f"{node.name}/scalar_as_vector", value.reshape(1))
                g.replace_input(node, node.input[i], vector.output[0], i)
            break
    return ops


def _select_as_where(g, ops):
    """tf2onnx rewriter: every float Select/SelectV2 (`tf.where`) becomes one ONNX `Where`.

    tf2onnx otherwise writes a float select as Cast(c) * x + Cast(Not(c)) * y, six ops
    that also turn an inf or NaN in the branch not taken into NaN (inf * 0); it uses
    `Where` only for the selects it marks `handles_nan`, which this marks all of.
    """
    for node in ops:
        if node.type in ("Select", "SelectV2"):
            node.set_attr("handles_nan", True)
    return ops


def _pow_as_exp(graph):
    """Pow(x, p) with a constant scalar p that is not an integer -> Exp(Log(x) * p); returns
    how many. onnxruntime computes such a Pow element by element with `std::pow`, and Exp
    and Log vectorised. The same value wherever Pow is defined: x < 0 gives NaN both ways
    (p is not an integer), x = 0 gives 0 (p > 0) or inf (p < 0); a relative difference of
    about |p log x| float32 ulps (the sRGB and CIE Lab curves of `kzoo.layers.color`)."""
    import numpy as np
    from onnx import helper, numpy_helper

    made = 0
    for i, node in enumerate(list(graph.node)):
        p = _constant(graph, node.input[1]) if node.op_type == "Pow" else None
        if p is None or p.size != 1 or p.dtype != np.float32 or float(p.item()).is_integer():
            continue
        name = node.name or node.output[0]
        factor = numpy_helper.from_array(p.reshape(()).astype(np.float32), f"{name}/exponent")
        graph.initializer.append(factor)
        new = [helper.make_node("Log", [node.input[0]], [f"{name}/log"], name=f"{name}/log"),
               helper.make_node("Mul", [f"{name}/log", factor.name], [f"{name}/scaled"], name=f"{name}/mul"),
               helper.make_node("Exp", [f"{name}/scaled"], list(node.output), name=f"{name}/exp")]
        graph.node.remove(node)
        for k, n in enumerate(new):
            graph.node.insert(i + made * 2 + k, n)
        made += 1
    return made


def clean(model):
    """`model` (an ONNX ModelProto from tf2onnx) with PReLU as `PRelu`, pixel shuffle as
    `DepthToSpace`, group/instance norm as `InstanceNormalization`, the transposes this
    frees folded, and fractional powers as Exp(Log) (see module docstring)."""
    from tf2onnx import optimizer
    from tf2onnx.graph import GraphUtil

    graph = model.graph
    changed = _fuse_prelu(graph) + _depth_to_space(graph) + _group_norm(model)
    _pow_as_exp(graph)
    if changed:
        _prune(graph)
        safe = {k: v for k, v in optimizer._optimizers.items() if k not in UNSAFE_OPTIMIZERS}
        with _quiet():
            model = GraphUtil.optimize_model_proto(model, catch_errors=False, optimizers=safe)
    _softmax_last(model)  # after tf2onnx's transpose optimizer, which moves it to axis 1
    return model


def _softmax_last(model):
    """Softmax(x, axis=1) - Transpose(NCHW -> NHWC) -> Transpose - Softmax(axis=-1); returns
    how many. tf2onnx's transpose optimizer pushes the output transpose of a segmentation
    network above its softmax, leaving it on the channel axis of NCHW, which onnxruntime
    computes by transposing to the last axis and back: measured 4x slower on a
    (16, 5, 128, 128) tensor than transposing once and normalising the contiguous last axis.
    """
    from onnx import helper

    if max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0) < 13:
        return 0  # before opset 13 Softmax flattens the axes from `axis` on
    graph = model.graph
    consumers = {}
    for node in graph.node:
        for name in dict.fromkeys(node.input):
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    made = 0
    for node in list(graph.node):
        axis = [a.i for a in node.attribute if a.name == "axis"]
        users = consumers.get(node.output[0], []) if node.op_type == "Softmax" else []
        if (axis != [1] or len(users) != 1 or users[0].op_type != "Transpose" or node.output[0] in outputs
                or [list(a.ints) for a in users[0].attribute if a.name == "perm"] != [[0, 2, 3, 1]]):
            continue
        trans, name = users[0], node.name or node.output[0]
        i = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.remove(trans)
        graph.node.insert(i, helper.make_node("Transpose", [node.input[0]], [f"{name}/nhwc"],
                                              perm=[0, 2, 3, 1], name=f"{name}/nhwc"))
        graph.node.insert(i + 1, helper.make_node("Softmax", [f"{name}/nhwc"], list(trans.output),
                                                  axis=-1, name=name))
        made += 1
    return made


def _constant(graph, name):
    """The value of initializer/Constant `name` as a NumPy array, or None."""
    from onnx import numpy_helper

    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    return None


def _producers(graph):
    return {out: node for node in graph.node for out in node.output}


def _fuse_prelu(graph):
    """Add(Relu(x), Mul(Relu(Neg(x)), -alpha)) -> PRelu(x, alpha); returns how many."""
    from onnx import helper, numpy_helper

    made = 0
    for i, node in enumerate(list(graph.node)):
        producer = _producers(graph)
        if node.op_type != "Add" or len(node.input) != 2:
            continue
        a, b = (producer.get(n) for n in node.input)
        if a is None or b is None:
            continue
        if a.op_type == "Mul":
            a, b = b, a
        if a.op_type != "Relu" or b.op_type != "Mul":
            continue
        x = a.input[0]
        for u_name, c_name in ((b.input[0], b.input[1]), (b.input[1], b.input[0])):
            u, c = producer.get(u_name), _constant(graph, c_name)
            neg = producer.get(u.input[0]) if u is not None and u.op_type == "Relu" else None
            if c is not None and neg is not None and neg.op_type == "Neg" and neg.input[0] == x:
                break
        else:
            continue
        slope = numpy_helper.from_array((-c).astype(c.dtype), f"{node.name}/prelu_slope")
        graph.initializer.append(slope)
        fused = helper.make_node("PRelu", [x, slope.name], list(node.output), name=f"{node.name}/prelu")
        graph.node.remove(node)
        graph.node.insert(i, fused)
        made += 1
    return made


def _depth_to_space(graph):
    """Reshape(x, [n, h, w, r, r, c]) - Transpose(0, 1, 3, 2, 4, 5) - Reshape(n, h*r, w*r, c) on
    NHWC `x` (`kzoo.layers.PixelShuffle`) -> Transpose - DepthToSpace(r, DCR) - Transpose;
    returns how many."""
    from onnx import helper

    made = 0
    for i, node in enumerate(list(graph.node)):
        producer = _producers(graph)
        if node.op_type != "Reshape":
            continue
        trans = producer.get(node.input[0])
        if trans is None or trans.op_type != "Transpose" or [
                a.ints for a in trans.attribute if a.name == "perm"] != [[0, 1, 3, 2, 4, 5]]:
            continue
        first = producer.get(trans.input[0])
        if first is None or first.op_type != "Reshape":
            continue
        shape = producer.get(first.input[1])
        while shape is not None and shape.op_type == "Cast":
            shape = producer.get(shape.input[0])
        if shape is None or shape.op_type != "Concat" or len(shape.input) < 3:
            continue
        tail = [_constant(graph, n) for n in shape.input[-3:]]
        if any(t is None or t.size != 1 for t in tail) or tail[0].item() != tail[1].item():
            continue
        r, x, name = int(tail[0].item()), first.input[0], node.name or node.output[0]
        new = [helper.make_node("Transpose", [x], [f"{name}/nchw"], perm=[0, 3, 1, 2], name=f"{name}/nchw"),
               helper.make_node("DepthToSpace", [f"{name}/nchw"], [f"{name}/d2s"], blocksize=r,
                                mode="DCR", name=f"{name}/d2s"),
               helper.make_node("Transpose", [f"{name}/d2s"], list(node.output), perm=[0, 2, 3, 1],
                                name=f"{name}/nhwc")]
        graph.node.remove(node)
        for k, n in enumerate(new):
            graph.node.insert(i + k, n)
        made += 1
    return made


def _shape_tail(graph, producer, name, k):
    """The last `k` entries of the shape tensor `name` (a constant, or a Concat whose last
    `k` inputs are one-element constants, through Casts) as ints, or None."""
    value = _constant(graph, name)
    if value is not None:
        return [int(v) for v in value.ravel()[-k:]] if value.size >= k else None
    node = producer.get(name)
    while node is not None and node.op_type == "Cast":
        node = producer.get(node.input[0])
    if node is None or node.op_type != "Concat" or len(node.input) < k:
        return None
    tail = [_constant(graph, n) for n in node.input[-k:]]
    if any(t is None or t.size != 1 for t in tail):
        return None
    return [int(t.item()) for t in tail]


def _reduce_axes(graph, node):
    """The axes of a keepdims ReduceMean (attribute before opset 18, input after), or None."""
    if node.op_type != "ReduceMean" or any(a.name == "keepdims" and a.i == 0 for a in node.attribute):
        return None
    for a in node.attribute:
        if a.name == "axes":
            return sorted(a.ints)
    axes = _constant(graph, node.input[1]) if len(node.input) > 1 else None
    return None if axes is None else sorted(int(v) for v in axes.ravel())


def _group_norm(model):
    """Keras' GroupNormalization on NHWC `x` -> InstanceNormalization on NCHW; returns how many.

    Keras (TF backend) exports a group norm with G groups as: r = Reshape(x, [N, H, W, G, C/G]),
    mean = ReduceMean(r, [1, 2, 4]), var = ReduceMean((r - mean)^2, [1, 2, 4]),
    inv = 1 / Sqrt(var + eps) [* gamma], y = r * inv + (-mean * inv [+ beta]), Reshape(y, x's
    shape) -- about 15 ops on the whole tensor, in NHWC. Instance norm is the case C/G = 1
    (`kzoo.layers.conv`'s "instance": groups=-1, no gamma/beta). The match becomes
    Transpose(x, NCHW) - InstanceNormalization(scale=gamma, bias=beta) - Transpose(NHWC), the
    transposes left to cancel against the convolutions'; for C/G > 1, the decomposition of
    ONNX's own GroupNormalization function (Reshape to [N, G, -1] - InstanceNormalization with
    unit scale - Reshape back - Mul gamma - Add beta per channel). onnxruntime 1.32 has no CPU
    kernel of GroupNormalization (opset 18 or 21): it inlines that function's body, a
    ReduceMean/Sub/Mul chain like Keras'; InstanceNormalization is one kernel.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    lengths = {v.name: [d.dim_value or None for d in v.type.tensor_type.shape.dim]
               for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    producer = _producers(graph)
    consumers = {}
    for node in graph.node:
        for name in dict.fromkeys(node.input):  # Mul(d, d) is one user of d
            consumers.setdefault(name, []).append(node)

    def only(name, op):
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op else None

    def other(node, name):
        return node.input[1] if node.input[0] == name else node.input[0]

    def const_of(node, name):
        """The constant operand of binary `node` whose other operand is `name`, or None."""
        return _constant(graph, other(node, name)) if name in node.input else None

    matches = []
    for mean in [n for n in graph.node if _reduce_axes(graph, n) == [1, 2, 4]]:
        r = mean.input[0]
        split = producer.get(r)
        if split is None or split.op_type != "Reshape":
            continue
        users = consumers.get(mean.output[0], [])
        sub = next((u for u in users if u.op_type == "Sub" and list(u.input) == [r, mean.output[0]]), None)
        neg = next((u for u in users if u.op_type == "Neg"), None)
        if sub is None or neg is None or len(users) != 2:
            continue
        square = only(sub.output[0], "Mul")
        if square is None or list(square.input) != [sub.output[0]] * 2:
            continue
        var = only(square.output[0], "ReduceMean")
        if var is None or _reduce_axes(graph, var) != [1, 2, 4]:
            continue
        add_eps = only(var.output[0], "Add")
        eps = None if add_eps is None else const_of(add_eps, var.output[0])
        if eps is None or eps.size != 1:
            continue
        sqrt = only(add_eps.output[0], "Sqrt")
        recip = None if sqrt is None else only(sqrt.output[0], "Reciprocal")
        if recip is None:
            continue
        inv, gamma = recip.output[0], None
        scale = only(inv, "Mul")
        if scale is not None and const_of(scale, inv) is not None:
            inv, gamma = scale.output[0], const_of(scale, inv)
        users = consumers.get(inv, [])
        mul_x = next((u for u in users if u.op_type == "Mul" and r in u.input and other(u, r) == inv), None)
        mul_m = next((u for u in users if u.op_type == "Mul" and neg.output[0] in u.input), None)
        if mul_x is None or mul_m is None or len(users) != 2 or only(neg.output[0], "Mul") is not mul_m:
            continue
        shift, beta = mul_m.output[0], None
        bias = only(shift, "Add")
        if bias is not None and const_of(bias, shift) is not None:
            shift, beta = bias.output[0], const_of(bias, shift)
        total = only(mul_x.output[0], "Add")
        if total is None or other(total, mul_x.output[0]) != shift or only(shift, "Add") is not total:
            continue
        merge = only(total.output[0], "Reshape")
        dims = _shape_tail(graph, producer, split.input[1], 2)
        if merge is None or dims is None or min(dims) < 1:
            continue
        groups, size = dims
        channels = groups * size
        if any(v is not None and v.size not in (1, channels) for v in (gamma, beta)):
            continue
        # tf2onnx merges the closing Reshape (to x's shape) with a Reshape that follows it (e.g. to
        # [N, H*W, C] before attention): the result is x's shape only if it has rank 4 and C last
        back = _shape_tail(graph, producer, merge.input[1], 1)
        target = _constant(graph, merge.input[1])
        length = [target.size] if target is not None else lengths.get(merge.input[1])
        same = length == [4] and back == [channels]
        matches.append((split.input[0], merge, same, float(eps.item()), groups, channels, gamma, beta))

    for x, merge, same, eps, groups, channels, gamma, beta in matches:
        name = merge.name or merge.output[0]

        def const(suffix, value):
            tensor = numpy_helper.from_array(np.asarray(value), f"{name}/const_{suffix}")
            graph.initializer.append(tensor)
            return tensor.name

        def per_channel(value, fill):
            return np.broadcast_to(np.float32(fill) if value is None else value.ravel(), (channels,)).astype(np.float32)

        nchw, nodes = f"{name}/nchw", []
        nodes.append(helper.make_node("Transpose", [x], [nchw], perm=[0, 3, 1, 2], name=nchw))
        if groups == channels:  # instance norm
            nodes.append(helper.make_node(
                "InstanceNormalization", [nchw, const("scale", per_channel(gamma, 1)),
                                          const("bias", per_channel(beta, 0))],
                [f"{name}/norm"], epsilon=eps, name=f"{name}/norm"))
        else:
            nodes += [
                helper.make_node("Reshape", [nchw, const("groups_shape", np.array([0, groups, -1], np.int64))],
                                 [f"{name}/groups"], name=f"{name}/groups"),
                helper.make_node("InstanceNormalization", [f"{name}/groups", const("unit", np.ones(groups, np.float32)),
                                                           const("zero", np.zeros(groups, np.float32))],
                                 [f"{name}/group_norm"], epsilon=eps, name=f"{name}/group_norm"),
                helper.make_node("Shape", [nchw], [f"{name}/shape"], name=f"{name}/shape"),
                helper.make_node("Reshape", [f"{name}/group_norm", f"{name}/shape"], [f"{name}/norm"],
                                 name=f"{name}/ungroup")]
            for op, value, fill in (("Mul", gamma, 1), ("Add", beta, 0)):
                if value is not None:
                    src = nodes[-1].output[0]
                    nodes.append(helper.make_node(
                        op, [src, const(op.lower(), per_channel(value, fill).reshape(1, channels, 1, 1))],
                        [f"{name}/{op.lower()}"], name=f"{name}/{op.lower()}"))
        nhwc = list(merge.output) if same else [f"{name}/nhwc"]
        nodes.append(helper.make_node("Transpose", [nodes[-1].output[0]], nhwc, perm=[0, 2, 3, 1],
                                      name=f"{name}/nhwc"))
        if not same:  # NHWC has the memory order of [N, H, W, G, C/G]: reshape it as before
            nodes.append(helper.make_node("Reshape", [nhwc[0], merge.input[1]], list(merge.output),
                                          name=f"{name}/reshape"))
        i = list(graph.node).index(merge)
        graph.node.remove(merge)
        for k, n in enumerate(nodes):
            graph.node.insert(i + k, n)
    return len(matches)


def _prune(graph):
    """Drop the nodes and initializers no graph output depends on."""
    producer = _producers(graph)
    needed, stack = set(), [o.name for o in graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or tuple(node.output) in needed:
            continue
        needed.add(tuple(node.output))
        stack += [n for n in node.input if n]
    keep = [n for n in graph.node if tuple(n.output) in needed]
    del graph.node[:]
    graph.node.extend(keep)
    used = {n for node in graph.node for n in node.input}
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)


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


def to_int8(src, dst, calibration):
    """Quantize the fp32 ONNX model at `src` to int8 QDQ at `dst` (float32 I/O).

    Args:
        src: path of the fp32 model.
        dst: path to write.
        calibration: list of feed dicts ({input name: array}) whose activation ranges
            (min/max) set the activation scales -- the model's own data, not the inputs
            its quality is judged on.
    """
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise KzooError("int8 quantization needs calibration inputs")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter(calibration)

        def get_next(self):
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory() as tmp, _quiet():
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        out = Path(tmp) / "int8.onnx"
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
        import onnx

        save(onnx.load(str(out)), dst)


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
