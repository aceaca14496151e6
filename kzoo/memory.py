"""Memory bounds of one inference request, shared by `kzoo serve` and `kzoo predict`.

A request's peak is estimated from the model before anything large is decoded or
run, and compared with a budget:

- the model's activations: an `ActivationProfile` measured once per loaded model
  (`activation_profile`): the exported graph is run at batch 1 on two small sizes
  (spatially dynamic models: 2 and 4 times the size multiple) with every
  intermediate tensor exposed, and the liveness peak of those tensors in the graph's
  execution order gives `bytes = rows * (per_row + per_pixel * height * width)`;
- what the caller adds around it (decoded images, post-processed outputs, the
  response in its encoding), as named parts of an `Estimate`.

`plan_run` turns an estimate into a plan: run as is, split the rows into chunks of
the model's batch size, run a fully convolutional model in tiles (only where the
caller allows it), or refuse with one line naming the limit.

The default budget of one request is a fraction (`REQUEST_FRACTION`) of the
machine's memory (`physical_memory_bytes`: physical pages, or the cgroup limit
when lower): on a 24 GB machine 6 GB, so that a request at the limit leaves
room for the model copies, the Python process and a second request at the limit.

`release_memory()` hands freed heap pages back to the system (glibc `malloc_trim`),
called after big requests.

Example:
>>> est = Estimate({"activations": 3 << 30, "response": 1 << 30})
>>> est.total == 4 << 30, est.describe()
(True, '4.0 GiB (activations 3.0 GiB, response 1.0 GiB)')
"""

from __future__ import annotations

import ctypes
import dataclasses

import numpy as np

from kzoo.errors import KzooError

REQUEST_FRACTION = 4  # default budget of one request: 1/4 of the machine's memory
CALIBRATION_MULTIPLES = (2, 4)  # profile sizes of spatially dynamic models, in size multiples


def physical_memory_bytes():
    """The memory this process may use (`kzoo.io.memory_bytes`: physical RAM, or the cgroup
    limit when that is lower)."""
    from kzoo.io import memory_bytes

    return memory_bytes()


def default_request_budget():
    """Bytes one request may use by default: 1/`REQUEST_FRACTION` of the machine's memory."""
    return physical_memory_bytes() // REQUEST_FRACTION


def check_budget(value, flag):
    """`value` as a budget in bytes (None: the default), or one `KzooError` line."""
    if value is None:
        return default_request_budget()
    machine = physical_memory_bytes()
    if not (isinstance(value, (int, np.integer)) and 1 << 20 <= value):
        raise KzooError(f"{flag} must be a whole number of bytes >= 1 MiB, got {value}")
    if value > machine:
        raise KzooError(f"{flag} {value} is more than this machine's memory ({fmt_bytes(machine)})")
    return int(value)


def fmt_bytes(n):
    n = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@dataclasses.dataclass
class Estimate:
    """The estimated peak of one request, as named parts in bytes."""

    parts: dict

    @property
    def total(self):
        return int(sum(self.parts.values()))

    def describe(self):
        inner = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in self.parts.items() if v)
        return f"{fmt_bytes(self.total)} ({inner})"


@dataclasses.dataclass(frozen=True)
class ActivationProfile:
    """Peak bytes of one run: `rows * (per_row + per_pixel * pixels)`; `outputs` maps each
    output to its (per_row, per_pixel) bytes, `inputs` likewise."""

    per_row: float
    per_pixel: float
    outputs: dict
    inputs: dict

    def peak(self, rows, pixels=0):
        return int(rows * (self.per_row + self.per_pixel * pixels))

    def output_bytes(self, rows, pixels=0, names=None):
        return int(sum(rows * (a + b * pixels) for k, (a, b) in self.outputs.items()
                       if names is None or k in names))


def _liveness_peak(graph, sizes):
    """Largest sum of live tensor bytes over the nodes of `graph` in order: a tensor lives
    from its producer (graph inputs: from the start) to its last consumer (graph outputs:
    to the end); initializers (weights) are not counted."""
    last = {}
    for i, node in enumerate(graph.node):
        for name in node.input:
            last[name] = i
    end = len(graph.node)
    for o in graph.output:
        last[o.name] = end
    weights = {t.name for t in graph.initializer}
    live = {i.name: sizes.get(i.name, 0) for i in graph.input if i.name not in weights}
    peak = sum(live.values())
    for i, node in enumerate(graph.node):
        for name in node.output:
            if name:
                live[name] = sizes.get(name, 0)
        peak = max(peak, sum(live.values()))
        for name in [n for n in live if last.get(n, -1) <= i]:
            del live[name]
    return peak


def _probe(model_path):
    """(graph, run) for the ONNX graph at `model_path`: `run(feeds)` -> {tensor name: bytes}
    of every tensor, intermediate ones exposed as outputs (graph optimizations off, so
    that every name survives)."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, shape_inference

    model = onnx.load(str(model_path))
    types = {v.name: v.type.tensor_type.elem_type
             for v in shape_inference.infer_shapes(model).graph.value_info}
    graph = onnx.GraphProto()
    graph.CopyFrom(model.graph)
    have = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if name and name not in have and types.get(name):
                model.graph.output.append(helper.make_tensor_value_info(name, types[name], None))
                have.add(name)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    del model
    names = [o.name for o in session.get_outputs()]

    def run(feeds):
        sizes = {n: int(np.asarray(v).nbytes) for n, v in zip(names, session.run(names, feeds))}
        sizes.update({k: int(np.asarray(v).nbytes) for k, v in feeds.items()})
        return sizes

    return graph, run


def _sampler_profile(model_path, info):
    """The profile of a diffusion sampler endpoint (`kzoo.export.sampler`): its ONNX `Loop`
    runs the eps-network once per step, and the body's tensors are not graph outputs that
    `_probe` could see, so the peak is the eps-network's (the sibling of the same export
    group and version, profiled as any model) plus the loop's image-sized state (x_t, x_0, the
    step's noise and output) a row; `step_noise` is counted per row at one draw (its real size
    comes with the request)."""
    import json
    from pathlib import Path

    model_path = Path(model_path)
    version = model_path.parent
    members = [m for m in (info.get("group") or {}).get("members", ()) if m != info.get("name")]
    eps = [version.parent.parent / m / version.name for m in members]
    eps = [d for d in eps if (d / "model.onnx").is_file() and (d / "kzoo.json").is_file()]
    if len(eps) != 1:
        raise KzooError(f"{model_path}: a sampler endpoint's eps-network export was not found "
                        f"beside it (group members {members})")
    base = activation_profile(eps[0] / "model.onnx", json.loads((eps[0] / "kzoo.json").read_text()))

    def row_bytes(entry):
        dims = [d if d is not None else 1 for d in entry["shape"][1:]]
        return float(np.prod(dims, dtype=np.int64) * np.dtype(entry["dtype"]).itemsize)

    image = next(row_bytes(e) for e in info["inputs"] if e["name"] == "noise")
    return ActivationProfile(base.per_row + 4 * image, base.per_pixel,
                             {e["name"]: (row_bytes(e), 0.0) for e in info["outputs"]},
                             {e["name"]: (row_bytes(e), 0.0) for e in info["inputs"]})


def activation_profile(model_path, info):
    """The `ActivationProfile` of an exported ONNX model (see module docstring); `info` is
    its `kzoo.json`."""
    from kzoo.card import sample_inputs

    if info.get("sampler") is not None:
        return _sampler_profile(model_path, info)

    size = (info.get("dynamic") or {}).get("spatial_size")
    sides = [size["multiple"] * k for k in CALIBRATION_MULTIPLES] if size else [None]
    rng = np.random.default_rng(0)
    points = []
    graph, run = _probe(model_path)
    for side in sides:
        sizes = run(sample_inputs(info["inputs"], 1, rng, size=side))
        points.append(((side or 0) ** 2, _liveness_peak(graph, sizes),
                       {e["name"]: sizes.get(e["name"], 0) for e in info["outputs"]},
                       {e["name"]: sizes.get(e["name"], 0) for e in info["inputs"]}))

    def fit(values):  # (per_row, per_pixel) through the two points
        if len(values) == 1:
            return float(values[0][1]), 0.0
        (p1, v1), (p2, v2) = values
        b = max((v2 - v1) / (p2 - p1), 0.0)
        return max(v1 - b * p1, 0.0), b

    per_row, per_pixel = fit([(p, v) for p, v, _, _ in points])
    outputs = {k: fit([(p, o[k]) for p, _, o, _ in points]) for k in points[0][2]}
    inputs = {k: fit([(p, i[k]) for p, _, _, i in points]) for k in points[0][3]}
    return ActivationProfile(per_row, per_pixel, outputs, inputs)


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """How to run a request: `chunk_rows` rows at a time; `tile` (input pixels) or None."""

    chunk_rows: int
    tile: int | None
    estimate: Estimate


def plan_run(profile, rows, pixels, fixed, budget, *, chunk_rows, what, limit_name, tile_multiple=None,
             overlap=0, tile=None):
    """A `RunPlan` whose estimated peak fits `budget`, or a `KzooError` naming the limit.

    Args:
        profile: the model's `ActivationProfile`.
        rows: int. Rows (images) of the request.
        pixels: int. Height x width of its images (0: not an image model).
        fixed: dict. Parts of the estimate that do not shrink with chunks or tiles
            (decoded inputs, full outputs, the response).
        budget: int. Bytes the request may use.
        chunk_rows: int. The model's batch size: rows run together at most.
        what: str. The request, for the message.
        limit_name: str. The flag or setting that sets `budget`, for the message.
        tile_multiple: int or None. The model tiles (fully convolutional, tiling allowed)
            with tiles a multiple of this; None: it does not.
        overlap: int. Context around each tile (input pixels).
        tile: int or None. A tile size asked for (kzoo predict --tile); else chosen.
    """
    chunk = max(1, min(rows, chunk_rows))

    def estimate(chunk, side=None):
        act = profile.peak(chunk, pixels if side is None else (side + 2 * overlap) ** 2)
        return Estimate({**fixed, "activations": act})

    if tile is None:
        est = estimate(chunk)
        if est.total <= budget:
            return RunPlan(chunk, None, est)
    if tile_multiple and pixels:
        if tile is not None:
            side = -(-int(tile) // tile_multiple) * tile_multiple
        else:  # the largest tile that fits
            room = budget - sum(fixed.values()) - profile.per_row
            side = 0
            if room > 0 and profile.per_pixel > 0:
                side = int(np.sqrt(room / profile.per_pixel)) - 2 * overlap
                side = min(side // tile_multiple * tile_multiple, int(np.ceil(np.sqrt(pixels))))
        if side >= tile_multiple:
            est = estimate(1, side)
            if est.total <= budget:
                return RunPlan(1, side, est)
    est = estimate(chunk) if tile is None else estimate(1, tile)
    raise KzooError(f"{what} needs about {est.describe()}, over the limit of {fmt_bytes(budget)} "
                    f"for one request ({limit_name})")


def release_memory():
    """Return freed heap memory to the system (glibc `malloc_trim(0)`; a no-op elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.malloc_trim(0))


def rss_bytes(pid="self"):
    """(current, peak) resident set size of a process, from /proc/<pid>/status."""
    values = {}
    try:
        for line in open(f"/proc/{pid}/status"):
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    except OSError:
        return None, None
    return values.get("VmRSS"), values.get("VmHWM")


class MemoryPool:
    """The estimated bytes of the requests a server runs at once, at most `total`:
    `reserve(n)` returns False when `n` more would not fit (the caller answers "busy,
    retry later"), `release(n)` gives them back. Thread-safe."""

    def __init__(self, total):
        import threading

        self.total, self.used = int(total), 0
        self._lock = threading.Lock()

    def reserve(self, n):
        with self._lock:
            if self.used and self.used + n > self.total:
                return False
            self.used += n
            return True

    def release(self, n):
        with self._lock:
            self.used = max(0, self.used - n)
