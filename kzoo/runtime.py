"""Which runtime runs an exported model's `model.onnx`: ONNX Runtime or OpenVINO.

`open_session(onnx_path, runtime)` returns an object with onnxruntime's
`InferenceSession` interface as `kzoo.infer.OnnxModel` uses it (`run(output_names,
feeds)`, `get_inputs()`, `get_providers()`):

- `ort`: onnxruntime with `session_options` (the default);
- `openvino`: OpenVINO's CPU plugin, which reads the same ONNX file directly
  (`openvino.Core().read_model`), compiled in float32 (`OpenVinoSession`). It is the
  `openvino` extra (`pip install kzoo[openvino]`), imported only when asked for.

`kzoo predict --runtime` and `kzoo serve --runtime` take `ort`, `openvino` or `savedmodel`
(the export's TensorFlow SavedModel, which needs TensorFlow). Without the option an
export runs on the runtime recorded beside it in `runtime.json` (`record_runtime`, written
by `kzoo.infer.measure_runtimes` (`kzoo export --pick-runtime`) or `python -m benchmarks
--suites paper`, which record the fastest of the runtimes available -- or by hand), else on
`ort`. Where the record names `savedmodel`, callers that run the ONNX file only
(`kzoo.infer.OnnxModel`) take the faster ONNX runtime it timed.

Importing this module imports neither onnxruntime, OpenVINO nor TensorFlow.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

from kzoo.errors import KzooError

RUNTIMES = ("ort", "openvino", "savedmodel")
DEFAULT_RUNTIME = "ort"
RECORD = "runtime.json"


PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def session_options(threads=None, arena=True):
    """The ONNX Runtime session options kzoo runs exported models with.

    All graph optimizations (constant folding, Conv+Add/BN/activation fusion, the NCHWc
    layout of the CPU provider's convolutions), sequential execution with one inter-op
    thread (an image model is a chain: parallel branches gain nothing, and a second pool
    competes with the intra-op threads for the cores), intra-op threads = `threads`
    (default: the machine's cores), memory pattern planning and the CPU arena on (the
    same shapes repeat call after call). Measured against onnxruntime's defaults in
    benchmarks/RESULTS.md ("ONNX untuned").

    `arena=False` turns the CPU arena off, as `kzoo serve` and `kzoo predict` run: the
    arena grows in powers of two and keeps what it took, so one big run left a U-Net
    export at twice its activations' size, held after the run (measured in
    serving/README.md, "Memory"); without it the peak is the activations' liveness peak
    (`kzoo.memory.activation_profile`) and the memory goes back to the system.

    Args:
        threads: int or None. Intra-op threads; None: `os.cpu_count()`.
        arena: bool. Keep onnxruntime's CPU memory arena.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = int(threads or os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    opts.enable_mem_pattern = True
    opts.enable_cpu_mem_arena = bool(arena)
    opts.log_severity_level = 3
    return opts


def choose_providers(available, requested=None):
    """Providers to ask onnxruntime for, best first.

    Without `requested`: TensorRT, CUDA, CPU -- those of them in `available`.
    With `requested` (names, e.g. `["CUDAExecutionProvider", "CPUExecutionProvider"]`
    or short `cuda`, `cpu`, `tensorrt`): those, in that order; a provider that is
    not available is an error naming what is.
    """
    available = list(available)
    if not requested:
        chosen = [p for p in PREFERRED_PROVIDERS if p in available]
        return chosen or available[:1]
    short = {p.replace("ExecutionProvider", "").lower(): p for p in available}
    chosen = []
    for r in requested:
        full = r if r in available else short.get(r.lower())
        if full is None:
            raise KzooError(f"execution provider {r!r} is not available in this onnxruntime; "
                            f"available: {', '.join(available)}")
        chosen.append(full)
    return chosen


def check_runtime(runtime):
    """`runtime` if it is one of `RUNTIMES`, else one `KzooError` line naming them."""
    if runtime not in RUNTIMES:
        raise KzooError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    return runtime


def import_openvino():
    """The `openvino` module, or one `KzooError` line saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise KzooError("the openvino runtime needs the OpenVINO package: "
                        "pip install 'kzoo[openvino]' (or pip install openvino)") from None
    return openvino


class _Port:
    def __init__(self, name):
        self.name = name


class OpenVinoSession:
    """An ONNX model compiled by OpenVINO's CPU plugin, with onnxruntime's session interface.

    Compiled with `PERFORMANCE_HINT=LATENCY` (one request at a time: all the cores on one
    inference, as kzoo's onnxruntime options) and `INFERENCE_PRECISION_HINT=f32`: on CPUs
    with native bfloat16 (AVX512_BF16, AMX) the CPU plugin otherwise runs float models in
    bf16 (OpenVINO docs, "CPU Device", supported inference data types), which would make the
    runtimes' outputs differ by more than float32 rounding. `threads` sets
    `INFERENCE_NUM_THREADS` (None: the plugin's choice, the machine's cores).

    Calls are serialised with a lock (one infer request, reused: OpenVINO's requests are
    not thread-safe); outputs are copies (`share_outputs=False`).
    """

    def __init__(self, onnx_path, *, threads=None, precision="f32"):
        ov = import_openvino()
        core = ov.Core()
        try:
            model = core.read_model(str(onnx_path))
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as e:
            raise KzooError(f"OpenVINO cannot open {onnx_path}: {str(e).strip().splitlines()[0]}") from None
        graph_inputs, graph_outputs = _onnx_io_names(onnx_path)
        # a port has several tensor names (e.g. "label" and the Cast node's output); the
        # ONNX graph's input/output name is the one callers use
        self._in_ports = {_name_of(p, graph_inputs): p for p in self.compiled.inputs}
        self._inputs = [_Port(n) for n in self._in_ports]
        self._outputs = {_name_of(p, graph_outputs): p for p in self.compiled.outputs}
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()
        self.version = ov.__version__

    def get_inputs(self):
        return list(self._inputs)

    def get_outputs(self):
        return [_Port(n) for n in self._outputs]

    def get_providers(self):
        return ["OpenVINO CPU"]

    def run(self, output_names, feeds):
        names = list(output_names or self._outputs)
        feeds = {self._in_ports[k]: v for k, v in feeds.items()}
        with self._lock:
            result = self._request.infer(feeds, share_inputs=False, share_outputs=False)
        return [np.asarray(result[self._outputs[n]]) for n in names]


def _onnx_io_names(onnx_path):
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    constants = {t.name for t in graph.initializer}
    return [i.name for i in graph.input if i.name not in constants], [o.name for o in graph.output]


def _name_of(port, graph_names):
    names = port.get_names()
    return next((n for n in graph_names if n in names), port.get_any_name())


def open_session(onnx_path, runtime=DEFAULT_RUNTIME, *, providers=None, arena=True):
    """A session on `runtime` ("ort" or "openvino") of `onnx_path` (see module docstring)."""
    if runtime == "openvino":
        return OpenVinoSession(onnx_path)
    if runtime != "ort":
        raise KzooError(f"runtime {runtime!r} does not run ONNX files; choose ort or openvino")
    import onnxruntime as ort

    chosen = choose_providers(ort.get_available_providers(), providers)
    return ort.InferenceSession(str(onnx_path), session_options(arena=arena), providers=chosen)


def recorded_runtime(version_dir):
    """The runtime recorded in `version_dir/runtime.json` ({"runtime": NAME, ...}), or None."""
    path = Path(version_dir) / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        return check_runtime(record["runtime"])
    except (ValueError, KeyError, TypeError, KzooError) as e:
        raise KzooError(f"{path} is not a runtime record ({e}); remove it or rewrite it with "
                        "kzoo.runtime.record_runtime") from None


def default_runtime(version_dir, *, onnx=False):
    """What runs `version_dir` when no runtime is asked for: the recorded one, else `ort`.

    Where the recorded runtime cannot run here (an export copied to a machine without
    OpenVINO or TensorFlow), or `onnx=True` (a caller that runs the ONNX file only,
    `kzoo.infer.OnnxModel`) and the record chose `savedmodel`: the fastest runtime the
    record timed that can, else `ort`.
    """
    runtime = recorded_runtime(version_dir)
    if runtime is None:
        return DEFAULT_RUNTIME
    usable = set(available_runtimes(version_dir)) - ({"savedmodel"} if onnx else set())
    if runtime in usable:
        return runtime
    record = json.loads((Path(version_dir) / RECORD).read_text())
    timed = {k: v for k, v in (record.get("median_ms") or {}).items() if k in usable}
    return min(timed, key=timed.get) if timed else DEFAULT_RUNTIME


ONNX_RUNTIMES = ("ort", "openvino")


def available_runtimes(version_dir):
    """The runtimes that can run `version_dir` here: where it has an ONNX model, `ort` and
    (where the package is installed) `openvino`; where it has a SavedModel and TensorFlow is
    installed, `savedmodel`."""
    import importlib.util

    version_dir = Path(version_dir)
    files = json.loads((version_dir / "kzoo.json").read_text()).get("files", {})
    found = []
    if files.get("onnx") and (version_dir / files["onnx"]).is_file():
        found += ["ort"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
    if (version_dir / "saved_model.pb").is_file() and importlib.util.find_spec("tensorflow"):
        found.append("savedmodel")
    return tuple(found)


def record_runtime(version_dir, runtime, timings_ms=None, **about):
    """Write `version_dir/runtime.json` (atomically): the runtime to run this export on, the
    median milliseconds that chose it and how they were measured (`about`)."""
    from kzoo.io import write_json

    record = {"runtime": check_runtime(runtime), **about}
    if timings_ms:
        record["median_ms"] = {k: float(v) for k, v in timings_ms.items()}
    write_json(Path(version_dir) / RECORD, record)
    return record
