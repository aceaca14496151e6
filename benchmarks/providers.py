"""ONNX Runtime on the GPU: each `model.onnx` on the CUDA provider against the CPU provider.

`python -m benchmarks.providers PATH [PATH ...] [--batches 1,16] [--repeats 10] [--tensorrt]
[--json OUT]`

PATH is a `model.onnx` or a folder searched for `model.onnx` files (an export tree).
Each model is timed at each batch with `CUDAExecutionProvider` (and
`TensorrtExecutionProvider` only with `--tensorrt` and where onnxruntime has it) against
`CPUExecutionProvider`, in one process, the calls alternated call by call
(`benchmarks.infer.alternate`; median ms), both sessions with `kzoo.runtime.session_options`.
A call takes NumPy inputs and returns NumPy outputs, as `kzoo predict` and `kzoo serve`
run it, so the CUDA time includes the copies to and from the GPU. A session that asked for
CUDA but runs on the CPU (onnxruntime falls back quietly when the CUDA libraries do not
load) is an error row, not a CUDA timing. Where onnxruntime has no CUDA provider
(`onnxruntime.get_available_providers()`), each model gets a row saying so, untimed.

Inputs: from the export's `kzoo.json` beside the model (`kzoo.card.sample_inputs`, which
respects each input's role: labels, timesteps, image ranges), else from the ONNX graph's
input shapes (symbolic batch = the batch, other symbolic sizes = `--size`).

Weight-less models (`strip_weights`): an accelerator machine takes at most 64 MiB of files,
and a paper-size export's model.onnx is 44-218 MB (`benchmarks/paper.py`'s exports), so `python -m benchmarks.providers --strip
SRC_DIR DST_DIR` copies each export's `model.onnx` without the data of its large float
initializers (and its `kzoo.json`); `load_model` draws them again, seeded, from
N(0, 1/fan_in), where the graph runs. The time of a dense network's call does not depend on
its weights' values; the row says `weights: redrawn`.

Imports neither TensorFlow nor Keras (`kzoo.card`, `kzoo.runtime` and `onnx` only), so it
runs on a machine without them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

STRIPPED_KEY = "kzoo.weights_stripped"  # metadata_props entry of a weight-less model
STRIP_MIN_ELEMENTS = 4096  # smaller initializers (biases, norm statistics, shapes) are kept
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
CPU = "CPUExecutionProvider"


def find_models(paths) -> list[Path]:
    """The `model.onnx` files `paths` name: files as given, folders searched (sorted)."""
    found = []
    for path in map(Path, paths):
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            models = sorted(path.rglob("model.onnx"))
            if not models:
                raise ValueError(f"{path}: no model.onnx in this folder")
            found += models
        else:
            raise ValueError(f"{path}: no such file or folder")
    return found


def _float_dtype(data_type):
    import onnx

    return {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16,
            onnx.TensorProto.DOUBLE: np.float64}.get(data_type)


def strip_weights(src: Path, dst: Path, min_elements=STRIP_MIN_ELEMENTS) -> dict:
    """Write `src` (a model.onnx) to `dst` without the data of its float initializers of at
    least `min_elements` elements: each keeps its name, type and shape, its data is marked
    external in a file that is not written, and `STRIPPED_KEY` in the model's metadata says
    so. `kzoo.json` beside `src` is copied beside `dst`. Returns {initializers, bytes} removed."""
    import onnx
    from onnx.external_data_helper import set_external_data

    model = onnx.load(str(src))
    removed, nbytes = 0, 0
    for init in model.graph.initializer:
        size = int(np.prod(init.dims)) if init.dims else 1
        if _float_dtype(init.data_type) is None or size < min_elements:
            continue
        nbytes += len(init.raw_data) or size * np.dtype(_float_dtype(init.data_type)).itemsize
        set_external_data(init, location="stripped.weights")
        init.ClearField("raw_data")
        init.ClearField("float_data")
        init.ClearField("double_data")
        init.ClearField("int32_data")  # float16 values live here when not raw
        init.data_location = onnx.TensorProto.EXTERNAL
        removed += 1
    entry = model.metadata_props.add()
    entry.key, entry.value = STRIPPED_KEY, f"{removed} initializers, {nbytes} bytes"
    from kzoo.io import make_dirs, write_bytes

    make_dirs(dst.parent)
    write_bytes(dst, model.SerializeToString())
    if (src.parent / "kzoo.json").is_file():
        shutil.copyfile(src.parent / "kzoo.json", dst.parent / "kzoo.json")
    return {"initializers": removed, "bytes": nbytes}


def load_model(path: Path, seed=0) -> tuple[bytes | str, bool]:
    """(what `onnxruntime.InferenceSession` takes, whether the weights were redrawn): the
    path itself for an ordinary model; for a `strip_weights` model, its serialized bytes
    with every stripped initializer drawn from N(0, 1/fan_in) (fan_in: the elements of one
    output channel, `size // shape[0]`, so a layer's outputs keep about its inputs' scale)
    with a generator seeded by `seed`."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    if not any(p.key == STRIPPED_KEY for p in model.metadata_props):
        return str(path), False
    rng = np.random.default_rng(seed)
    for init in model.graph.initializer:
        if init.data_location != onnx.TensorProto.EXTERNAL:
            continue
        shape = tuple(init.dims)
        fan_in = max(1, int(np.prod(shape)) // max(1, shape[0])) if len(shape) > 1 else max(1, shape[0])
        values = (rng.standard_normal(shape, dtype=np.float32) / np.sqrt(fan_in)).astype(
            _float_dtype(init.data_type))
        del init.external_data[:]
        init.data_location = onnx.TensorProto.DEFAULT
        init.raw_data = values.tobytes()
    return model.SerializeToString(), True


def _graph_inputs(session, batch, size):
    """(name, shape, numpy dtype) of a session's inputs: symbolic first axis = `batch`,
    other symbolic axes = `size`."""
    kinds = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(uint8)": np.uint8}
    out = []
    for i in session.get_inputs():
        shape = [d if isinstance(d, int) else (batch if k == 0 else size) for k, d in enumerate(i.shape)]
        out.append((i.name, tuple(shape), kinds.get(i.type, np.float32)))
    return out


def sample_feeds(model_path: Path, session, batch, rng, size=256) -> dict:
    """Seeded inputs for `session` at `batch`: from the export's kzoo.json where it is beside
    the model (`kzoo.card.sample_inputs`), else from the graph's input shapes."""
    info = model_path.parent / "kzoo.json"
    meta = json.loads(info.read_text()) if info.is_file() else {}
    if meta.get("inputs"):
        from kzoo.card import sample_inputs

        spatial = (meta.get("dynamic") or {}).get("spatial_size") or {}
        return sample_inputs(meta["inputs"], batch, rng, size=spatial.get("base") or size)
    feeds = {}
    for name, shape, dtype in _graph_inputs(session, batch, size):
        feeds[name] = (rng.integers(0, 2, shape) if np.issubdtype(dtype, np.integer)
                       else rng.standard_normal(shape)).astype(dtype)
    return feeds


def _name(path) -> str:
    """An export's name/version (`<name>/<version>/model.onnx`), else folder/file name."""
    parts = Path(path).parts
    return "/".join(parts[-3:-1]) if len(parts) >= 3 and parts[-2].isdigit() else "/".join(parts[-2:])


def measure(path: Path, providers, *, batches=(1, 16), repeats=10, warmup=2, size=256, seed=0) -> list[dict]:
    """Rows for one model: median ms per call on each of `providers` (CPU included),
    alternated call by call, at each batch; a provider that could not run is the row's error."""
    import onnxruntime as ort

    from benchmarks.infer import alternate
    from kzoo.runtime import session_options

    source, redrawn = load_model(path, seed)
    sessions = {}
    for provider in providers:
        chain = {CPU: [CPU], CUDA: [CUDA, CPU], TENSORRT: [TENSORRT, CUDA, CPU]}[provider]
        sess = ort.InferenceSession(source, session_options(), providers=chain)
        if sess.get_providers()[0] != provider:
            raise RuntimeError(f"{provider} did not load (the session runs on {sess.get_providers()[0]})")
        sessions[provider] = sess
    rows = []
    for batch in batches:
        rng = np.random.default_rng(seed)
        feeds = sample_feeds(path, sessions[CPU], batch, rng, size)
        calls = {p: (lambda s=s, f=feeds: s.run(None, f)) for p, s in sessions.items()}
        row = {"model": _name(path), "batch": batch, "weights": "redrawn" if redrawn else "as exported",
               "inputs": {k: list(v.shape) for k, v in feeds.items()}, "repeats": repeats,
               "onnxruntime": ort.__version__}
        try:
            ms = alternate(calls, repeats, warmup)
        except Exception as e:  # noqa: BLE001 -- e.g. out of memory at batch 16: the row says so
            rows.append({**row, "error": f"{type(e).__name__}: {e}"[:300]})
            continue
        for p, v in ms.items():
            row[f"{p.replace('ExecutionProvider', '').lower()}_ms"] = v
        for p in ms:
            if p != CPU:
                key = p.replace("ExecutionProvider", "").lower()
                row[f"{key}_speedup"] = ms[CPU] / ms[p]
        rows.append(row)
    return rows


def run(paths, *, batches=(1, 16), repeats=10, tensorrt=False, size=256, save=None) -> list[dict]:
    """Rows for every model under `paths` (see the module docstring); `save(rows)` is called
    with the rows so far after each model (a run cut short keeps them)."""
    import onnxruntime as ort

    models = find_models(paths)
    available = ort.get_available_providers()
    if CUDA not in available:
        note = (f"onnxruntime {ort.__version__} has no {CUDA} (providers: {', '.join(available)}); "
                "the onnxruntime-gpu package provides it")
        return [{"model": _name(m), "skipped": note} for m in models]
    providers = [CUDA, CPU] + ([TENSORRT] if tensorrt and TENSORRT in available else [])
    rows = []
    for m in models:
        try:
            got = measure(m, providers, batches=batches, repeats=repeats, size=size)
        except Exception as e:  # noqa: BLE001 -- a failing model is a row, the others still run
            got = [{"model": _name(m), "error": f"{type(e).__name__}: {e}"[:300]}]
        for r in got:  # progress on stderr: stdout's last line is the rows with --json -
            print(json.dumps(r), file=sys.stderr, flush=True)
        rows += got
        if save:
            save(rows)
    if tensorrt and TENSORRT not in available:
        rows.append({"model": "(all)", "skipped": f"TensorRT asked for; onnxruntime {ort.__version__} has no "
                                                  f"{TENSORRT}"})
    return rows


def table(rows) -> list[str]:
    """Markdown lines: the timed rows as a table, then one line per skipped or failed model."""
    timed = [r for r in rows if "cpu_ms" in r]
    out = []
    if timed:
        trt = any("tensorrt_ms" in r for r in timed)
        out += ["| model | weights | batch | CPU ms | CUDA ms | CPU / CUDA |"
                + (" TensorRT ms | CPU / TensorRT |" if trt else ""),
                "| --- | --- | --- | --- | --- | --- |" + (" --- | --- |" if trt else "")]
        for r in timed:
            cuda = f"{r['cuda_ms']:.2f} | {r['cuda_speedup']:.1f}" if "cuda_ms" in r else " | "
            line = f"| {r['model']} | {r['weights']} | {r['batch']} | {r['cpu_ms']:.2f} | {cuda} |"
            if trt:
                line += (f" {r['tensorrt_ms']:.2f} | {r['tensorrt_speedup']:.1f} |" if "tensorrt_ms" in r
                         else "  |  |")
            out.append(line)
        out += ["", ("Median ms per call, NumPy in and out (the CUDA time includes the copies), the "
                     "providers alternated call by call in one process (`benchmarks/providers.py`); "
                     "weights `redrawn`: a weight-less copy of the export, weights drawn again, seeded.")]
    for r in rows:
        if "cpu_ms" not in r:
            batch = f" (batch {r['batch']})" if "batch" in r else ""
            out.append(f"- {r['model']}{batch}: {r.get('skipped') or r.get('error')}")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.providers", description=__doc__.split("\n")[0])
    p.add_argument("paths", nargs="+", metavar="PATH", help="model.onnx files or folders searched for them")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--size", type=int, default=256, help="symbolic image sizes without a kzoo.json")
    p.add_argument("--tensorrt", action="store_true", help="also time TensorRT, where onnxruntime has it")
    p.add_argument("--json", metavar="OUT", help="write the rows here (- : stdout, last line)")
    p.add_argument("--strip", metavar="DST", help="instead of timing: write weight-less copies of the "
                   "models under the one PATH into DST, keeping their relative paths (strip_weights)")
    args = p.parse_args(argv)
    try:
        models = find_models(args.paths)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        batches = tuple(int(b) for b in args.batches.split(","))
        if min(batches) < 1:
            raise ValueError
    except ValueError:
        print(f"error: --batches takes positive integers separated by commas, not {args.batches!r}",
              file=sys.stderr)
        return 2
    if args.strip:
        if len(args.paths) != 1 or not Path(args.paths[0]).is_dir():
            print("error: --strip takes one folder PATH", file=sys.stderr)
            return 2
        root = Path(args.paths[0])
        for m in models:
            dst = Path(args.strip) / m.relative_to(root)
            got = strip_weights(m, dst)
            print(f"{dst}: {os.path.getsize(dst) / 2**20:.2f} MiB, {got['initializers']} initializers "
                  f"({got['bytes'] / 2**20:.1f} MiB) stripped")
        return 0
    from kzoo.io import write_json

    save = (lambda rows: write_json(args.json, rows)) if args.json not in (None, "-") else None
    rows = run(models, batches=batches, repeats=args.repeats, tensorrt=args.tensorrt, size=args.size, save=save)
    if save:
        save(rows)
    if args.json == "-":
        print(json.dumps(rows))
    if args.json != "-":
        print("\n".join(table(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
