"""TF Serving's wire formats <-> NumPy: REST JSON (row `instances` / columnar `inputs`,
`{"b64": ...}` binary values), gRPC `TensorProto`, and signature metadata.

Follows TF Serving's REST API (https://www.tensorflow.org/tfx/serving/api_rest):
a request is `{"signature_name"?, "instances": [...]}` or `{"signature_name"?,
"inputs": ...}`; the answer is `{"predictions": [...]}` (row form: one entry per
instance, an object of named outputs when there are several) or `{"outputs": ...}`
(columnar). String tensors travel as `{"b64": "<base64>"}`. An output whose name
ends in `_bytes` is always base64-encoded, as TF Serving does; other string
outputs are sent as text when they are UTF-8 and base64-encoded otherwise (TF
Serving would write the raw bytes into the JSON).

Every tensor's declared shape is checked against its signature entry and the
request's memory budget (`max_bytes`) before an array is allocated (`check_declared`);
JSON booleans are refused for numeric inputs, and JSON nested deeper than Python's
stack answers 400, as TF Serving's parser does.

Empty axes: a JSON list stops at an empty one (NumPy's `tolist()` of a (1, 0, 16, 16, 1)
array is `[[]]`), and TF Serving's parser reads the shape up to there, (1, 0)
(tensorflow/serving tensorflow_serving/util/json_tensor.cc, `GetDenseTensorShape`: "if
(size > 0)" it descends), which a rank-5 signature input then refuses. kzoo serve completes
such a shape from the signature when every declared dimension after the empty axis is
fixed (`complete_empty`): `[[]]` for a (batch, any, 16, 16, 1) input is (1, 0, 16, 16, 1),
e.g. a deterministic DDIM request's `step_noise` with K = 0 (kzoo/export/sampler.py). That
request works on kzoo serve only; the portable spelling, accepted by both, is one draw of
zeros.

This module needs NumPy only; `tensor_proto`/`from_tensor_proto` take the
protobuf classes from the `tensorflow-serving-api` package when called.
"""

from __future__ import annotations

import base64
import binascii
import json

import numpy as np

from kzoo.serving.errors import ServingError

# TensorFlow DataType enum values (tensorflow/core/framework/types.proto).
DT = {"float32": 1, "float64": 2, "int32": 3, "uint8": 4, "int16": 5, "int8": 6, "string": 7,
      "int64": 9, "bool": 10, "uint16": 17, "float16": 19, "uint32": 22, "uint64": 23}
DT_NAME = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE", "int32": "DT_INT32", "uint8": "DT_UINT8",
           "int16": "DT_INT16", "int8": "DT_INT8", "string": "DT_STRING", "int64": "DT_INT64",
           "bool": "DT_BOOL", "uint16": "DT_UINT16", "float16": "DT_HALF", "uint32": "DT_UINT32",
           "uint64": "DT_UINT64"}
DTYPE_OF = {v: k for k, v in DT.items()}
DTYPE_OF_NAME = {v: k for k, v in DT_NAME.items()}
# Which repeated field of TensorProto holds each dtype's values when tensor_content is empty.
VAL_FIELD = {"float32": "float_val", "float64": "double_val", "int32": "int_val", "uint8": "int_val",
             "int16": "int_val", "int8": "int_val", "uint16": "int_val", "int64": "int64_val",
             "bool": "bool_val", "float16": "half_val", "uint32": "uint32_val", "uint64": "uint64_val",
             "string": "string_val"}
PREDICT_METHOD = "tensorflow/serving/predict"


# --- REST ---------------------------------------------------------------------
def parse_json(body):
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ServingError(f"JSON Parse error: {err}") from None
    except RecursionError:
        raise ServingError("JSON Parse error: The document is nested too deeply") from None
    if not isinstance(obj, dict):
        raise ServingError("JSON Value is not an object: the request must be {\"instances\": [...]} "
                           "or {\"inputs\": ...}")
    return obj


def parse_predict(body, signatures, max_bytes=None):
    """A REST predict body -> (signature name, {input: array}, "row" | "columnar").

    `signatures` maps a signature name to {"inputs": [kzoo.json entries], ...};
    `max_bytes` bounds the decoded size of all inputs together.
    """
    obj = parse_json(body)
    budget = Budget(max_bytes, booleans=b"true" in body or b"false" in body)
    sig_name = obj.get("signature_name") or "serving_default"
    if not isinstance(sig_name, str):
        raise ServingError("'signature_name' must be a string")
    if sig_name not in signatures:
        raise ServingError(f"Serving signature name: \"{sig_name}\" not found in signature def")
    inputs = signatures[sig_name]["inputs"]
    has_rows, has_cols = "instances" in obj, "inputs" in obj
    if has_rows == has_cols:
        raise ServingError("Missing 'inputs' or 'instances' key" if not has_rows else
                           "Not formatted correctly expecting only one of 'inputs' or 'instances' keys")
    if has_rows:
        return sig_name, _rows(obj["instances"], inputs, budget), "row"
    return sig_name, _columns(obj["inputs"], inputs, budget), "columnar"


class Budget:
    """The bytes one request may still allocate for its tensors (None: no limit);
    `booleans`: whether the JSON body holds `true`/`false` at all (only then are
    numeric inputs searched for booleans)."""

    def __init__(self, max_bytes=None, booleans=True):
        self.max_bytes, self.left, self.booleans = max_bytes, max_bytes, booleans

    def take(self, nbytes, where):
        if self.left is None:
            return
        if nbytes > self.left:
            raise ServingError(f"{where} needs {nbytes} bytes; a request may use at most {self.max_bytes} bytes "
                               "for its tensors")
        self.left -= nbytes


def expected(entry):
    dims = ["batch"] + ["any" if d is None else str(d) for d in entry["shape"][1:]]
    return f"{entry['name']}: {entry['dtype']} of shape ({', '.join(dims)})"


def check_declared(shape, dtype, where, entry=None, budget=None):
    """Refuse a tensor whose declared `shape` does not fit its signature `entry` or the
    request's `budget` -- before anything of that size is allocated."""
    shape = tuple(int(d) for d in shape)
    if entry is not None:
        want = entry["shape"]
        if len(shape) != len(want) or any(d is not None and d != s for d, s in zip(want[1:], shape[1:])):
            raise ServingError(f"{where} has shape {shape}; expected {expected(entry)}")
    if budget is not None:
        n = 1
        for d in shape:
            n *= d
        budget.take(n * (8 if dtype == "string" else np.dtype(dtype).itemsize), f"{where} of shape {shape}")
    return shape


def _is_b64(v):
    return isinstance(v, dict) and set(v) == {"b64"}


def _rows(instances, inputs, budget=None):
    if not isinstance(instances, list) or not instances:
        raise ServingError("'instances' must be a non-empty JSON list, one entry per example")
    names = [e["name"] for e in inputs]
    named = all(isinstance(i, dict) and not _is_b64(i) for i in instances)
    if len(names) > 1 and not named:
        raise ServingError(f"each instance must be an object with the inputs {', '.join(names)}")
    columns = {}
    for k, inst in enumerate(instances):
        if named:
            keys = set(inst)
            if keys != set(names):
                missing, extra = sorted(set(names) - keys), sorted(keys - set(names))
                raise ServingError(f"Failed to process element: {k} of 'instances' list: "
                                   + "; ".join(filter(None, [missing and f"missing input(s) {', '.join(missing)}",
                                                            extra and f"unknown input(s) {', '.join(extra)}"]))
                                   + f" (inputs: {', '.join(names)})")
            for n in names:
                columns.setdefault(n, []).append(inst[n])
        else:
            columns.setdefault(names[0], []).append(inst)
    return {e["name"]: to_array(columns[e["name"]], e, "instances", budget) for e in inputs}


def _columns(value, inputs, budget=None):
    names = [e["name"] for e in inputs]
    if isinstance(value, dict) and not _is_b64(value):
        unknown, missing = sorted(set(value) - set(names)), sorted(set(names) - set(value))
        if unknown or missing:
            raise ServingError("'inputs' " + "; ".join(filter(None, [
                missing and f"is missing {', '.join(missing)}", unknown and f"has unknown {', '.join(unknown)}"]))
                + f" (inputs: {', '.join(names)})")
        return {e["name"]: to_array(value[e["name"]], e, "inputs", budget) for e in inputs}
    if len(names) > 1:
        raise ServingError(f"'inputs' must be an object with the inputs {', '.join(names)}")
    return {names[0]: to_array(value, inputs[0], "inputs", budget)}


def _decode_strings(v, where):
    if isinstance(v, list):
        return [_decode_strings(x, where) for x in v]
    if _is_b64(v):
        try:
            return base64.b64decode(v["b64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise ServingError(f"{where}: 'b64' value is not valid base64") from None
    if isinstance(v, str):
        return v.encode("utf-8")
    raise ServingError(f"{where}: expected a string or {{\"b64\": ...}}, got {json.dumps(v)[:80]}")


def to_array(value, entry, where, budget=None):
    """JSON value (list of per-example values) -> array of the input's dtype, checked
    (shape against `entry`, size against `budget`) before it is built."""
    name, dtype = entry["name"], entry["dtype"]
    where = f"{where}: input {name} ({dtype})"
    shape = check_declared(complete_empty(_shape_of(value, where), entry), dtype, where, entry, budget)
    if dtype == "string":
        decoded = _decode_strings(value, where)
        arr = np.empty(_shape_of(decoded, where), dtype=object)
        arr[...] = decoded
        return arr
    if (budget is None or budget.booleans) and dtype != "bool" and _has_bool(value):
        raise ServingError(f"{where}: JSON Value: true/false Type: Bool is not of expected type: {dtype}")
    try:
        arr = np.asarray(value)
    except ValueError:
        raise ServingError(f"{where}: ragged list: all examples must have the same shape") from None
    if arr.dtype == object:
        raise ServingError(f"{where}: ragged list or mixed values: all examples must have the same shape")
    if arr.dtype.kind not in "biuf":
        raise ServingError(f"{where}: expected numbers, got {arr.dtype.kind == 'U' and 'strings' or arr.dtype}")
    target = np.dtype(dtype)
    if target.kind in "iu" and arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ServingError(f"{where}: expected integers, got fractional numbers")
    if target.kind in "iu" and arr.size:
        info = np.iinfo(target)
        if arr.min() < info.min or arr.max() > info.max:
            raise ServingError(f"{where}: value out of range for {dtype}")
    return arr.astype(target).reshape(shape)


def complete_empty(shape, entry):
    """`shape` as JSON gives it, or, where it ends at an empty axis short of the entry's
    rank and every declared dimension after that axis is fixed, completed with those
    dimensions ((1, 0) -> (1, 0, 16, 16, 1) for a (batch, any, 16, 16, 1) input; see the
    module docstring). Anything else is returned as it is, for `check_declared` to judge."""
    want = entry["shape"]
    if shape and shape[-1] == 0 and len(shape) < len(want) and entry["dtype"] != "string" \
            and all(d is not None for d in want[len(shape):]):
        return (*shape, *(int(d) for d in want[len(shape):]))
    return shape


def _has_bool(value):
    stack = [value]
    while stack:
        v = stack.pop()
        if type(v) is bool:
            return True
        if isinstance(v, list):
            stack.extend(v)
    return False


def _shape_of(v, where):
    shape = []
    while isinstance(v, list):
        shape.append(len(v))
        if not v:
            break
        lengths = {len(x) if isinstance(x, list) else -1 for x in v}
        if len(lengths) > 1:
            raise ServingError(f"{where}: ragged list: all examples must have the same shape")
        v = v[0]
    return tuple(shape)


def _json_value(arr, binary):
    if arr.dtype != object and arr.dtype.kind not in "SU":
        return arr.tolist()

    def enc(x):
        if isinstance(x, str):
            x = x.encode("utf-8")
        if not binary:
            try:
                return x.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(x).decode("ascii")}

    def walk(a):
        return [walk(x) for x in a] if isinstance(a, np.ndarray) and a.ndim else enc(a.item() if isinstance(a, np.ndarray) else a)

    return walk(arr)


def predict_response(outputs, form):
    """{output: array (batch first)} -> TF Serving's `predictions` (row) or `outputs` (columnar)."""
    values = {k: _json_value(np.asarray(v) if not isinstance(v, np.ndarray) else v, k.endswith("_bytes"))
              for k, v in outputs.items()}
    if form == "columnar":
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    n = len(next(iter(values.values())))
    return {"predictions": [{k: v[i] for k, v in values.items()} for i in range(n)]}


def predict_response_bytes(outputs, form):
    """`dumps(predict_response(outputs, form))`, built one row (batch entry) at a time: the
    Python objects of one row exist at once, not those of the whole answer, and other
    threads -- the event loop answering other clients -- run between rows instead of
    waiting for one long `json.dumps`."""
    arrays = {k: v if isinstance(v, np.ndarray) else np.asarray(v) for k, v in outputs.items()}

    def rows(k):
        a, binary = arrays[k], k.endswith("_bytes")
        return (dumps(_json_value(a[i:i + 1], binary)[0]) for i in range(len(a)))

    def array(k):
        return b"[" + b",".join(rows(k)) + b"]"

    if form == "columnar":
        if len(arrays) == 1:
            return b'{"outputs":' + array(next(iter(arrays))) + b"}"
        return b'{"outputs":{' + b",".join(dumps(k) + b":" + array(k) for k in arrays) + b"}}"
    if len(arrays) == 1:
        return b'{"predictions":' + array(next(iter(arrays))) + b"}"
    columns = {k: rows(k) for k in arrays}
    n = len(next(iter(arrays.values())))
    return b'{"predictions":[' + b",".join(
        b"{" + b",".join(dumps(k) + b":" + next(columns[k]) for k in arrays) + b"}" for _ in range(n)) + b"]}"


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), allow_nan=True).encode("utf-8")


# --- metadata -------------------------------------------------------------------
def tensor_info(entry, tensor_name):
    dims = [{"size": str(-1 if d is None else int(d))} for d in entry["shape"]]
    return {"dtype": DT_NAME[entry["dtype"]], "tensor_shape": {"dim": dims}, "name": tensor_name}


def signature_def_map(signatures):
    """The `SignatureDefMap` of a servable in protobuf JSON form (what TF Serving's
    `/metadata` returns under `metadata.signature_def`; the gRPC answer parses it)."""
    out = {}
    for sig, s in signatures.items():
        out[sig] = {"inputs": {e["name"]: tensor_info(e, f"{sig}_{e['name']}:0") for e in s["inputs"]},
                    "outputs": {e["name"]: tensor_info(e, f"StatefulPartitionedCall:{i}")
                                for i, e in enumerate(s["outputs"])},
                    "method_name": PREDICT_METHOD}
    return {"signature_def": out}


def entries_from_signature_def(sig):
    """kzoo-style entries ({name, dtype, shape}) from one signature of a metadata answer
    (REST JSON form) -- what a client knows about a model served by anyone."""
    def entry(name, t):
        dims = [int(d.get("size", -1)) for d in t.get("tensor_shape", {}).get("dim", [])]
        return {"name": name, "dtype": DTYPE_OF_NAME.get(t.get("dtype"), "float32"),
                "shape": [None if d < 0 else d for d in dims]}

    return {"inputs": [entry(n, t) for n, t in sorted(sig.get("inputs", {}).items())],
            "outputs": [entry(n, t) for n, t in sorted(sig.get("outputs", {}).items())]}


# --- gRPC TensorProto ------------------------------------------------------------
def tensor_proto(value, dtype=None):
    """A NumPy array (or nested list / bytes) -> `tensorflow.TensorProto`."""
    from tensorflow.core.framework import tensor_pb2

    arr = np.asarray(value, dtype=object if dtype == "string" else dtype)
    if arr.dtype.kind in "SUO":
        kind = "string"
    else:
        kind = arr.dtype.name
        if kind not in DT:
            raise ServingError(f"cannot send dtype {kind}")
    proto = tensor_pb2.TensorProto(dtype=DT[kind])
    for d in arr.shape:
        proto.tensor_shape.dim.add(size=d)
    if kind == "string":
        proto.string_val.extend(x.encode("utf-8") if isinstance(x, str) else bytes(x) for x in arr.reshape(-1))
    else:
        proto.tensor_content = np.ascontiguousarray(arr, arr.dtype.newbyteorder("<")).tobytes()
    return proto


def from_tensor_proto(proto, where="tensor", entry=None, budget=None):
    """`tensorflow.TensorProto` -> NumPy array (strings as an object array of bytes).

    The declared `tensor_shape` is checked against the signature `entry` and the
    request's `budget` before any array is allocated (a 57-byte message may declare
    a shape of terabytes)."""
    kind = DTYPE_OF.get(proto.dtype)
    if kind is None:
        raise ServingError(f"{where}: unsupported dtype {proto.dtype}")
    if proto.tensor_shape.unknown_rank:
        raise ServingError(f"{where}: tensor has unknown rank")
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    if any(d < 0 for d in shape):
        raise ServingError(f"{where}: negative dimension in shape {shape}")
    if entry is not None and entry["dtype"] != kind:
        raise ServingError(f"Expects {where} to be {entry['dtype']} but {kind} is provided")
    check_declared(shape, kind, where, entry, budget)
    size = 1
    for d in shape:
        size *= d
    if kind == "string":
        values = list(proto.string_val)
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
    elif proto.tensor_content:
        dt = np.dtype(kind).newbyteorder("<")
        if len(proto.tensor_content) != size * dt.itemsize:
            raise ServingError(f"{where}: tensor_content has {len(proto.tensor_content)} bytes; shape "
                               f"{shape} of {kind} needs {size * dt.itemsize}")
        return np.frombuffer(proto.tensor_content, dt).astype(kind).reshape(shape)
    else:
        values = getattr(proto, VAL_FIELD[kind])
        arr = (np.asarray(values, np.uint16).view(np.float16) if kind == "float16"
               else np.asarray(values, kind))
    if arr.size == size:
        return arr.reshape(shape)
    if 0 < arr.size < size:  # TF repeats the last value to fill the shape
        return np.concatenate([arr, np.repeat(arr[-1:], size - arr.size)]).reshape(shape)
    if arr.size == 0 and kind != "string":
        return np.zeros(shape, kind)
    raise ServingError(f"{where}: {arr.size} values do not fill shape {shape}")
